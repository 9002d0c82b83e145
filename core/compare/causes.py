"""Likely causes: small explicit rules linking what changed in the environment to what changed.

A ``FieldRule`` names fingerprint fields and the cases a change to them can
move (by case family, device and dtype; a case's family is the prefix of its
id, ``lstm_2layer`` -> lstm, plus ``CASE_FAMILIES`` for ids that hide a module). It fires when one of its
fields changed and at least one case in its scope drifted; its confidence is
high when every drifted case lies in its scope, medium when other cases drifted
too (or when the rule is broad, like a torch version change). A few rules look
at the verdicts alone (environment identical yet outputs differ, nothing
drifted, nondeterministic repeats, inputs differ, one dtype or device only).

In the text shown, "changed" means the outputs are no longer bitwise identical (verdict
within tolerance, drift or non-finite mismatch): the verdict word "drift" is kept for beyond tolerance. The rules are data
(``FIELD_RULES``), so the dashboard can list them; facts behind them are in
the project's DRIFT_FACTS notes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from driftboard.core.compare.envdiff import EnvChange, EnvDiff
from driftboard.core.compare.verdict import Verdict

if TYPE_CHECKING:
    from driftboard.core.compare.runs import CaseComparison

Confidence = Literal["high", "medium", "low"]
_CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
CaseKey = tuple[str, str, str]


@dataclass(frozen=True)
class LikelyCause:
    title: str
    evidence: str  # names the change and the drifted cases
    fields: tuple[str, ...]  # fingerprint keys involved
    cases: tuple[CaseKey, ...]  # cases it would explain
    confidence: Confidence
    rule: str  # id of the rule that produced it

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "title": self.title,
            "evidence": self.evidence,
            "fields": list(self.fields),
            "cases": [list(key) for key in self.cases],
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class FieldRule:
    """A change to one of ``fields`` can move cases of ``families`` on ``devices`` in ``dtypes``.

    ``fields`` are dotted keys; ``[*]`` stands for any list index and a final
    ``*`` for any continuation. Empty ``families``/``devices``/``dtypes`` mean all.
    """

    id: str
    title: str
    fields: tuple[str, ...]
    why: str
    families: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    broad: bool = False  # touches everything: never more than medium confidence

    def matches(self, key: str) -> bool:
        key = _INDEX.sub("[*]", key)
        return any(key == p or (p.endswith("*") and key.startswith(p[:-1])) for p in self.fields)

    def covers(self, key: CaseKey) -> bool:
        case_id, device, dtype = key
        return (
            (not self.families or any(f in self.families for f in families_of(case_id)))
            and (not self.devices or device.split(":")[0] in self.devices)
            and (not self.dtypes or dtype in self.dtypes)
        )

    @property
    def scope(self) -> str:
        words = ["/".join(self.families) if self.families else "", " ".join(self.devices), " ".join(self.dtypes)]
        return " ".join(w for w in words if w) or "compute"


_INDEX = re.compile(r"\[\d+\]")

# Families a case belongs to beyond the prefix of its id, for ids that do not
# name every module they run (numpy_f64_input is a seq-first LSTM fed from numpy).
CASE_FAMILIES: dict[str, tuple[str, ...]] = {
    "numpy_f64_input": ("lstm",),
}


def families_of(case_id: str) -> tuple[str, ...]:
    """``lstm_2layer`` -> ("lstm",); the prefix before the first underscore, plus ``CASE_FAMILIES``."""
    return (case_id.split("_", 1)[0], *CASE_FAMILIES.get(case_id, ()))


_BLAS_HEAVY = ("lstm", "linear", "mlp")

# Most specific first: a change claimed by an earlier rule is not offered to the catch-all.
FIELD_RULES: tuple[FieldRule, ...] = (
    FieldRule(
        "onednn",
        "oneDNN setting or version changed",
        ("numerics.mkldnn_enabled", "torch.mkldnn", "torch.build_settings.USE_MKLDNN", "env.DNNL_*", "env.ONEDNN_*"),
        "PyTorch's CPU LSTM runs through oneDNN, and oneDNN's LSTM outputs differ between its versions",
        families=("lstm",),
        devices=("cpu",),
    ),
    FieldRule(
        "threads",
        "Thread count changed",
        (
            "numerics.intra_op_threads",
            "numerics.inter_op_threads",
            "env.OMP_NUM_THREADS",
            "env.MKL_NUM_THREADS",
            "env.OPENBLAS_NUM_THREADS",
        ),
        "another thread count splits BLAS reductions differently (nn.Linear at 1 vs 6 threads differs by ~6e-8)",
        families=_BLAS_HEAVY,
        devices=("cpu",),
    ),
    FieldRule(
        "cpu_kernels",
        "CPU kernels changed (ATen CPU capability or instruction set)",
        (
            "torch.cpu_capability",
            "env.ATEN_CPU_CAPABILITY",
            "cpu.isa.*",
            "cpu.vendor",
            "cpu.model",
            "cpu.family",
            "cpu.model_number",
            "cpu.arch",
        ),
        "ATen and oneDNN choose vectorised kernels by instruction set, so sums round in another order",
        families=_BLAS_HEAVY,
        devices=("cpu",),
    ),
    FieldRule(
        "tf32",
        "TF32 / float32 matmul precision changed",
        (
            "numerics.cudnn_allow_tf32",
            "numerics.matmul_allow_tf32",
            "numerics.float32_matmul_precision",
            "numerics.fp32_precision.*",
            "env.NVIDIA_TF32_OVERRIDE",
            "env.TORCH_ALLOW_TF32_CUBLAS_OVERRIDE",
        ),
        "TF32 keeps 10 mantissa bits of float32 inputs (relative error ~2e-3 instead of ~4e-5 on an A100)",
        dtypes=("float32",),
    ),
    FieldRule(
        "gpu_stack",
        "GPU stack changed (GPU model, driver, CUDA or cuDNN)",
        (
            "gpu.devices[*].name",
            "gpu.devices[*].compute_capability",
            "gpu.devices[*].multiprocessors",
            "gpu.devices[*].mig",
            "gpu.count",
            "gpu.driver",
            "gpu.cuda_driver",
            "gpu.cuda_runtime",
            "gpu.cudnn",
            "gpu.nccl",
            "gpu.rocm",
            "torch.cuda",
            "torch.hip",
        ),
        "cuBLAS and cuDNN pick algorithms per GPU model and library version",
        devices=("cuda",),
    ),
    FieldRule(
        "determinism",
        "Determinism settings changed",
        (
            "numerics.deterministic_algorithms",
            "numerics.cudnn_deterministic",
            "numerics.cudnn_benchmark",
            "env.CUBLAS_WORKSPACE_CONFIG",
        ),
        "deterministic and benchmark modes select other kernels (cuDNN RNNs need CUBLAS_WORKSPACE_CONFIG)",
    ),
    FieldRule(
        "reduced_precision",
        "Reduced-precision reductions changed",
        ("numerics.matmul_fp16_reduced", "numerics.matmul_bf16_reduced"),
        "float16/bfloat16 matmuls may accumulate in reduced precision",
        dtypes=("float16", "bfloat16"),
    ),
    FieldRule(
        "denormals",
        "Denormal flushing changed",
        ("numerics.flush_denormal",),
        "values below the smallest normal become zero when denormals are flushed",
    ),
    FieldRule(
        "default_dtype",
        "Default dtype changed",
        ("numerics.default_dtype",),
        "tensors created without a dtype change precision",
    ),
    FieldRule(
        "rng",
        "torch random stream changed",
        ("torch.version", "torch.git_version", "torch.cpu_capability", "env.ATEN_CPU_CAPABILITY", "cpu.isa.*"),
        "torch promises no reproducible random streams across releases or platforms, even with the same seed",
        families=("rng",),
    ),
    FieldRule(
        "numpy",
        "numpy changed",
        ("numpy.version", "numpy.blas"),
        "cases fed from numpy float64 depend on numpy's conversions and BLAS",
        families=("numpy",),
    ),
    FieldRule(
        "torch_build",
        "torch version or build changed",
        (
            "torch.version",
            "torch.git_version",
            "torch.debug",
            "torch.blas",
            "torch.lapack",
            "torch.mkl",
            "torch.openmp",
            "torch.parallel_backend",
            "torch.build_settings.*",
        ),
        "kernels and their defaults change between torch releases and builds",
        broad=True,
    ),
    FieldRule(
        "platform",
        "Python, OS or library versions changed",
        ("python.version", "python.implementation", "os.system", "os.libc", "packages.*"),
        "math libraries and packages around torch changed",
        broad=True,
    ),
)


def likely_causes(env: EnvDiff, cases: Sequence[CaseComparison]) -> tuple[LikelyCause, ...]:
    """Rules that connect ``env`` with the verdicts of ``cases``, most confident first."""
    drifted = [c.key for c in cases if c.verdict.changed]
    compared = [c.key for c in cases if c.verdict.changed or c.verdict is Verdict.IDENTICAL]
    causes: list[LikelyCause] = []
    claimed: set[str] = set()
    for rule in FIELD_RULES:
        changes = [c for c in env.numerics if rule.matches(c.key)]
        claimed.update(c.key for c in changes)
        cause = _field_cause(rule, changes, drifted, compared) if changes else None
        if cause:
            causes.append(cause)
    explained = {key for cause in causes for key in cause.cases}
    unclaimed = [c for c in env.numerics if c.key not in claimed]
    leftover = [key for key in drifted if key not in explained]
    if unclaimed and leftover:
        causes.append(_other_changes(unclaimed, leftover, drifted))
    confident = any(c.confidence == "high" for c in causes)
    causes += _verdict_causes(env, cases, drifted, compared, confident)
    causes.sort(key=lambda c: _CONFIDENCE_ORDER[c.confidence])  # stable: rule order within a level
    return tuple(causes)


def _field_cause(rule: FieldRule, changes: list[EnvChange], drifted: list[CaseKey], compared: list[CaseKey]) -> LikelyCause | None:
    scope = [key for key in compared if rule.covers(key)]
    inside = [key for key in drifted if rule.covers(key)]
    if not inside:
        return None
    outside = len(drifted) - len(inside)
    only = "only " if not outside else ""
    evidence = f"{_changes_text(changes)}; {only}{rule.scope} cases changed ({len(inside)} of {len(scope)}: {_names(inside)})"
    if outside:
        evidence += f", and {outside} other case{'s' if outside > 1 else ''}"
    confidence: Confidence = "high"
    if outside or rule.broad:
        confidence = "low" if outside and rule.broad else "medium"
    return LikelyCause(rule.title, f"{evidence}. Why: {rule.why}.", tuple(c.key for c in changes), tuple(inside), confidence, rule.id)


def _other_changes(changes: list[EnvChange], leftover: list[CaseKey], drifted: list[CaseKey]) -> LikelyCause:
    return LikelyCause(
        "Other numerics-relevant fields changed",
        f"{_changes_text(changes)}; {len(leftover)} of {len(drifted)} changed cases are not explained by a "
        f"more specific rule ({_names(leftover)})",
        tuple(c.key for c in changes),
        tuple(leftover),
        "low",
        "other_fields",
    )


def _verdict_causes(
    env: EnvDiff, cases: Sequence[CaseComparison], drifted: list[CaseKey], compared: list[CaseKey], confident: bool
) -> list[LikelyCause]:
    out: list[LikelyCause] = []
    flaky = [c for c in cases if c.nondeterministic]
    for side in ("baseline", "candidate"):
        keys = [c.key for c in flaky if getattr(c, f"{side}_repeat_identical") is False]
        if keys:
            out.append(
                LikelyCause(
                    f"Nondeterministic on the {side} machine",
                    f"repeats within one process were not bitwise identical on the {side} for {len(keys)} "
                    f"case{'s' if len(keys) > 1 else ''} ({_names(keys)}): their outputs can differ from run to run "
                    "whatever the environment",
                    (),
                    tuple(keys),
                    "high",
                    f"nondeterministic_{side}",
                )
            )
    if drifted and env.identical:
        out.append(
            LikelyCause(
                "Environment identical but outputs differ",
                f"no numerics-relevant field differs, yet {len(drifted)} of {len(compared)} cases changed "
                f"({_names(drifted)}): nondeterminism or hidden state (a field the fingerprint does not record)",
                (),
                tuple(drifted),
                "medium",
                "same_environment",
            )
        )
    if not drifted and env.numerics and compared:
        out.append(
            LikelyCause(
                "Environment differs but nothing changed",
                f"{_changes_text(list(env.numerics))}; all {len(compared)} compared cases are bitwise identical",
                tuple(c.key for c in env.numerics),
                (),
                "high",
                "no_drift",
            )
        )
    if not confident:  # a field rule already explains the drift well: the pattern would only repeat it
        out += _concentrated(drifted, compared)
    inputs = [c.key for c in cases if c.verdict is Verdict.INPUTS_DIFFER]
    if inputs:
        numpy_changes = [c for c in env.numerics if c.key.startswith("numpy.")]
        because = f" while {_changes_text(numpy_changes)}" if numpy_changes else ""
        out.append(
            LikelyCause(
                "Reference inputs differ",
                f"input or weight digests differ for {len(inputs)} case{'s' if len(inputs) > 1 else ''} "
                f"({_names(inputs)}){because}: the suite's generator produced other data, so compute cannot be judged",
                tuple(c.key for c in numpy_changes),
                tuple(inputs),
                "high" if numpy_changes else "medium",
                "inputs_differ",
            )
        )
    return out


def _concentrated(drifted: list[CaseKey], compared: list[CaseKey]) -> list[LikelyCause]:
    """Drift confined to one dtype or one device while others were compared and did not drift."""
    out: list[LikelyCause] = []
    for position, what in ((2, "dtype"), (1, "device")):
        values = {key[position] for key in drifted}
        if len(values) != 1:
            continue
        value = values.pop()
        others = [key for key in compared if key[position] != value]
        if not others:
            continue
        same = [key for key in compared if key[position] == value]
        reason = (
            "its kernels (reduced-precision accumulation, vectorised paths) differ"
            if what == "dtype"
            else "that device's libraries or settings differ"
        )
        out.append(
            LikelyCause(
                f"Only {value} cases changed",
                f"{len(drifted)} of {len(same)} {value} cases changed ({_names(drifted)}), none of {len(others)} "
                f"cases on other {what}s: {reason}",
                (),
                tuple(drifted),
                "medium",
                f"only_{what}",
            )
        )
    return out


def _changes_text(changes: Sequence[EnvChange], limit: int = 4) -> str:
    shown = [f"{c.text} ({c.key})" for c in changes[:limit]]
    if len(changes) > limit:
        shown.append(f"{len(changes) - limit} more")
    return ", ".join(shown)


def _names(keys: Sequence[CaseKey], limit: int = 4) -> str:
    """Case ids, with device/dtype only where one id appears more than once."""
    ids = [k[0] for k in keys]
    shown = [k[0] if ids.count(k[0]) == 1 else "/".join(k) for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"{len(keys) - limit} more")
    return ", ".join(shown)
