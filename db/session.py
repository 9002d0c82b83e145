"""Where the database is, how to connect to it, and the one transaction scope.

- ``database_url`` resolves the URL: ``--db``, else ``$DRIFTBOARD_DATABASE_URL``,
  else a SQLite file in the user's data directory. A value without ``://`` is a
  SQLite file path; ``postgresql://`` means psycopg 3.
- ``make_engine`` turns SQLite into a well-behaved shared file: WAL (readers
  never block the writer), a busy timeout, foreign keys on, and BEGIN emitted
  by SQLAlchemy rather than the sqlite3 module (whose legacy mode skips BEGIN
  for SELECT and DDL, see the SQLAlchemy SQLite dialect notes). Write
  transactions start with BEGIN IMMEDIATE: they take the write lock up front,
  so two writers never both read and then deadlock upgrading to write.
- ``transaction`` is the one commit/rollback scope; database errors leave it as
  a one-line ``StoreError``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from core.errors import StoreError

ENV_VAR = "DRIFTBOARD_DATABASE_URL"
DEFAULT_FILENAME = "driftboard.sqlite"
BUSY_TIMEOUT_S = 30.0
PAGE_SIZE = 16384  # SQLite pages of new files (see _sqlite_connect)
SUPPORTED = ("sqlite", "postgresql")
_WRITE = "driftboard_write"  # execution option: this transaction writes


def default_database_path(data_dir: str | Path | None = None) -> Path:
    """``<user data dir>/driftboard.sqlite`` (``~/.local/share/driftboard`` on Linux)."""
    if data_dir is None:
        import platformdirs

        data_dir = platformdirs.user_data_dir("driftboard", appauthor=False)
    return Path(data_dir) / DEFAULT_FILENAME


def database_url(explicit: str | None = None) -> str:
    """The database to use: ``explicit`` (``--db``), else the environment variable, else the default file."""
    value = explicit or os.environ.get(ENV_VAR) or f"sqlite:///{default_database_path()}"
    return normalize_url(value)


def normalize_url(value: str) -> str:
    value = value.strip()
    if not value:
        raise StoreError("empty database URL")
    if "://" not in value:
        return f"sqlite:///{Path(value).expanduser().absolute()}"
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            value = "postgresql+psycopg://" + value[len(prefix):]
    try:
        url = make_url(value)
    except ArgumentError:
        raise StoreError(f"not a database URL: {redacted(value)}") from None
    if url.get_backend_name() not in SUPPORTED:
        raise StoreError(f"unsupported database {url.get_backend_name()!r}: use SQLite or PostgreSQL")
    return value


def redacted(url: str | URL) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def upgrade_command(url: str) -> str:
    return f"driftboard db upgrade --db {shlex.quote(redacted(url))}"


# ---------------------------------------------------------------- engines


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (already resolved by ``database_url``)."""
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            _ensure_parent(parsed)
            connect_args = {"timeout": BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        raise StoreError(f"cannot use {redacted(url)}: database driver missing ({exc})") from None


def _ensure_parent(url: URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    try:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory for {database}: {exc.strerror or exc}") from None


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module must not emit BEGIN itself: _sqlite_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Only takes effect on a new file (before WAL): big pages pack kB-sized fingerprint rows
        # and array blobs tightly; a 4 kB page holds one compressed fingerprint and wastes 40%.
        cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is still atomic and consistent after a crash; only
        # the last commits may be lost on power failure. It makes ingest fast.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


# ---------------------------------------------------------------- the scope


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back if it raises.

    ``write=True`` takes SQLite's write lock at BEGIN. Database errors become a
    ``StoreError`` whose ``__cause__`` is the original.
    """
    session = Session(engine, autoflush=False, expire_on_commit=False)
    try:
        try:
            if write:
                session.connection(execution_options={_WRITE: True})
            yield session
            session.commit()
        except BaseException:
            _quiet_rollback(session)
            raise
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from exc
    finally:
        session.close()


def _quiet_rollback(session: Session) -> None:
    with suppress(SQLAlchemyError):  # the connection is gone: the server rolls back on its own
        session.rollback()


def store_error(exc: BaseException, url: str | URL) -> StoreError:
    """A one-line ``StoreError`` for a database error."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    text = lines[0] if lines else type(orig).__name__
    if isinstance(exc, IntegrityError):
        return StoreError(f"database refused the change: {text}")
    return StoreError(f"database {redacted(url)}: {text}")


def is_retryable(exc: BaseException) -> bool:
    """A conflict with a concurrent writer (unique race, deadlock, serialization): retrying may succeed."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, IntegrityError):
        return True
    if isinstance(cause, DBAPIError):
        sqlstate = getattr(cause.orig, "sqlstate", None)
        return sqlstate in ("40001", "40P01")  # serialization failure, deadlock detected
    return False
