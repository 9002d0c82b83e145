"""A SQLite file's state before it is opened: damaged, mid-checkpoint (SQLite recovers it) or read-only.

SQLite checks most damage on its own (``file is not a database``, ``database disk image is
malformed``), with two gaps a driftboard database must not fall into: it silently creates a new
database over a non-empty file of a few bytes, and a file cut in the middle of its last page reads as
if that page ended in zeros. ``refuse_damaged`` covers both, without calling a healthy database damaged:
a checkpoint interrupted by a full disk also leaves a part of a page at the end of the file, and then
the write-ahead log still holds that page, so SQLite itself is asked (``PRAGMA quick_check`` after it
has read the log). ``read_only_reason`` says when the file cannot be written, so that it is opened
read-only instead of failing even for reading.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import time
from pathlib import Path

from driftboard.core.errors import StoreError

MAGIC = b"SQLite format 3\x00"
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_WAL_HEADER = struct.Struct(">8I")  # magic, version, page size, checkpoint sequence, salt 1, salt 2, checksums
_FRAME_HEADER = struct.Struct(">6I")  # page number, database size after a commit (else 0), salts, checksums
_LEFT_UNCHANGED = "driftboard left it unchanged"


def refuse_damaged(path: Path, where: str, *, read_only: bool, check_timeout: float) -> None:
    """Raise a one-line ``StoreError`` for a file that is not a whole SQLite database; ``where`` names it.

    A database file is a whole number of pages. One that is not is damaged only when nothing holds the
    rest: after a checkpoint cut short (by a full disk) its write-ahead log does, and SQLite's own
    check decides. While a checkpoint of another process extends the file it may briefly not be a
    whole number of pages either, hence the second look.
    """
    for attempt in range(4):
        try:
            with path.open("rb") as f:
                header = f.read(100)
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"database {where}: cannot read it ({exc.strerror or exc})") from None
        if size == 0:
            return  # an empty file is an empty database
        if len(header) < 100 or not header.startswith(MAGIC):
            raise StoreError(f"database {where}: file is not a database ({size} bytes without a SQLite header; "
                             f"{_LEFT_UNCHANGED}: use another --db or restore it from a backup)")
        page_size = int.from_bytes(header[16:18], "big")
        page_size = 65536 if page_size == 1 else page_size
        if page_size < 512 or page_size & (page_size - 1) or size % page_size == 0:
            return  # a whole number of pages, or a header SQLite will refuse itself
        if attempt < 3:
            time.sleep(0.05)
    cut_page = size // page_size + 1
    if cut_page not in wal_pages(path, page_size):
        raise StoreError(f"database {where}: truncated ({size} bytes is not a whole number of its {page_size}-byte "
                         f"pages, and no write-ahead log holds the rest; {_LEFT_UNCHANGED}: restore it from a backup)")
    problem = sqlite_check(path, where, read_only=read_only, timeout=check_timeout)
    if problem is not None:
        raise StoreError(f"database {where}: SQLite's integrity check reports: {problem} ({_LEFT_UNCHANGED}: "
                         "restore it from a backup or use another --db)")


def wal_pages(path: Path, page_size: int) -> set[int]:
    """The pages the file's write-ahead log holds in committed frames: SQLite reads these instead of the file's.

    Frames count while their salts match the log's header and only up to the last commit frame, as
    SQLite counts them (its checksums are left to SQLite's own check).
    """
    try:
        with open(f"{path}-wal", "rb") as wal:
            header = wal.read(_WAL_HEADER.size)
            if len(header) < _WAL_HEADER.size:
                return set()
            magic, _, log_page_size, _, salt1, salt2, _, _ = _WAL_HEADER.unpack(header)
            if magic not in _WAL_MAGIC or log_page_size != page_size:
                return set()
            committed: set[int] = set()
            pending: set[int] = set()
            while True:
                frame = wal.read(_FRAME_HEADER.size)
                if len(frame) < _FRAME_HEADER.size:
                    return committed
                page, commit_size, frame_salt1, frame_salt2, _, _ = _FRAME_HEADER.unpack(frame)
                if (frame_salt1, frame_salt2) != (salt1, salt2) or len(wal.read(page_size)) < page_size:
                    return committed
                pending.add(page)
                if commit_size:
                    committed |= pending
                    pending = set()
    except OSError:
        return set()


def sqlite_check(path: Path, where: str, *, read_only: bool, timeout: float) -> str | None:
    """What ``PRAGMA quick_check`` reports once SQLite has read the write-ahead log; None when "ok".

    The connection is read-only, so the check writes nothing. When SQLite cannot check now (the
    disk is full, the log cannot be read) that is said, without calling the database damaged.
    """
    uri = f"{path.absolute().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return str(exc)
        hint = "" if read_only else ": free disk space if it is full, then try again"
        raise StoreError(f"database {where}: a checkpoint was cut short and SQLite cannot check the database now "
                         f"({exc}); {_LEFT_UNCHANGED}{hint}") from None
    return None if rows == ["ok"] else "; ".join(rows)


def refuse_uncreatable(path: Path, where: str) -> None:
    """A database file that does not exist in a place where it cannot be created: one line, not SQLite's."""
    if path.exists() or not path.parent.is_dir():
        return
    if _read_only_file_system(path.parent) or not os.access(path.parent, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only_file_system(path.parent) else "a read-only directory"
        raise StoreError(f"database {where}: no such file, and it cannot be created in {why}")


def read_only_reason(path: Path) -> str | None:
    """Why an existing database file cannot be written (it is then opened read-only), or None."""
    if not path.exists():
        return None
    directory = path.parent
    if _read_only_file_system(directory):
        return "it is on a read-only file system"
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    sidecars = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
    if not os.access(directory, os.W_OK | os.X_OK) and not all(os.access(p, os.W_OK) for p in sidecars):
        return "its directory is read-only"  # SQLite must create its -wal and -shm files next to it
    return None


def _read_only_file_system(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def read_only_uri(path: Path, where: str) -> str:
    """How a file that cannot be written is opened: read-only, through the ``-shm`` index when there is one.

    A ``-shm`` file means a writer may be at work elsewhere (another mount, another user): reading
    through it sees its commits. Without one, SQLite cannot read a write-ahead log (it must create the
    index), so the file is opened ``immutable`` when no log holds data, and refused when one does.
    """
    uri = path.absolute().as_uri()
    if Path(f"{path}-shm").exists():
        return f"{uri}?mode=ro"
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(f"database {where} cannot be written, and its write-ahead log holds commits SQLite reads "
                         "only with a -shm file beside it: open it where it can be written")
    return f"{uri}?mode=ro&immutable=1"
