"""Determinism tiers: which bitwise guarantee held for a case, on the evidence at hand.

Four tiers, each held (True), broken (False) or unknown (None):

1. ``run-to-run``: the repeats of one capture, in one process, were bitwise equal;
2. ``processes``: two runs on one machine with one environment fingerprint agree;
3. ``machines``: runs on two machines of one device class agree;
4. ``device classes``: runs on two device classes (``core.run.device_class``) agree.

"Agree" means the case produced bitwise the same result (its output and layers,
or an own case's output and module statistics digests). The evidence is the
compared pair itself, plus what the database knows about other runs of the same
suite version (``TierEvidence``, loaded by ``Store.tier_evidence``). Evidence
that a tier broke wins; a tier nothing speaks to is unknown, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftboard.core.run import CaseResult, Run, device_class

CaseKey = tuple[str, str, str]
TIERS = ("run_to_run", "processes", "machines", "device_classes")
TIER_WORDS = {"run_to_run": "run-to-run", "processes": "processes", "machines": "machines",
              "device_classes": "device classes"}
# --fail-on gates: a case fails when this tier is broken (unknown does not fail; the report counts it).
TIER_GATES = {f"tier:{word.replace(' ', '-')}": tier for tier, word in TIER_WORDS.items()}
_MARKS = {True: "✓", False: "✗", None: "?"}


@dataclass(frozen=True)
class Tiers:
    """The four tiers of one case; None is unknown."""

    run_to_run: bool | None = None
    processes: bool | None = None
    machines: bool | None = None
    device_classes: bool | None = None

    @property
    def label(self) -> str:
        """E.g. ``bitwise: run-to-run ✓, processes ✓, machines ✗, device classes ?`` (? is unknown)."""
        return "bitwise: " + ", ".join(f"{TIER_WORDS[t]} {_MARKS[getattr(self, t)]}" for t in TIERS)

    @property
    def marks(self) -> str:
        """The four tiers as marks in order, e.g. ``✓ ✓ ✗ ?``: a narrow table column."""
        return " ".join(_MARKS[getattr(self, t)] for t in TIERS)

    def broken(self, tier: str) -> bool:
        return getattr(self, tier) is False

    def to_json(self) -> dict[str, Any]:
        return {**{tier: getattr(self, tier) for tier in TIERS}, "label": self.label}


@dataclass(frozen=True)
class TierEvidence:
    """What stored runs of one suite version show for one case, tier by tier (None: no two runs speak to it)."""

    run_to_run: bool | None = None
    processes: bool | None = None
    machines: bool | None = None
    device_classes: bool | None = None


@dataclass(frozen=True)
class Side:
    """Who produced one side of a pair: machine (None when the fingerprint does not say), environment, class."""

    machine: str | None
    environment: str
    device_class: str

    @classmethod
    def of(cls, run: Run) -> Side:
        identity = run.fingerprint.get("identity") if isinstance(run.fingerprint, dict) else None
        identity = identity if isinstance(identity, dict) else {}
        machine = identity.get("machine_id") or identity.get("hostname")
        return cls(machine if isinstance(machine, str) and machine else None, run.fingerprint_digest,
                   device_class(run))


def result_digest(case: CaseResult) -> tuple[str, ...] | None:
    """What "bitwise the same result" compares: output and layer digests; None for a failed case."""
    if case.error is not None:
        return None
    if case.own is not None:
        found = [t.stats.sha256 for t in case.own.outputs]
        found += [t.stats.sha256 for m in case.own.modules for t in m.tensors]
        return tuple(found)
    if case.output is None:
        return None
    return (case.output.sha256, *(ref.sha256 for _, ref in case.layers))


def case_tiers(old: CaseResult | None, new: CaseResult | None, baseline: Side, candidate: Side,
               stored: TierEvidence | None = None) -> Tiers:
    """The tiers of one case from the pair (either side may be absent) and the stored runs' evidence."""
    pair = _pair_evidence(old, new, baseline, candidate)
    stored = stored or TierEvidence()
    return Tiers(**{tier: _combine(getattr(pair, tier), getattr(stored, tier)) for tier in TIERS})


def _pair_evidence(old: CaseResult | None, new: CaseResult | None, baseline: Side, candidate: Side) -> TierEvidence:
    present = [c for c in (old, new) if c is not None and c.error is None]
    repeated = [c for c in present if c.repeats > 1 or not c.repeat_identical]
    run_to_run = None if not repeated else all(c.repeat_identical for c in repeated)
    if old is None or new is None:
        return TierEvidence(run_to_run=run_to_run)
    a, b = result_digest(old), result_digest(new)
    same = None if a is None or b is None or old.input_digest != new.input_digest \
        or old.weight_digest != new.weight_digest else a == b
    tiers: dict[str, bool | None] = {"run_to_run": run_to_run}
    if baseline.device_class != candidate.device_class:
        tiers["device_classes"] = same
    elif baseline.machine is None or candidate.machine is None:
        pass  # which machine a side ran on is not recorded: neither tier 2 nor 3 can be told
    elif baseline.machine != candidate.machine:
        tiers["machines"] = same
    elif baseline.environment == candidate.environment:
        tiers["processes"] = same
    return TierEvidence(**tiers)


def _combine(*found: bool | None) -> bool | None:
    if any(f is False for f in found):
        return False
    return True if any(f is True for f in found) else None


def parse_fail_on(text: str) -> tuple[str, ...]:
    """``--fail-on``: comma-separated gates, verdict levels (``FAIL_ON``) and tier gates; one-line error else."""
    from driftboard.core.compare.verdict import FAIL_ON
    from driftboard.core.errors import PolicyError

    gates = tuple(part.strip().lower() for part in str(text).split(",") if part.strip())
    known = (*FAIL_ON, *TIER_GATES)
    for gate in gates or ("",):
        if gate not in known:
            raise PolicyError(f"invalid --fail-on {str(text)[:60]!r}: unknown gate {gate[:40]!r}; expected one or "
                              f"more of {', '.join(known)}, separated by commas")
    if "never" in gates and len(gates) > 1:
        raise PolicyError(f"invalid --fail-on {str(text)[:60]!r}: never cannot be combined with other gates")
    return gates
