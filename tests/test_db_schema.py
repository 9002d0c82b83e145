"""Schema, migrations, connection settings and the out-of-date refusal, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from driftboard.core.errors import SchemaOutOfDateError, StoreError
from driftboard.db import migrate
from driftboard.db.models import NAMING_CONVENTION, Base
from driftboard.db.session import database_url, default_database_path, make_engine, normalize_url
from driftboard.db.store import Store

REPO = Path(__file__).resolve().parents[1]
TABLES = {"machines", "environments", "runs", "run_tags", "arrays", "case_outcomes", "outcome_arrays",
          "case_results", "goldens", "verdicts", "write_log", "explanations", "alembic_version"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def test_the_head_revision_constant_is_the_newest_migration():
    assert migrate.head_revision() == migrate.script_head()


def test_migrations_from_empty_create_every_table_and_match_the_models(empty_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(empty_url)
    try:
        before, after = migrate.upgrade(engine)
        assert (before, after) == ((), (migrate.head_revision(),))
        assert migrate.upgrade(engine) == (after, after)  # idempotent
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
            # What `alembic check` does: the migrations produce exactly the models.
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_nothing_and_up_again(empty_url):
    from alembic import command

    engine = make_engine(empty_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn, migrate.upgrade_connection(conn):
            command.downgrade(migrate.alembic_config(conn), "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        migrate.upgrade(engine)
        assert migrate.schema_state(engine).up_to_date
    finally:
        engine.dispose()


def test_every_constraint_and_index_is_named_by_the_convention(fresh_db):
    engine = make_engine(fresh_db)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            for table in TABLES - {"alembic_version"}:
                assert inspector.get_pk_constraint(table)["name"] == f"pk_{table}"
                for fk in inspector.get_foreign_keys(table):
                    assert fk["name"] == f"fk_{table}_{fk['constrained_columns'][0]}_{fk['referred_table']}"
                for index in inspector.get_indexes(table):
                    if not index.get("duplicates_constraint"):  # PostgreSQL lists unique constraints here too
                        assert index["name"].startswith(f"ix_{table}_"), index
                for unique in inspector.get_unique_constraints(table):
                    assert unique["name"] == f"uq_{table}_" + "_".join(unique["column_names"])
    finally:
        engine.dispose()
    assert set(NAMING_CONVENTION) == {"ix", "uq", "ck", "fk", "pk"}


def test_a_new_sqlite_database_is_created_on_first_use(sqlite_url):
    with Store(sqlite_url) as store:
        assert store.stats().runs == 0
        assert migrate.schema_state(store.engine).up_to_date


@pytest.mark.postgres
def test_an_empty_postgres_database_is_refused_with_the_upgrade_command(postgres_url):
    with pytest.raises(SchemaOutOfDateError) as err:
        Store(postgres_url)
    message = str(err.value)
    assert "\n" not in message
    assert "has no driftboard schema yet" in message
    assert message.endswith(migrate.upgrade_command(postgres_url))


def test_an_older_revision_is_refused_with_the_exact_upgrade_command(fresh_db, monkeypatch):
    head = migrate.head_revision()
    newer = f"{int(head) + 1:04d}"
    monkeypatch.setattr(migrate, "head_revision", lambda: newer)  # as if this driftboard were newer
    with pytest.raises(SchemaOutOfDateError) as err:
        Store(fresh_db)
    message = str(err.value)
    assert "\n" not in message
    assert f"is at schema revision {head}, this driftboard needs {newer}" in message
    assert message.endswith(migrate.upgrade_command(database_url(fresh_db)))


def test_an_unknown_revision_is_refused_and_never_upgraded(fresh_db):
    engine = make_engine(fresh_db)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
        with pytest.raises(SchemaOutOfDateError, match="unknown to driftboard .* pip install --upgrade driftboard"):
            Store(fresh_db)
        with pytest.raises(SchemaOutOfDateError, match="unknown to driftboard"):
            migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_a_sqlite_database_with_foreign_tables_is_refused(sqlite_url):
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(SchemaOutOfDateError, match="holds tables but no driftboard schema revision"):
        Store(sqlite_url)


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_url):
    with Store(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_database_url_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("DRIFTBOARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_database_path() == tmp_path / "data" / "driftboard" / "driftboard.sqlite"
    assert database_url(None) == f"sqlite:///{tmp_path}/data/driftboard/driftboard.sqlite"
    monkeypatch.setenv("DRIFTBOARD_DATABASE_URL", "postgresql://team@db/driftboard")
    assert database_url(None) == "postgresql+psycopg://team@db/driftboard"
    assert database_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"  # --db wins
    assert normalize_url(str(tmp_path / "team.sqlite")) == f"sqlite:///{tmp_path}/team.sqlite"
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u@h/db")


def test_the_default_database_lives_in_the_user_data_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("DRIFTBOARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    with Store() as store:
        assert store.stats().runs == 0
    assert (tmp_path / "driftboard" / "driftboard.sqlite").is_file()


def test_an_unreachable_server_is_one_line_store_error():
    with pytest.raises(StoreError) as err:
        Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert "\n" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


def test_the_database_layer_never_imports_torch():
    code = ("import sys; import driftboard.db.store, driftboard.db.models, driftboard.db.migrate, driftboard.db.session, "
            "driftboard.cli.db_cmd; "
            "from driftboard.db.store import Store; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
