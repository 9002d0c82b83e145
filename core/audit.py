"""A machine's hardware-upgrade audit: its runs over time, the environment changes between them, and
each case's verdict against the golden just before and just after every change.

Pure: runs and their comparisons in, frozen results out; no Store, Plotly or
Streamlit. ``db.audit.audit_machine`` loads the inputs from the database; the
Machines page, the HTML audit and ``driftboard audit`` only present the result.

    audit = machine_audit("gpu-node-3", runs, comparisons_by_run_id)
    audit.events[0].verdict_changes, audit_json(audit)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from driftboard.core.compare.envdiff import diff_environments
from driftboard.core.compare.policy import DEFAULT_POLICY, Policy
from driftboard.core.compare.runs import RunComparison, RunInfo
from driftboard.core.compare.truth import movement
from driftboard.core.compare.verdict import Verdict
from driftboard.core.documents import document
from driftboard.core.version import __version__

AUDIT_FORMAT = "driftboard.audit"
CaseKey = tuple[str, str, str]


class RunLike(Protocol):
    """What the audit needs of a run: a ``core.run.Run`` or any row with these attributes (``variant`` and
    ``tags``, read when present, group a settings sweep into one capture)."""

    run_id: str
    created_at: str
    label: str
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class TimelinePoint:
    """One run of a machine, against the golden."""

    run_id: str
    captured_at: str  # ISO 8601
    label: str = ""
    drifted: int = 0  # cases whose outputs are no longer bitwise identical (core.compare's "drifted")
    failing: int = 0  # cases at or past --fail-on drift (beyond tolerance, missing, errors)
    compared: int = 0  # cases in the comparison
    worst: Verdict | None = None  # None: not compared (no golden, or this run is the golden)
    ulp_max: int | None = None
    is_golden: bool = False
    variant: str = "default"
    capture_at: str = ""  # the capture (sweep) this run belongs to: its variants share one instant

    @property
    def x_at(self) -> str:
        """Where a chart draws this run: at its capture, so a sweep's variants stand at one time."""
        return self.capture_at or self.captured_at

    @property
    def compared_with_golden(self) -> bool:
        """Whether this point says anything about drift (the golden itself counts: it is identical)."""
        return self.is_golden or self.worst is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "captured_at": self.captured_at,
            "label": self.label,
            "drifted": self.drifted,
            "failing": self.failing,
            "compared": self.compared,
            "worst": self.worst.value if self.worst else None,
            "ulp_max": self.ulp_max,
            "is_golden": self.is_golden,
        }


@dataclass(frozen=True)
class TimelineEvent:
    """An environment change between two consecutive runs of a machine."""

    before_run_id: str
    after_run_id: str
    before_at: str
    after_at: str
    changes: tuple[str, ...]  # "NVIDIA driver 535 → 580", numerics-relevant first
    keys: tuple[str, ...] = field(default=())  # the fingerprint keys behind them

    @property
    def label(self) -> str:
        """Short marker text: the first two changes and how many more."""
        shown = list(self.changes[:2])
        if len(self.changes) > 2:
            shown.append(f"+{len(self.changes) - 2} more")
        return "; ".join(shown)

    @property
    def at(self) -> str:
        """Where the marker goes: halfway between the two runs (the change happened in between)."""
        a, b = _instant(self.before_at), _instant(self.after_at)
        if a is None or b is None:
            return self.after_at
        return (a + (b - a) / 2).isoformat()

    def to_json(self) -> dict[str, Any]:
        return {
            "before_run_id": self.before_run_id,
            "after_run_id": self.after_run_id,
            "before_at": self.before_at,
            "after_at": self.after_at,
            "label": self.label,
            "changes": list(self.changes),
            "keys": list(self.keys),
        }


@dataclass(frozen=True)
class VerdictChange:
    """One case whose verdict against the golden differs between the run before and the run after."""

    key: CaseKey
    before: Verdict | None  # None: not in the comparison
    after: Verdict | None

    def to_json(self) -> dict[str, Any]:
        return {"case": list(self.key), "before": self.before.value if self.before else None,
                "after": self.after.value if self.after else None}


