"""A stored machine's hardware-upgrade audit: ``core.audit`` fed from the database.

The one place that knows which runs, golden and comparisons an audit needs;
the Machines page and ``driftboard audit`` call ``audit_machine`` and present
what it returns.

    with Store(url) as store:
        audit = audit_machine(store, "gpu-node-3", policy="ulp:4")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from driftboard.core.audit import MachineAudit, machine_audit
from driftboard.core.compare import RunComparison, RunInfo, parse_policy
from driftboard.core.errors import NotFoundError
from driftboard.db.store import Golden, MachineSummary, RunSummary, Store

# (baseline run id, candidate run id, policy text) -> comparison; the dashboard passes its cached one.
Compare = Callable[[str, str, str], RunComparison]


def audit_machine(store: Store, machine: str, *, golden: str = "default", policy: str | None = None,
                  limit: int | None = None, compare: Compare | None = None) -> MachineAudit:
    """The newest ``limit`` runs (all when None) of ``machine`` (a key, a unique key prefix or a hostname)
    against the golden ``golden`` that applies to them, with one event per numerics-relevant environment
    change between consecutive runs and, for each, the run after compared with the run before.

    A bad policy, an unknown or an ambiguous machine raise before anything is compared."""
    policy = policy or "default"
    rule = parse_policy(policy)
    found = resolve_machine(store, machine)
    compare = compare or (lambda baseline, candidate, text: store.compare(baseline, candidate, text))
    history = store.machine_history(found.machine_key, golden=golden, policy=policy)
    if limit is not None:
        history = history[-limit:] if limit > 0 else ()
    name = found.hostname or found.machine_key
    mark = _golden_of(store, history, golden)
    runs = _runs_with_fingerprints(store, history)
    golden_info = None
    comparisons: dict[str, RunComparison] = {}
    if mark is not None:
        golden_info = RunInfo.of(store.load_run(mark.run_id)[0])
        for run in history:
            same = (run.suite_id, run.suite_version, run.device_class) == (
                mark.key.suite_id, mark.key.suite_version, mark.key.device_class)
            if same and run.case_count and run.run_id != mark.run_id:
                comparisons[run.run_id] = compare(mark.run_id, run.run_id, policy)
    audit = machine_audit(name, runs, comparisons, golden=golden_info, policy=rule, machine_key=found.machine_key)
    with_cases = {run.run_id for run in history if run.case_count}
    across = {e.event.after_run_id: compare(e.event.before_run_id, e.event.after_run_id, policy)
              for e in audit.events if {e.event.before_run_id, e.event.after_run_id} <= with_cases}
    if across:
        audit = machine_audit(name, runs, comparisons, golden=golden_info, across=across, policy=rule,
                              machine_key=found.machine_key)
    return audit


def resolve_machine(store: Store, machine: str) -> MachineSummary:
    """The one stored machine that ``machine`` names: its key, a hostname, or a prefix of one key."""
    wanted = machine.strip()
    machines = store.machines() if wanted else ()
    for found in machines:
        if found.machine_key == wanted:
            return found
    by_host = [m for m in machines if m.hostname == wanted]
    if len(by_host) == 1:
        return by_host[0]
    if by_host:
        raise NotFoundError(f"hostname {wanted!r} names {len(by_host)} machines: use a machine key "
                            f"({_keys(by_host)})")
    by_prefix = [m for m in machines if m.machine_key.startswith(wanted)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if by_prefix:
        raise NotFoundError(f"machine {wanted!r} is ambiguous: it starts {len(by_prefix)} machine keys "
                            f"({_keys(by_prefix)})")
    raise NotFoundError(f"no machine {machine!r} in the database (driftboard runs lists them)")


def _keys(machines: Sequence[MachineSummary]) -> str:
    shown = ", ".join(f"{m.machine_key[:16]}… ({m.hostname})" for m in machines[:3])
    return shown + (", …" if len(machines) > 3 else "")


@dataclass(frozen=True)
class _AuditRun:
    """A stored run as ``core.audit`` sees it (``core.audit.RunLike``)."""

    run_id: str
    created_at: str
    label: str
    fingerprint: dict[str, Any]
    variant: str = "default"
    tags: tuple[str, ...] = ()


def _golden_of(store: Store, history: Sequence[RunSummary], name: str) -> Golden | None:
    """The golden of the machine's newest run that has cases."""
    for run in reversed(history):
        if run.case_count:
            return store.golden_for(run.run_id, name=name)
    return None


def _runs_with_fingerprints(store: Store, history: Sequence[RunSummary]) -> list[_AuditRun]:
    """The runs with their fingerprints, each distinct environment read once."""
    fingerprints: dict[str, dict[str, Any]] = {}
    out = []
    for run in history:
        digest = run.environment.digest
        if digest not in fingerprints:
            fingerprints[digest] = store.fingerprint(run.run_id)
        out.append(_AuditRun(run.run_id, run.created_at, run.label, fingerprints[digest], run.variant, run.tags))
    return out
