"""Where the database is, how to connect to it, and the one transaction scope.

- ``database_url`` resolves the URL: ``--db``, else ``$DRIFTBOARD_DATABASE_URL``,
  else a SQLite file in the user's data directory. A value without ``://`` is a
  SQLite file path; ``postgresql://`` means psycopg 3.
- ``make_engine`` turns SQLite into a well-behaved shared file: WAL (readers
  never block the writer), a busy timeout (30 s, or
  ``$DRIFTBOARD_SQLITE_BUSY_TIMEOUT`` seconds), foreign keys on, and BEGIN emitted
  by SQLAlchemy rather than the sqlite3 module (whose legacy mode skips BEGIN
  for SELECT and DDL, see the SQLAlchemy SQLite dialect notes). Write
  transactions start with BEGIN IMMEDIATE: they take the write lock up front,
  so two writers never both read and then deadlock upgrading to write. A
  damaged file is refused before it is opened, and a file that cannot be
  written is opened read-only (``db/sqlite_file.py``): reading works, a write
  is one line.
- ``transaction`` is the one commit/rollback scope; database errors leave it as
  a one-line ``StoreError``. ``retry_conflicts`` retries a whole transaction
  that lost a race with a concurrent writer.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from driftboard.core.errors import StoreError
from driftboard.db import sqlite_file
from driftboard.db.location import DEFAULT_FILENAME, ENV_VAR, default_database_path  # noqa: F401  (re-exported)

BUSY_TIMEOUT_S = 30.0  # default: how long a SQLite writer waits for another writer's lock
BUSY_TIMEOUT_ENV = "DRIFTBOARD_SQLITE_BUSY_TIMEOUT"  # seconds, overrides the default
PAGE_SIZE = 16384  # SQLite pages of new files (see _sqlite_connect)
SUPPORTED = ("sqlite", "postgresql")
_WRITE = "driftboard_write"  # execution option: this transaction writes
_READ_ONLY = "driftboard_read_only"  # engine execution option: why the SQLite file was opened read-only
T = TypeVar("T")

# When a batched statement fails (a conflict retried by retry_conflicts), psycopg also logs "error ignored
# terminating <psycopg.Pipeline …>: pipeline aborted". The failure reaches the caller as a StoreError; without
# a handler of its own that warning would be printed to stderr as a stray line, even by a push that succeeds.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


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


def busy_timeout() -> float:
    """Seconds a SQLite writer waits for another's lock: ``$DRIFTBOARD_SQLITE_BUSY_TIMEOUT``, else 30."""
    value = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not value:
        return BUSY_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86400:
        raise StoreError(f"{BUSY_TIMEOUT_ENV}={value!r}: expected a number of seconds between 0 and 86400")
    return seconds


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (already resolved by ``database_url``)."""
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            _ensure_parent(parsed)
            path = _sqlite_path(parsed)
            read_only = None
            if path is not None:
                sqlite_file.refuse_uncreatable(path, redacted(parsed))
                read_only = sqlite_file.read_only_reason(path)
                sqlite_file.refuse_damaged(path, redacted(parsed), read_only=read_only is not None,
                                           check_timeout=busy_timeout())
            connect_args = {"timeout": busy_timeout(), **kwargs.pop("connect_args", {})}
            timeout_ms = int(float(connect_args["timeout"]) * 1000)
            if read_only is not None and path is not None:  # reading must still work: runs, compare, db status
                uri = sqlite_file.read_only_uri(path, redacted(parsed))
                kwargs["creator"] = lambda: sqlite3.connect(uri, uri=True, check_same_thread=False, **connect_args)
                kwargs["execution_options"] = {**kwargs.get("execution_options", {}), _READ_ONLY: read_only}
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)

            def on_connect(dbapi_connection: Any, _record: Any) -> None:
                _sqlite_connect(dbapi_connection, timeout_ms, read_only=read_only is not None)

            event.listen(engine, "connect", on_connect)
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


def _sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or a ``file:`` URI (left to SQLite)."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _sqlite_connect(dbapi_connection: Any, busy_timeout_ms: int, *, read_only: bool = False) -> None:
    # The sqlite3 module must not emit BEGIN itself: _sqlite_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if read_only:
            return  # a file opened read-only keeps its page size and journal mode
        # Only takes effect on a new file (before WAL): big pages pack kB-sized fingerprint rows
        # and array blobs tightly; a 4 kB page holds one compressed fingerprint and wastes 40%.
        cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is still atomic and consistent after a crash; only
        # the last commits may be lost on power failure. It makes ingest fast.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def read_only_reason(engine: Engine) -> str | None:
    """Why the database was opened read-only (a SQLite file that cannot be written), or None."""
    return engine.get_execution_options().get(_READ_ONLY)


def refuse_read_only(engine: Engine) -> None:
    """The one-line error of a write to a database opened read-only, before anything is tried."""
    why = read_only_reason(engine)
    if why is not None:
        raise StoreError(f"database {redacted(engine.url)} is read-only ({why}): nothing was written")


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
    if write:
        refuse_read_only(engine)
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
    if _is_sqlite_busy(orig):
        return StoreError(f"database {redacted(url)} is locked by another writer: still locked after the busy "
                          f"timeout ({_busy_timeout_text()}; {BUSY_TIMEOUT_ENV} sets it); nothing was written")
    if getattr(orig, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
        return StoreError(f"database {redacted(url)} is read-only ({text}): nothing was written")
    if getattr(orig, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreError(f"database {redacted(url)}: {text} (a damaged file, or not a SQLite database; "
                          "driftboard left it unchanged: restore it from a backup or use another --db)")
    return StoreError(f"database {redacted(url)}: {text}")


def _busy_timeout_text() -> str:
    try:
        return f"{busy_timeout():g} s"
    except StoreError:
        return f"{BUSY_TIMEOUT_S:g} s"


def _is_sqlite_busy(orig: BaseException) -> bool:
    return isinstance(orig, sqlite3.OperationalError) and (
        getattr(orig, "sqlite_errorname", "").startswith("SQLITE_BUSY") or "database is locked" in str(orig))


def is_lock_timeout(exc: BaseException) -> bool:
    """A SQLite write lock held by another process past the busy timeout: the next write would wait as long."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    return _is_sqlite_busy(getattr(cause, "orig", None) or cause) if cause is not None else False