@dataclass(frozen=True)
class AuditEvent:
    """An environment change with the machine's drift against the golden just before and just after it."""

    event: TimelineEvent
    before: TimelinePoint
    after: TimelinePoint
    verdict_changes: tuple[VerdictChange, ...]  # cases whose verdict against the golden changed
    across: RunComparison | None = None  # the run after against the run before, when given

    @property
    def changed_results(self) -> bool | None:
        """Did the outputs change across the event? From ``across`` when given, else from the verdicts
        against the golden (None when either side was not compared)."""
        if self.across is not None:
            return any(c.verdict is not Verdict.IDENTICAL for c in self.across.cases)
        if not (self.before.compared_with_golden and self.after.compared_with_golden):
            return None
        return bool(self.verdict_changes)

    def truth(self) -> tuple[str, str] | None:
        """Whether this change moved the machine towards or away from the float64 truth: (direction, sentence)
        from the run after against the run before (``truth.movement``); None when they were not compared."""
        if self.across is None:
            return None
        return movement(self.across.truth)

    def conclusion(self) -> str:
        if self.across is not None:
            moved = [c for c in self.across.cases if c.verdict is not Verdict.IDENTICAL]
            if not moved:
                return (f"All {len(self.across.cases)} cases are bitwise identical before and after: this change "
                        "did not change results.")
            return (f"{len(moved)} of {len(self.across.cases)} cases differ between the run before and the run "
                    f"after (worst: {self.across.worst.value}): this change changed results.")
        if not (self.before.compared_with_golden and self.after.compared_with_golden):
            return "One side was not compared with the golden: no conclusion."
        if not self.verdict_changes:
            return (f"No case changed its verdict against the golden ({self.before.drifted} → {self.after.drifted} "
                    "cases differing).")
        return (f"{len(self.verdict_changes)} case(s) changed verdict against the golden "
                f"({self.before.drifted} → {self.after.drifted} cases differing).")

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event.to_json(),
            "before": self.before.to_json(),
            "after": self.after.to_json(),
            "verdict_changes": [v.to_json() for v in self.verdict_changes],
            "changed_results": self.changed_results,
            "conclusion": self.conclusion(),
            "across": self.across.to_json() if self.across is not None else None,
            "truth": dict(zip(("direction", "words"), truth, strict=True)) if (truth := self.truth()) else None,
        }


@dataclass(frozen=True)
class MachineAudit:
    """One machine's history against a golden run: points over time and environment-change events."""

    machine: str  # the name shown: its hostname, else what was asked for
    golden: RunInfo | None
    points: tuple[TimelinePoint, ...]  # oldest first
    events: tuple[AuditEvent, ...]
    comparisons: Mapping[str, RunComparison] = field(default_factory=dict, hash=False)  # run id -> vs the golden
    policy: Policy = DEFAULT_POLICY
    machine_key: str = ""  # the stored machine key, when the audit came from a database

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "machine_key": self.machine_key or None,
            "golden": self.golden.to_json() if self.golden else None,
            "policy": self.policy.to_json(),
            "points": [p.to_json() for p in self.points],
            "events": [e.to_json() for e in self.events],
        }


def machine_audit(
    machine: str,
    runs: Sequence[RunLike],
    comparisons: Mapping[str, RunComparison] | Sequence[RunComparison],
    *,
    golden: RunInfo | None = None,
    across: Mapping[str, RunComparison] | None = None,
    policy: Policy | None = None,
    machine_key: str = "",
) -> MachineAudit:
    """A machine's runs (any order) with their comparisons against the golden (by candidate run id),
    turned into timeline points and one event per numerics-relevant environment change between
    consecutive runs. ``across`` optionally maps a run id to its comparison against the previous run;
    ``policy`` defaults to the one the comparisons were made under."""
    by_id = dict(comparisons) if isinstance(comparisons, Mapping) else {c.candidate.run_id: c for c in comparisons}
    if golden is None:
        golden = next((c.baseline for c in by_id.values()), None)
    if policy is None:
        policy = next((c.policy for c in by_id.values()), DEFAULT_POLICY)
    groups = capture_groups(runs)
    points_by_id: dict[str, TimelinePoint] = {}
    for group in groups:
        at = representative(group).created_at if len(group) > 1 else ""
        for run in group:
            points_by_id[run.run_id] = _point(run, by_id.get(run.run_id), golden, at)
    points = tuple(points_by_id[run.run_id] for group in groups for run in group)
    events = []
    for before, after in zip(groups, groups[1:], strict=False):  # between captures, never within a sweep
        prev, run = representative(before), representative(after)
        changes = diff_environments(prev.fingerprint, run.fingerprint).numerics
        if not changes:
            continue
        event = TimelineEvent(prev.run_id, run.run_id, prev.created_at, run.created_at,
                              tuple(c.text for c in changes), tuple(c.key for c in changes))
        events.append(AuditEvent(event, points_by_id[prev.run_id], points_by_id[run.run_id],
                                 _verdict_changes(by_id.get(prev.run_id), by_id.get(run.run_id)),
                                 (across or {}).get(run.run_id)))
    return MachineAudit(machine, golden, points, tuple(events), by_id, policy, machine_key)


