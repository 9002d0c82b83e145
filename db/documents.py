"""JSON documents read from the store, built once for ``driftboard runs/golden list --json`` and the team API.

``runs_page`` is the page of runs with verdicts that ``driftboard runs``
lists (verdicts not cached yet are computed and kept first; a read-only
database keeps none, so they are computed for the page only). The documents
carry the envelope of ``core.documents`` and match the shipped schemas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from driftboard.core.documents import document
from driftboard.db.session import read_only_reason
from driftboard.db.store.results import DEFAULT_GOLDEN, DEFAULT_POLICY, Golden, RunFilter, RunPage, VerdictSummary

if TYPE_CHECKING:
    from driftboard.db.store import Store


def runs_page(store: Store, filters: RunFilter, *, page: int = 1, per_page: int = 50) -> RunPage:
    """One page of runs, each with its worst verdict against ``filters.golden`` under ``filters.policy``."""
    golden, policy = filters.golden, filters.policy
    read_only = read_only_reason(store.engine) is not None  # no verdict can be kept there
    if filters.verdict and not read_only:
        store.refresh_verdicts(golden=golden, policy=policy)
    result = store.runs(filters, page=page, per_page=per_page)
    if read_only:
        return _judged_now(store, result, golden=golden, policy=policy)
    unjudged = [r.run_id for r in result.runs if r.verdict is None and r.case_count > 0]  # a judged page: no query
    if not filters.verdict and unjudged and store.refresh_verdicts(golden=golden, policy=policy, run_ids=unjudged):
        result = store.runs(filters, page=page, per_page=per_page)
    return result


def _judged_now(store: Store, result: RunPage, *, golden: str, policy: str) -> RunPage:
    """The page with each run's verdict computed now (a read-only database keeps none)."""
    judged = []
    for run in result.runs:
        found = store.verdict(run.run_id, golden=golden, policy=policy) if run.verdict is None else None
        judged.append(replace(run, verdict=found.worst) if found is not None else run)
    return replace(result, runs=tuple(judged))


def runs_document(result: RunPage) -> dict[str, Any]:
    """The ``driftboard.runs`` document of one page."""
    return document("driftboard.runs", result.to_json())


def goldens_document(marks: Sequence[Golden]) -> dict[str, Any]:
    """The ``driftboard.goldens`` document: every golden with who set it, when and why."""
    return document("driftboard.goldens", {"goldens": [golden_json(mark) for mark in marks]})


def golden_json(mark: Golden) -> dict[str, Any]:
    key = mark.key
    return {"name": key.name, "suite_id": key.suite_id, "suite_version": key.suite_version,
            "device_class": key.device_class, "run_id": mark.run_id, "set_by": mark.set_by,
            "set_at": mark.set_at.isoformat(), "reason": mark.reason}


def verdict_json(found: VerdictSummary | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"golden_run_id": found.golden_run_id, "policy": found.policy, "worst": found.worst,
            "counts": dict(found.counts)}


def stored_run_document(store: Store, run_id: str, *, golden: str = DEFAULT_GOLDEN,
                        policy: str = DEFAULT_POLICY) -> dict[str, Any]:
    """A stored run: its summary, its manifest (what ``show --json`` prints of its bundle) and its verdict."""
    from driftboard.core.bundle import manifest_of

    summary = store.run(run_id)
    run, _ = store.load_run(summary.run_id)
    found = store.verdict(summary.run_id, golden=golden, policy=policy)
    return document("driftboard.stored_run", {"run": replace(summary, verdict=found.worst if found else None)
                                              .to_json(), "verdict": verdict_json(found),
                                              "manifest": manifest_of(run)})
