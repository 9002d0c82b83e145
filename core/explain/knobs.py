"""The numerics knobs ``driftboard explain`` toggles, and the settings it runs.

The starting point is the run of "this machine" as it was recorded (its
settings variant, thread count and ``ATEN_CPU_CAPABILITY``), so the first
re-run should reproduce that run's own outputs. Each knob is then toggled once,
to the other run's recorded value when that differs, else to the usual
alternative; each lower CPU capability is one trial of its own. Knobs that do
not exist on this machine (cuDNN without CUDA) are listed as not applicable.
Plain data: nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from driftboard.core.run import Run
from driftboard.core.variants import CAPABILITY_ORDER, parse_variant

# knob id -> what it is, in words and code a person recognises
KNOB_TITLES: dict[str, str] = {
    "threads": "intra-op threads (torch.set_num_threads)",
    "onednn": "oneDNN (torch.backends.mkldnn.enabled)",
    "tf32": "TF32 (allow_tf32 / fp32_precision='tf32')",
    "cudnn_deterministic": "cuDNN deterministic (torch.backends.cudnn.deterministic)",
    "cudnn_benchmark": "cuDNN benchmark (torch.backends.cudnn.benchmark)",
    "deterministic_algorithms": "deterministic algorithms (torch.use_deterministic_algorithms)",
    "matmul_precision": "float32 matmul precision (torch.set_float32_matmul_precision)",
    "cpu_capability": "ATen CPU kernels (ATEN_CPU_CAPABILITY)",
}
_CUDA_ONLY = ("tf32", "cudnn_deterministic", "cudnn_benchmark")


@dataclass(frozen=True)
class Setting:
    """One knob at one value: the variant atom that sets it, and how a person writes it."""

    knob: str
    atom: str
    code: str  # e.g. ``ATEN_CPU_CAPABILITY=avx2``

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "atom": self.atom, "code": self.code}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Setting:
        return cls(str(data["knob"]), str(data["atom"]), str(data["code"]))


@dataclass(frozen=True)
class Trial:
    """This machine's recorded settings with ``settings`` changed; ``variant`` is what the child runs."""

    variant: str
    settings: tuple[Setting, ...]  # empty: the unmodified setting

    @property
    def label(self) -> str:
        return " and ".join(f"`{s.code}`" for s in self.settings) or "its own recorded settings"

    @property
    def knobs(self) -> tuple[str, ...]:
        return tuple(s.knob for s in self.settings)


@dataclass(frozen=True)
class KnobPlan:
    """A knob and either the settings to try or why it cannot be tried here."""

    knob: str
    settings: tuple[Setting, ...]
    not_applicable: str | None = None  # the reason, when the knob does not exist on this machine


@dataclass(frozen=True)
class Plan:
    base: tuple[str, ...]  # the atoms of this machine's recorded settings
    knobs: tuple[KnobPlan, ...]

    @property
    def unmodified(self) -> Trial:
        return Trial(_variant(self.base, ()), ())

    def singles(self) -> list[Trial]:
        return [self.trial((s,)) for k in self.knobs for s in k.settings]

    def pairs(self, moved: Sequence[Setting]) -> list[Trial]:
        """Two settings of different knobs, both of which moved something alone."""
        return [self.trial((a, b)) for a, b in combinations(moved, 2) if a.knob != b.knob]

    def trial(self, settings: tuple[Setting, ...]) -> Trial:
        return Trial(_variant(self.base, settings), settings)


def _variant(base: tuple[str, ...], settings: tuple[Setting, ...]) -> str:
    changed = {s.knob for s in settings}
    atoms = [a for a in base if parse_variant(a)[0].knob not in changed and a != "default"]
    atoms += [s.atom for s in settings]
    return "+".join(atoms) or "default"


