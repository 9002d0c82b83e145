"""Small SQL pieces every part of the store uses: dialect INSERTs, chunked IN lists, the clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from driftboard.core.errors import StoreError


def insert(session: Session, model: type) -> Any:
    """INSERT for the session's dialect, with ``on_conflict_do_nothing`` available."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Slices of at most ``size``: an IN list stays under the drivers' parameter limits."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def now() -> datetime:
    return datetime.now(UTC)