def is_unavailable(exc: BaseException) -> bool:
    """The database failed, not the data: unreachable, connection lost, locked, out of space. Later may work."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, (OperationalError, InterfaceError)):
        return True
    return isinstance(cause, DBAPIError) and cause.connection_invalidated


def retry_conflicts(attempt: Callable[[], T], attempts: int, exhausted: str) -> T:
    """``attempt()``, one whole transaction, tried again while it loses a race with a concurrent writer.

    A conflict that outlasts ``attempts`` tries becomes the one-line ``StoreError`` ``exhausted``
    (with the last conflict); any other error is raised as it is.
    """
    for tried in range(1, attempts + 1):
        try:
            return attempt()
        except StoreError as exc:
            if not is_retryable(exc):
                raise
            if tried == attempts:
                raise StoreError(f"{exhausted} (last: {exc})") from (exc.__cause__ or exc)
            time.sleep(random.uniform(0, 0.02 * tried))  # jitter, so two racing writers do not meet again
    raise AssertionError("unreachable")


def is_retryable(exc: BaseException) -> bool:
    """A conflict with a concurrent writer (unique race, deadlock, serialization): retrying may succeed."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, IntegrityError):
        return True
    if isinstance(cause, DBAPIError):
        sqlstate = getattr(cause.orig, "sqlstate", None)
        return sqlstate in ("40001", "40P01")  # serialization failure, deadlock detected
    return False
