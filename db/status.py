"""The team status board fed from the database: ``core.status`` filled with each machine's latest run.

The one place that decides which run stands for a machine (its newest capture;
of a settings sweep, the default-settings variant), which golden judges it and
which run came before it. The dashboard's status page and ``driftboard status``
call ``team_status`` and present what it returns.

    with Store(url) as store:
        print(team_status(store).summary)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driftboard.core.audit import capture_groups, representative
from driftboard.core.compare import RunComparison, parse_policy
from driftboard.core.compare.envdiff import diff_environments
from driftboard.core.status import MachineStatus, TeamStatus
from driftboard.db.store import MachineSummary, RunSummary, Store

# (baseline run id, candidate run id, policy text) -> comparison; the dashboard passes its cached one.
Compare = Callable[[str, str, str], RunComparison]


def team_status(store: Store, golden: str = "default", policy: str | None = None, *,
                compare: Compare | None = None) -> TeamStatus:
    """Every stored machine's latest run against the golden ``golden`` that applies to it, with the
    numerics-relevant environment changes since the machine's previous capture; worst first.

    A bad policy raises before anything is compared."""
    policy = policy or "default"
    rule = parse_policy(policy)
    compare = compare or (lambda baseline, candidate, text: store.compare(baseline, candidate, text))
    rows = [_machine_status(store, m, golden, policy, compare) for m in store.machines()]
    return TeamStatus(golden, rule, tuple(r for r in rows if r is not None))


def _machine_status(store: Store, machine: MachineSummary, golden: str, policy: str,
                    compare: Compare) -> MachineStatus | None:
    history = store.machine_history(machine.machine_key, golden=golden, policy=policy)
    if not history:
        return None
    groups = capture_groups(history)  # type: ignore[arg-type]  # grouping reads no fingerprint
    latest: Any = representative(groups[-1])
    previous: Any = representative(groups[-2]) if len(groups) > 1 else None
    base = dict(machine=machine.name or machine.hostname or machine.machine_key[:12],
                machine_key=machine.machine_key, run_id=latest.run_id, captured_at=latest.created_at,
                label=latest.label, variant=latest.variant, run_count=machine.run_count,
                imported=latest.imported or not latest.case_count,
                previous_run_id=previous.run_id if previous else None,
                changes=_changes(store, previous, latest))
    if base["imported"]:
        return MachineStatus(**base)
    mark = store.golden_for(latest.run_id, name=golden)
    if mark is None:
        return MachineStatus(**base)
    if mark.run_id == latest.run_id:
        return MachineStatus(**base, is_golden=True, golden_run_id=mark.run_id)
    result = compare(mark.run_id, latest.run_id, policy)
    ulps = [c.metrics.ulp_max for c in result.cases if c.metrics is not None]
    return MachineStatus(**base, golden_run_id=mark.run_id, worst=result.worst,
                         drifted=sum(1 for c in result.cases if c.verdict.changed),
                         failing=len(result.failing("drift")), compared=len(result.cases),
                         ulp_max=max(ulps) if ulps else None)


def _changes(store: Store, previous: RunSummary | None, latest: RunSummary) -> tuple[str, ...]:
    """What changed in the environment between the two runs, numerics-relevant fields only."""
    if previous is None or previous.environment.digest == latest.environment.digest:
        return ()
    before, after = store.fingerprint(previous.run_id), store.fingerprint(latest.run_id)
    return tuple(c.text for c in diff_environments(before, after).numerics)