def plan(this: Run, other: Run) -> Plan:
    """The knobs to toggle on the machine that recorded ``this``, aiming at ``other``."""
    mine, theirs = dict(this.settings or {}), dict(other.settings or {})
    base = _base_atoms(this, mine)
    cuda = any(c.device.startswith("cuda") for c in this.cases)
    knobs = []
    for knob in KNOB_TITLES:
        if knob in _CUDA_ONLY and not cuda:
            knobs.append(KnobPlan(knob, (), "no CUDA device in this machine's run"))
        elif knob == "cpu_capability":
            knobs.append(_capabilities(this, mine))
        else:
            knobs.append(KnobPlan(knob, (_toggle(knob, mine, theirs),)))
    return Plan(base, tuple(knobs))


def _base_atoms(this: Run, mine: Mapping[str, Any]) -> tuple[str, ...]:
    atoms = [a.text for a in parse_variant(this.variant or "default") if a.knob not in ("threads", "default")]
    threads = mine.get("intra_op_threads")
    if isinstance(threads, int) and threads >= 1:
        atoms.append(f"threads-{threads}")
    env = mine.get("aten_cpu_capability_env")
    if isinstance(env, str) and env.lower() in CAPABILITY_ORDER and not any(a.startswith("cpu-") for a in atoms):
        atoms.append(f"cpu-{env.lower()}")
    return tuple(atoms)


def _toggle(knob: str, mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> Setting:
    if knob == "threads":
        own, other = mine.get("intra_op_threads"), theirs.get("intra_op_threads")
        n = other if isinstance(other, int) and other >= 1 and other != own else (1 if own != 1 else 2)
        return Setting(knob, f"threads-{n}", f"torch.set_num_threads({n})")
    if knob == "matmul_precision":
        own, other = mine.get("float32_matmul_precision", "highest"), theirs.get("float32_matmul_precision")
        value = other if other in ("highest", "high", "medium") and other != own else (
            "medium" if own == "highest" else "highest")
        return Setting(knob, f"matmul-precision-{value}", f"torch.set_float32_matmul_precision('{value}')")
    key, atom, code = {
        "onednn": ("mkldnn_enabled", "onednn", "torch.backends.mkldnn.enabled={}"),
        "deterministic_algorithms": ("deterministic_algorithms", "deterministic-algorithms",
                                     "torch.use_deterministic_algorithms({})"),
        "cudnn_deterministic": ("cudnn_deterministic", "cudnn-deterministic", "torch.backends.cudnn.deterministic={}"),
        "cudnn_benchmark": ("cudnn_benchmark", "cudnn-benchmark", "torch.backends.cudnn.benchmark={}"),
        "tf32": ("matmul_allow_tf32", "tf32", "torch.backends.cuda.matmul.allow_tf32={0}, cudnn.allow_tf32={0}"),
    }[knob]
    default = knob == "onednn"
    value = not bool(mine.get(key, default))
    return Setting(knob, f"{atom}-{'on' if value else 'off'}", code.format(value))


def _capabilities(this: Run, mine: Mapping[str, Any]) -> KnobPlan:
    """Every ATen CPU capability up to this CPU's own, other than the one the run used."""
    cpu = this.fingerprint.get("cpu") if isinstance(this.fingerprint, dict) else None
    cpu = cpu if isinstance(cpu, dict) else {}
    if str(cpu.get("arch", "")).lower() not in ("x86_64", "amd64", "i686", "x86"):
        return KnobPlan("cpu_capability", (), f"ATen's CPU capability levels are x86 ones (this CPU: {cpu.get('arch', 'unknown')})")
    isa = cpu.get("isa") if isinstance(cpu.get("isa"), dict) else {}
    top = "avx512" if all(isa.get(f) for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq")) else (
        "avx2" if isa.get("avx2") else "default")
    used = str(mine.get("cpu_capability") or top).lower()
    options = [c for c in CAPABILITY_ORDER[: CAPABILITY_ORDER.index(top) + 1] if c != used]
    if not options:
        return KnobPlan("cpu_capability", (), "this CPU has no other ATen capability level")
    return KnobPlan("cpu_capability", tuple(Setting("cpu_capability", f"cpu-{c}", f"ATEN_CPU_CAPABILITY={c}") for c in options))
