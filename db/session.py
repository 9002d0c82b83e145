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
  so two writers never both read and then deadlock upgrading to write.
- ``transaction`` is the one commit/rollback scope; database errors leave it as
  a one-line ``StoreError``.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

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
from driftboard.db.location import DEFAULT_FILENAME, ENV_VAR, default_database_path  # noqa: F401  (re-exported)

BUSY_TIMEOUT_S = 30.0  # default: how long a SQLite writer waits for another writer's lock
BUSY_TIMEOUT_ENV = "DRIFTBOARD_SQLITE_BUSY_TIMEOUT"  # seconds, overrides the default
PAGE_SIZE = 16384  # SQLite pages of new files (see _sqlite_connect)
SUPPORTED = ("sqlite", "postgresql")
_WRITE = "driftboard_write"  # execution option: this transaction writes


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
            _refuse_damaged_file(parsed)
            connect_args = {"timeout": busy_timeout(), **kwargs.pop("connect_args", {})}
            timeout_ms = int(float(connect_args["timeout"]) * 1000)
            engine = create_engine(parsed, connect_args=connect_args, **kwargs)

            def on_connect(dbapi_connection: Any, _record: Any) -> None:
                _sqlite_connect(dbapi_connection, timeout_ms)

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


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _refuse_damaged_file(url: URL) -> None:
    """Refuse a file SQLite itself would take for an empty database, or whose cut-off last page it would not notice.

    SQLite checks most damage on its own (``file is not a database``, ``database disk image is malformed``),
    but it silently creates a new database over a non-empty file of a few bytes, and a file cut in the middle
    of its last page reads as if that page ended in zeros: both would then be written to. A database file
    is a whole number of pages; while a checkpoint of another process extends the file it may briefly not
    be, hence the second look.
    """
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    for attempt in range(4):
        try:
            with path.open("rb") as f:
                header = f.read(100)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"database {redacted(url)}: cannot read it ({exc.strerror or exc})") from None
        if size == 0:
            return  # an empty file is an empty database
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise StoreError(f"database {redacted(url)}: file is not a database ({size} bytes without a SQLite "
                             "header; driftboard left it unchanged: use another --db or restore it from a backup)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1) or size % page_size == 0:
            return  # a whole number of pages, or a header SQLite will refuse itself
        if attempt < 3:
            time.sleep(0.05)
    raise StoreError(f"database {redacted(url)}: truncated ({size} bytes is not a whole number of its "
                     f"{page_size}-byte pages; driftboard left it unchanged: restore it from a backup)")


def _sqlite_connect(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    # The sqlite3 module must not emit BEGIN itself: _sqlite_begin does.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Only takes effect on a new file (before WAL): big pages pack kB-sized fingerprint rows
        # and array blobs tightly; a 4 kB page holds one compressed fingerprint and wastes 40%.
        cursor.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
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
    if _is_sqlite_busy(orig):
        return StoreError(f"database {redacted(url)} is locked by another writer: still locked after the busy "
                          f"timeout ({_busy_timeout_text()}; {BUSY_TIMEOUT_ENV} sets it); nothing was written")
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


def is_retryable(exc: BaseException) -> bool:
    """A conflict with a concurrent writer (unique race, deadlock, serialization): retrying may succeed."""
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, IntegrityError):
        return True
    if isinstance(cause, DBAPIError):
        sqlstate = getattr(cause.orig, "sqlstate", None)
        return sqlstate in ("40001", "40P01")  # serialization failure, deadlock detected
    return False