SWEEP_TAG = "variant:"  # the tag ``capture --sweep`` gives each of its runs
SWEEP_GAP = timedelta(minutes=5)  # a sweep runs its variants back to back, each in a fresh process


def capture_groups(runs: Sequence[RunLike]) -> list[list[RunLike]]:
    """The runs (any order) oldest first, in captures: the variants of one settings sweep (each tagged
    ``variant:…``, variants distinct, captured back to back) form one group; any other run is its own.

    A sweep's variants differ in settings on purpose: they are one capture, not environment changes."""
    ordered = sorted(runs, key=lambda r: (_instant(r.created_at) or datetime.min.replace(tzinfo=UTC), r.run_id))
    groups: list[list[RunLike]] = []
    for run in ordered:
        last = groups[-1] if groups else None
        if last is not None and _swept(run) and all(_swept(r) for r in last) \
                and _variant(run) not in {_variant(r) for r in last} and _close(last[-1], run):
            last.append(run)
        else:
            groups.append([run])
    return groups


def representative(group: Sequence[RunLike]) -> RunLike:
    """The run that stands for a capture: its default-settings variant, else its first run."""
    return next((r for r in group if _variant(r) == "default"), group[0])


def _variant(run: RunLike) -> str:
    return str(getattr(run, "variant", "default") or "default")


def _swept(run: RunLike) -> bool:
    return any(str(t).startswith(SWEEP_TAG) for t in getattr(run, "tags", ()) or ())


def _close(a: RunLike, b: RunLike) -> bool:
    x, y = _instant(a.created_at), _instant(b.created_at)
    return x is not None and y is not None and abs(y - x) <= SWEEP_GAP


def audit_json(audit: MachineAudit, *, generated_at: str | None = None) -> dict[str, Any]:
    """The audit as a versioned JSON document (``core/schemas/audit.schema.json``): no NaN or infinity."""
    return document(AUDIT_FORMAT, {
        "tool_version": __version__,
        "generated_at": generated_at or datetime.now(UTC).replace(microsecond=0).isoformat(),
        **audit.to_json(),
    })


def _point(run: RunLike, comparison: RunComparison | None, golden: RunInfo | None,
           capture_at: str = "") -> TimelinePoint:
    is_golden = golden is not None and run.run_id == golden.run_id
    if comparison is None:
        return TimelinePoint(run.run_id, run.created_at, run.label, is_golden=is_golden, variant=_variant(run),
                             capture_at=capture_at)
    ulps = [c.metrics.ulp_max for c in comparison.cases if c.metrics is not None]
    return TimelinePoint(
        run.run_id, run.created_at, run.label,
        drifted=sum(1 for c in comparison.cases if c.verdict.changed),
        failing=len(comparison.failing("drift")),
        compared=len(comparison.cases),
        worst=comparison.worst,
        ulp_max=max(ulps) if ulps else None,
        is_golden=is_golden,
        variant=_variant(run),
        capture_at=capture_at,
    )


def _verdict_changes(before: RunComparison | None, after: RunComparison | None) -> tuple[VerdictChange, ...]:
    if before is None or after is None:
        return ()
    old = {c.key: c.verdict for c in before.cases}
    new = {c.key: c.verdict for c in after.cases}
    keys = sorted(old.keys() | new.keys())
    return tuple(VerdictChange(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def _instant(iso: str) -> datetime | None:
    """An aware datetime (naive taken as UTC), or None: run times come from bundles and may be odd."""
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
