"""Alembic, configured in code so it works from an installed package.

Policy (also in ``driftboard db upgrade --help``):

- A database whose revision is not this driftboard's head is refused with a
  ``SchemaOutOfDateError`` that prints the command to run.
- A SQLite database with no tables at all (a new file, the default included) is
  created on first use: there is nothing to migrate and no one to surprise.
- Anything else (an existing SQLite database at an older revision, and every
  PostgreSQL database, even an empty one) changes schema only through
  ``driftboard db upgrade``: a team database is never migrated as a side effect
  of someone pushing a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from driftboard.core.errors import SchemaOutOfDateError, StoreError
from driftboard.core.version import __version__
from driftboard.db.session import _WRITE, redacted, store_error, upgrade_command

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None):  # -> alembic.config.Config
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def _script():  # -> alembic.script.ScriptDirectory
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


# The newest revision in db/migrations/versions. Kept here so that opening a
# database does not import Alembic; tests/test_db_schema.py checks it.
HEAD_REVISION = "0006"


def head_revision() -> str:
    return HEAD_REVISION


def script_head() -> str | None:
    """The head according to Alembic's own reading of db/migrations."""
    return _script().get_current_head()


def is_known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return _script().get_revision(revision) is not None
    except (CommandError, KeyError, ValueError):
        return False


@dataclass(frozen=True)
class SchemaState:
    revisions: tuple[str, ...]  # what alembic_version holds (empty: none)
    has_tables: bool  # any table at all, ours or not
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.revisions == (self.head,)


def read_state(conn: Connection) -> SchemaState:
    tables = set(inspect(conn).get_table_names())
    revisions: tuple[str, ...] = ()
    if VERSION_TABLE in tables:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
        revisions = tuple(sorted(rows))
    return SchemaState(revisions, bool(tables), head_revision())


def schema_state(engine: Engine) -> SchemaState:
    try:
        with engine.connect() as conn:
            return read_state(conn)
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from exc


def out_of_date_message(state: SchemaState, url: str) -> str:
    where = redacted(url)
    if not state.revisions:
        if state.has_tables:
            return (f"database {where} holds tables but no driftboard schema revision: "
                    f"use an empty database, or create the schema with: {upgrade_command(url)}")
        return f"database {where} has no driftboard schema yet; create it with: {upgrade_command(url)}"
    found = ",".join(state.revisions)
    if all(is_known(rev) for rev in state.revisions):
        return (f"database {where} is at schema revision {found}, this driftboard needs {state.head}; "
                f"upgrade it with: {upgrade_command(url)}")
    return (f"database {where} is at schema revision {found}, unknown to driftboard {__version__} "
            f"(written by a newer driftboard?); upgrade driftboard with: pip install --upgrade driftboard")


def ensure_schema(engine: Engine, url: str, *, create_if_empty: bool) -> SchemaState:
    """Refuse a database not at head; create the schema of an empty one when allowed."""
    state = schema_state(engine)
    if state.up_to_date:
        return state
    if create_if_empty and not state.has_tables:
        upgrade(engine)
        state = schema_state(engine)
        if state.up_to_date:
            return state
    raise SchemaOutOfDateError(out_of_date_message(state, url))


@contextmanager
def upgrade_connection(conn: Connection) -> Iterator[Connection]:
    """A write transaction for migrations, committed at the end of the block.

    On SQLite, foreign keys are switched off while batch mode rebuilds tables
    (dropping a referenced table would otherwise cascade), checked before
    commit, and switched back on.
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
    try:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn
            if sqlite:
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"migration left {len(broken)} broken foreign keys (first: {broken[0]})")
    finally:
        if sqlite:
            conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")


def upgrade(engine: Engine, revision: str = "head") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Migrate to ``revision``; returns the revisions before and after."""
    from alembic import command
    from alembic.util import CommandError

    try:
        with engine.connect() as conn:
            with upgrade_connection(conn):
                before = read_state(conn)
                if before.revisions and not all(is_known(rev) for rev in before.revisions):
                    raise SchemaOutOfDateError(out_of_date_message(before, str(engine.url)))
                command.upgrade(alembic_config(conn), revision)
            after = read_state(conn)
            conn.rollback()
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from exc
    except CommandError as exc:
        raise StoreError(f"migration failed: {exc}") from exc
    return before.revisions, after.revisions
