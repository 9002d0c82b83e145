"""Deleting a run, and whatever only it used: outcomes, arrays, its environment (its machine's history stays)."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from driftboard.core.errors import StoreError
from driftboard.db.models import (
    ArrayRow,
    CaseOutcomeRow,
    CaseResultRow,
    EnvironmentRow,
    GoldenRow,
    OutcomeArrayRow,
    RunRow,
    RunTagRow,
    VerdictRow,
)
from driftboard.db.session import retry_conflicts, transaction
from driftboard.db.store import write_log
from driftboard.db.store.queries import run_pk
from driftboard.db.store.results import DeleteResult

_ATTEMPTS = 5  # whole transactions tried before a conflict with concurrent pushes is reported


def delete_run(engine: Engine, run_id: str, origin: write_log.Origin = write_log.Origin()) -> DeleteResult:
    """Delete a run in one transaction, tried again whole while it conflicts with a concurrent push.

    On PostgreSQL a push committed meanwhile may have started using an outcome or array this
    delete found unused: the database refuses the delete (a foreign key), and the next try sees it used.
    The write log gets the delete (``origin``: who, how, from where) in the same transaction.
    """
    return retry_conflicts(lambda: _delete_once(engine, run_id, origin), _ATTEMPTS,
                           f"run {run_id} was not deleted: pushes sharing its arrays conflicted {_ATTEMPTS} times; "
                           "nothing was deleted, try again")


def _delete_once(engine: Engine, run_id: str, origin: write_log.Origin) -> DeleteResult:
    with transaction(engine, write=True) as session:
        pk = run_pk(session, run_id)
        name = session.execute(select(RunRow.run_id).where(RunRow.id == pk)).scalar_one()
        golden = session.execute(select(GoldenRow.name).where(GoldenRow.run_pk == pk)).scalars().first()
        if golden is not None:
            raise StoreError(f"run {name} is the golden {golden!r}: clear that golden before deleting the run")
        environment_pk = session.execute(select(RunRow.environment_id).where(RunRow.id == pk)).scalar_one()
        outcome_ids = set(session.execute(
            select(CaseResultRow.outcome_id).where(CaseResultRow.run_pk == pk)).scalars())
        for table, column in ((CaseResultRow, CaseResultRow.run_pk), (RunTagRow, RunTagRow.run_pk),
                              (VerdictRow, VerdictRow.run_pk), (VerdictRow, VerdictRow.golden_run_pk)):
            session.execute(delete(table).where(column == pk))
        session.execute(delete(RunRow).where(RunRow.id == pk))
        removed, freed = _remove_orphans(session, outcome_ids)
        if session.execute(select(RunRow.id).where(RunRow.environment_id == environment_pk).limit(1)).first() is None:
            session.execute(delete(EnvironmentRow).where(EnvironmentRow.id == environment_pk))
        write_log.record(session, "delete", origin, run_id=name,
                         detail=f"{removed} arrays no other run used removed ({freed} stored bytes)")
    return DeleteResult(name, removed, freed)


def _remove_orphans(session: Session, outcome_ids: set[int]) -> tuple[int, int]:
    """Delete the outcomes no run uses any more, then the arrays no outcome uses; (arrays, stored bytes)."""
    if not outcome_ids:
        return 0, 0
    still_used = set(session.execute(
        select(CaseResultRow.outcome_id).where(CaseResultRow.outcome_id.in_(sorted(outcome_ids))).distinct()
    ).scalars())
    orphans = sorted(outcome_ids - still_used)
    if not orphans:
        return 0, 0
    shas = set(session.execute(
        select(OutcomeArrayRow.array_sha).where(OutcomeArrayRow.outcome_id.in_(orphans))).scalars())
    session.execute(delete(OutcomeArrayRow).where(OutcomeArrayRow.outcome_id.in_(orphans)))
    session.execute(delete(CaseOutcomeRow).where(CaseOutcomeRow.id.in_(orphans)))
    if not shas:
        return 0, 0
    kept = set(session.execute(
        select(OutcomeArrayRow.array_sha).where(OutcomeArrayRow.array_sha.in_(sorted(shas))).distinct()).scalars())
    kept |= set(session.execute(
        select(CaseOutcomeRow.output_sha).where(CaseOutcomeRow.output_sha.in_(sorted(shas))).distinct()).scalars())
    gone = sorted(shas - kept)
    if not gone:
        return 0, 0
    freed = session.execute(
        select(func.coalesce(func.sum(ArrayRow.stored_bytes), 0)).where(ArrayRow.sha256.in_(gone))).scalar_one()
    session.execute(delete(ArrayRow).where(ArrayRow.sha256.in_(gone)))
    return len(gone), int(freed)
