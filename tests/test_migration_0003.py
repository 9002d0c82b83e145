"""Revision 0003 (the pushers' ingest function) on a database that holds runs, on SQLite and PostgreSQL.

Like test_migration_upgrade.py: a database at 0002 is filled by the store at that revision, every row is
snapshotted, ``driftboard db upgrade`` must keep every one of them. On PostgreSQL the function must then
exist as the review asked: SECURITY DEFINER, a fixed search_path with ``pg_temp`` last, and no EXECUTE for
PUBLIC; downgrading removes it and keeps every row. SQLite has no roles: nothing changes there.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from test_faults import integrity_problems
from test_migration_upgrade import _cli, _fill, read_back, snapshot

from driftboard.db import migrate
from driftboard.db.session import make_engine
from driftboard.db.store import Store, write_log

OLD = "0002"
FUNCTION = "SELECT p.prosecdef, p.proconfig, p.proacl::text, pg_get_userbyid(p.proowner), n.nspname " \
           "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace " \
           "WHERE p.proname = 'driftboard_push_run' AND n.nspname = current_schema()"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_at_0002(request, monkeypatch) -> str:
    url = request.getfixturevalue(f"{request.param}_url")
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, OLD)
    finally:
        engine.dispose()
    with monkeypatch.context() as m:
        m.setattr(migrate, "HEAD_REVISION", OLD)
        m.setattr(write_log, "record", lambda *args, **kwargs: None)  # the store at 0002 had no write log
        with Store(url) as store:
            _fill(store)
    return url


def _function(url: str) -> tuple | None:
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as conn:
            return conn.execute(text(FUNCTION)).one_or_none()
    finally:
        engine.dispose()


def test_upgrading_to_0003_keeps_every_row_and_locks_the_function_down(db_at_0002, capsys, monkeypatch):
    before = snapshot(db_at_0002)
    with monkeypatch.context() as m:
        m.setattr(migrate, "HEAD_REVISION", OLD)
        old_view = read_back(db_at_0002)
    assert _function(db_at_0002) is None

    code, out, err = _cli(capsys, "db", "upgrade", "--db", db_at_0002)
    # to the head: 0004 replaces the function (it logs pushes), which must keep all of 0003's locks
    assert (code, err) == (0, "") and out.strip().endswith(f"upgraded: schema revision {OLD} -> "
                                                          f"{migrate.head_revision()}")
    assert snapshot(db_at_0002) == before
    assert read_back(db_at_0002) == old_view
    assert integrity_problems(db_at_0002, deep=True, machines_without_runs=True) == []

    found = _function(db_at_0002)
    if db_at_0002.startswith("sqlite"):
        assert found is None
        return
    definer, config, acl, owner, schema = found
    assert definer, "driftboard_push_run must run with its owner's rights"
    assert config == [f"search_path={schema}, pg_temp"]  # the caller's temporary tables come last
    # Only the owner may execute it until the deployment's grants name the pushers: PUBLIC (an empty
    # grantee in the ACL) has nothing. A NULL ACL would mean PostgreSQL's default, EXECUTE for everyone.
    assert acl == f"{{{owner}=X/{owner}}}"


def test_downgrading_0003_drops_the_function_and_keeps_every_row(db_at_0002):
    from alembic import command

    engine = make_engine(db_at_0002)
    try:
        migrate.upgrade(engine)
        before = snapshot(db_at_0002)
        with engine.connect() as conn, migrate.upgrade_connection(conn):
            command.downgrade(migrate.alembic_config(conn), OLD)
        assert migrate.schema_state(engine).revisions == (OLD,)
        assert snapshot(db_at_0002) == before
        assert _function(db_at_0002) is None
        migrate.upgrade(engine)  # and up again
        assert migrate.schema_state(engine).up_to_date
    finally:
        engine.dispose()
