"""Golden baselines: one run per (name, suite version, device class) that the others are judged against."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from driftboard.core.errors import StoreError
from driftboard.db.models import GoldenRow, RunRow
from driftboard.db.session import transaction
from driftboard.db.store import write_log
from driftboard.db.store.queries import run_pk
from driftboard.db.store.results import DEFAULT_GOLDEN, Golden, GoldenKey
from driftboard.db.store.sql import now
from driftboard.db.store.verdicts import forget_verdicts_of


def set_golden(engine: Engine, run_id: str, *, name: str = DEFAULT_GOLDEN, set_by: str = "",
               reason: str = "", origin: write_log.Origin = write_log.Origin()) -> Golden:
    """Mark the golden; the write log gets it, with ``set_by`` as the actor, in the same transaction."""
    name = name.strip()
    if not name or len(name) > 64:
        raise StoreError("a golden name must have 1 to 64 characters")
    when = now()
    with transaction(engine, write=True) as session:
        pk = run_pk(session, run_id)
        run = session.execute(select(RunRow).where(RunRow.id == pk)).scalar_one()
        if run.imported or run.case_count == 0:
            raise StoreError(f"run {run.run_id} cannot be a golden: {_environment_only(run.imported)}, "
                             "no outputs to judge other runs against")
        key = GoldenKey(name, run.suite_id, run.suite_version, run.device_class)
        current = session.execute(select(GoldenRow).where(*_golden_where(key))).scalar_one_or_none()
        before = None
        if current is not None and current.run_pk != pk:
            before = session.execute(select(RunRow.run_id).where(RunRow.id == current.run_pk)).scalar_one()
        detail = f"golden {name!r} for {_key_text(key)}" + (f", was run {before}" if before else "") + \
            (f"; reason: {reason}" if reason else "")
        write_log.record(session, "golden-set", replace(origin, actor=set_by), run_id=run.run_id, detail=detail)
        if current is None:
            session.add(GoldenRow(name=name, suite_id=key.suite_id, suite_version=key.suite_version,
                                  device_class=key.device_class, run_pk=pk, set_by=set_by, set_at=when,
                                  reason=reason))
        else:
            old_pk = current.run_pk
            current.run_pk, current.set_by, current.set_at, current.reason = pk, set_by, when, reason
            session.flush()
            if old_pk != pk:
                forget_verdicts_of(session, old_pk)
        return Golden(key, run.run_id, set_by, when, reason)


def no_golden_text(run_id: str, *, case_count: int, imported: bool, name: str = DEFAULT_GOLDEN) -> str:
    """Why no golden applies to a run, in one line: the CLI and the dashboard say it the same way."""
    if imported or case_count == 0:
        return f"no golden applies to run {run_id}: {_environment_only(imported)}, no outputs to judge"
    return f"no golden {name!r} applies to run {run_id} (none is set for its suite version and device class)"


def _environment_only(imported: bool) -> str:
    how = "imported from a collect_env report" if imported else "captured without cases"
    return f"it holds an environment only ({how})"


def clear_golden(engine: Engine, key: GoldenKey, origin: write_log.Origin = write_log.Origin()) -> bool:
    """Remove the golden; the write log gets it (who, how, from where) in the same transaction."""
    with transaction(engine, write=True) as session:
        current = session.execute(select(GoldenRow).where(*_golden_where(key))).scalar_one_or_none()
        if current is None:
            return False
        old_pk = current.run_pk
        was = session.execute(select(RunRow.run_id).where(RunRow.id == old_pk)).scalar_one()
        write_log.record(session, "golden-clear", origin, run_id=was, detail=f"golden {key.name!r} for {_key_text(key)}")
        session.delete(current)
        session.flush()
        forget_verdicts_of(session, old_pk)
        return True


def goldens(engine: Engine, name: str | None = None) -> tuple[Golden, ...]:
    with transaction(engine) as session:
        query = select(GoldenRow, RunRow.run_id).join(RunRow, RunRow.id == GoldenRow.run_pk)
        if name is not None:
            query = query.where(GoldenRow.name == name)
        rows = session.execute(query.order_by(GoldenRow.name, GoldenRow.suite_id, GoldenRow.suite_version,
                                              GoldenRow.device_class)).all()
    return tuple(_golden(row, run_id) for row, run_id in rows)


def golden_for(engine: Engine, run_id: str, *, name: str = DEFAULT_GOLDEN) -> Golden | None:
    with transaction(engine) as session:
        run = session.execute(select(RunRow).where(RunRow.id == run_pk(session, run_id))).scalar_one()
        key = GoldenKey(name, run.suite_id, run.suite_version, run.device_class)
        row = session.execute(
            select(GoldenRow, RunRow.run_id).join(RunRow, RunRow.id == GoldenRow.run_pk).where(*_golden_where(key))
        ).first()
    return None if row is None else _golden(row[0], row[1])


def _key_text(key: GoldenKey) -> str:
    return f"{key.suite_id} v{key.suite_version} on {key.device_class}"


def _golden_where(key: GoldenKey) -> list[Any]:
    return [GoldenRow.name == key.name, GoldenRow.suite_id == key.suite_id,
            GoldenRow.suite_version == key.suite_version, GoldenRow.device_class == key.device_class]


def _golden(row: GoldenRow, run_id: str) -> Golden:
    key = GoldenKey(row.name, row.suite_id, row.suite_version, row.device_class)
    return Golden(key, run_id, row.set_by, row.set_at, row.reason)
