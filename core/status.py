"""The team status board: each machine's latest run, its verdict against the golden and what changed
in its environment since the run before, worst first, answering "do all our machines agree?".

Pure: frozen results and the ordering and summary rules; ``db.status.team_status`` fills them from a
store, the dashboard's status page and ``driftboard status`` only present them.

    status = TeamStatus("default", policy, rows)
    status.summary  # "5 machines: 3 identical, 1 within tolerance, 1 drift"
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftboard.core.compare.policy import DEFAULT_POLICY, Policy
from driftboard.core.compare.verdict import Verdict
from driftboard.core.documents import document
from driftboard.core.version import __version__

STATUS_FORMAT = "driftboard.status"
ENVIRONMENT_ONLY = "environment only"  # an imported collect_env report: listed, never judged
NOT_JUDGED = "not judged"  # no golden applies to the run
GOLDEN = "golden"  # the machine's latest run is the golden itself


@dataclass(frozen=True)
class MachineStatus:
    """One machine's latest run against the golden that applies to it."""

    machine: str  # what to call it (hostname, else the label of an imported report, else its key)
    machine_key: str
    run_id: str
    captured_at: str  # ISO 8601
    label: str = ""
    variant: str = "default"
    run_count: int = 1
    imported: bool = False
    is_golden: bool = False
    golden_run_id: str | None = None
    worst: Verdict | None = None  # None: not judged (environment only, no golden, or the golden itself)
    drifted: int = 0  # cases no longer bitwise identical to the golden
    failing: int = 0  # cases at or past drift
    compared: int = 0
    ulp_max: int | None = None
    previous_run_id: str | None = None
    changes: tuple[str, ...] = ()  # numerics-relevant environment changes since the previous run

    @property
    def state(self) -> str:
        """The word the board shows: a verdict word, or why there is none."""
        if self.imported:
            return ENVIRONMENT_ONLY
        if self.is_golden:
            return GOLDEN
        return self.worst.value if self.worst is not None else NOT_JUDGED

    @property
    def rank(self) -> int:
        """Sort key, worst first: judged runs by severity, then the golden, then unjudged, then env-only."""
        if self.worst is not None:
            return -self.worst.severity
        return {GOLDEN: 1, NOT_JUDGED: 2}.get(self.state, 3)

    @property
    def changes_text(self) -> str:
        if self.previous_run_id is None:
            return "first run"
        return "; ".join(self.changes) if self.changes else "no numerics-relevant change"

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine, "machine_key": self.machine_key, "run_id": self.run_id,
            "captured_at": self.captured_at, "label": self.label, "variant": self.variant,
            "run_count": self.run_count, "state": self.state, "imported": self.imported,
            "is_golden": self.is_golden, "golden_run_id": self.golden_run_id,
            "worst": self.worst.value if self.worst is not None else None,
            "drifted": self.drifted, "failing": self.failing, "compared": self.compared, "ulp_max": self.ulp_max,
            "previous_run_id": self.previous_run_id, "changes": list(self.changes),
        }


@dataclass(frozen=True)
class TeamStatus:
    """Every machine's status, worst first, under one golden name and policy."""

    golden: str
    policy: Policy
    machines: tuple[MachineStatus, ...]

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.machines, key=lambda m: (m.rank, m.machine.lower(), m.machine_key)))
        object.__setattr__(self, "machines", ordered)

    def counts(self) -> dict[str, int]:
        """Machines per state: golden counted as identical, verdicts least severe first, then the rest."""
        found = Counter(Verdict.IDENTICAL.value if m.state == GOLDEN else m.state for m in self.machines)
        order = [v.value for v in Verdict] + [NOT_JUDGED, ENVIRONMENT_ONLY]
        return {state: found[state] for state in order if found[state]}

    @property
    def summary(self) -> str:
        """One line: ``5 machines: 3 identical, 1 within tolerance, 1 drift``."""
        n = len(self.machines)
        if not n:
            return "No machines yet: capture and push a run on each machine."
        parts = ", ".join(f"{count} {state}" for state, count in self.counts().items())
        return f"{n} machine{'s' if n != 1 else ''}: {parts}"

    @property
    def agree(self) -> bool:
        """Whether every judged machine is bitwise identical to the golden (and at least one was judged)."""
        judged = [m for m in self.machines if m.worst is not None or m.is_golden]
        return bool(judged) and all(m.is_golden or m.worst is Verdict.IDENTICAL for m in judged)

    def to_json(self) -> dict[str, Any]:
        return {"golden": self.golden, "policy": self.policy.to_json(), "summary": self.summary,
                "counts": self.counts(), "agree": self.agree, "machines": [m.to_json() for m in self.machines]}


def status_json(status: TeamStatus, *, generated_at: str | None = None) -> dict[str, Any]:
    """The status board as a versioned JSON document (``core/schemas/status.schema.json``)."""
    return document(STATUS_FORMAT, {
        "tool_version": __version__,
        "generated_at": generated_at or datetime.now(UTC).replace(microsecond=0).isoformat(),
        **status.to_json(),
    })


__all__ = ["DEFAULT_POLICY", "ENVIRONMENT_ONLY", "GOLDEN", "NOT_JUDGED", "STATUS_FORMAT", "MachineStatus",
           "TeamStatus", "status_json"]
