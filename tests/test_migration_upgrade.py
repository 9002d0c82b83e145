"""Upgrading a database that holds runs keeps every one of them, on SQLite and PostgreSQL.

A database is created at revision 0001 (through Alembic, as an older driftboard did) and filled through
the store at that revision: a CPU fleet with drift, a GPU run, an imported environment, tags, notes, a
golden with cached verdicts, a deleted run. Every row of every table is snapshotted, the database goes
through ``driftboard db upgrade``, and the snapshot must come back identical, as must every run read
back through the store (its bundle digest covers every field and array).
"""

from __future__ import annotations

from typing import Any

import pytest
from cli_runner import run_driftboard as _cli
from db_factory import make_run
from sqlalchemy import MetaData, inspect, select, text
from test_faults import integrity_problems

from driftboard.core.bundle import bundle_bytes, read_bundle
from driftboard.core.errors import SchemaOutOfDateError
from driftboard.db import migrate
from driftboard.db.models import Base
from driftboard.db.session import make_engine, upgrade_command
from driftboard.db.store import RunFilter, Store, write_log

OLD = "0001"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_db(request, monkeypatch) -> str:
    """A database at revision 0001 holding runs stored by the store at that revision."""
    url = request.getfixturevalue(f"{request.param}_url")
    engine = make_engine(url)
    try:
        assert migrate.upgrade(engine, OLD) == ((), (OLD,))
    finally:
        engine.dispose()
    with monkeypatch.context() as m:
        m.setattr(migrate, "HEAD_REVISION", OLD)  # the store as it was when 0001 was the newest revision
        m.setattr(write_log, "record", lambda *args, **kwargs: None)  # which had no write log
        with Store(url) as store:
            _fill(store)
    return url


def _fill(store: Store) -> None:
    for machine in range(6):
        for seq in range(3):
            drift = {"linear_1024": seq} if machine % 3 == 1 else {}
            run, arrays = make_run(machine, seq, drift=drift, tags=("nightly", f"m{machine}") if seq else (),
                                   label=f"node {machine} «ü»", note="after the driver update\nsecond line")
            store.ingest(bundle_bytes(run, arrays), uploader=f"user{machine}")
    gpu, arrays = make_run(20, 1, devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15",
                           gpu="NVIDIA A100-SXM4-80GB", error_case="rng_randn")
    store.ingest(bundle_bytes(gpu, arrays), uploader="ci")
    imported, arrays = make_run(21, 1, imported=True, gpu="NVIDIA H100 80GB HBM3", driver="580.65.06")
    store.ingest(bundle_bytes(imported, arrays))
    dropped, arrays = make_run(22, 1, drift={"lstm_2layer": 9, "mlp_kaiming": 9})
    store.ingest(bundle_bytes(dropped, arrays))
    store.delete_run(dropped.run_id)  # its machine stays, its own arrays go
    store.set_golden("m0000-r00000-default", set_by="alice", reason="first fleet run")
    assert store.refresh_verdicts() == 18  # the CPU runs, the golden itself included
    assert store.refresh_verdicts(policy="bitwise") == 18


def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every driftboard table, every column, in primary-key order."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            metadata = MetaData()
            metadata.reflect(conn)
            out = {}
            for name, table in sorted(metadata.tables.items()):
                if name == migrate.VERSION_TABLE:
                    continue
                order = list(table.primary_key.columns) or list(table.columns)
                out[name] = [tuple(row) for row in conn.execute(select(table).order_by(*order))]
            for added in ("write_log", "explanations"):  # 0004 and 0005 add them empty: no rows, with or without
                if not out.get(added, True):
                    del out[added]
            return out
    finally:
        engine.dispose()


def read_back(url: str) -> dict[str, Any]:
    """What the store says: every run's summary and the digest of the bundle it rebuilds, goldens, verdicts."""
    with Store(url) as store:
        runs = store.runs(RunFilter(), per_page=1000).runs
        digests = {}
        for summary in runs:
            run, arrays = store.load_run(summary.run_id)
            digests[summary.run_id] = read_bundle(bundle_bytes(run, arrays)).digest
        verdicts = {r.run_id: store.verdict(r.run_id, policy="bitwise") for r in runs if not r.imported}
        return {"runs": runs, "digests": digests, "goldens": store.goldens(), "stats": store.stats(),
                "verdicts": {k: (v.worst, v.counts, v.cached) if v else None for k, v in verdicts.items()},
                "machines": store.machines()}


def test_upgrading_a_database_with_runs_keeps_every_row(old_db, capsys, monkeypatch):
    before = snapshot(old_db)
    assert len(before["runs"]) == 20 and len(before["case_results"]) == 18 * 18 + 52 and len(before["verdicts"]) == 36
    with monkeypatch.context() as m:
        m.setattr(migrate, "HEAD_REVISION", OLD)
        old_view = read_back(old_db)

    with pytest.raises(SchemaOutOfDateError) as err:  # this driftboard refuses it until it is upgraded
        Store(old_db)
    assert f"is at schema revision {OLD}, this driftboard needs {migrate.head_revision()}" in str(err.value)
    assert str(err.value).endswith(upgrade_command(old_db))

    code, out, err = _cli(capsys, "db", "upgrade", "--db", old_db)
    assert (code, err) == (0, "") and out.strip().endswith(f"upgraded: schema revision {OLD} -> {migrate.head_revision()}")
    assert snapshot(old_db) == before
    assert read_back(old_db) == old_view
    assert integrity_problems(old_db, deep=True, machines_without_runs=True) == []

    engine = make_engine(old_db)
    try:
        with engine.connect() as conn:
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("case_outcomes")}
            assert "ix_case_outcomes_output_sha" in indexes
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []  # upgraded == created at head
    finally:
        engine.dispose()

    with Store(old_db) as store:  # and the upgraded database takes new runs and deletes as before
        run, arrays = make_run(30, 1, drift={"linear_10_5": 4})
        assert store.ingest(bundle_bytes(run, arrays)).created
        removed = store.delete_run(run.run_id)
        assert removed.arrays_removed == 2
    assert snapshot(old_db)["runs"] == before["runs"]


def test_downgrading_back_to_0001_keeps_every_row_too(old_db):
    from alembic import command

    engine = make_engine(old_db)
    try:
        migrate.upgrade(engine)
        before = snapshot(old_db)
        with engine.connect() as conn, migrate.upgrade_connection(conn):
            command.downgrade(migrate.alembic_config(conn), OLD)
        assert migrate.schema_state(engine).revisions == (OLD,)
        assert snapshot(old_db) == before
    finally:
        engine.dispose()


def test_deleting_a_run_finds_the_arrays_outcomes_still_use_through_the_new_index(sqlite_url):
    with Store(sqlite_url) as store, store.engine.connect() as conn:
        plan = conn.execute(text("EXPLAIN QUERY PLAN SELECT DISTINCT output_sha FROM case_outcomes "
                                 "WHERE output_sha IN ('a', 'b')")).all()
    assert any("ix_case_outcomes_output_sha" in row[-1] for row in plan), plan
