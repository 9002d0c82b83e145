"""The write log: one row per push, delete, golden set and clear, explanation kept, in the write's own transaction.

Every writing path of the store (``ingest``, ``delete``, ``goldens``, ``explanations``) calls
``record`` with its open session, so a write and its entry commit together or
roll back together: a failed push logs nothing, a logged delete happened. A
PostgreSQL pusher's push is logged by ``driftboard_push_run`` itself (migration
0004), with its login as the actor. The log is append-only: nothing here
updates or deletes a row, and docs/DEPLOY.md grants the dashboard's role
INSERT on it but no UPDATE or DELETE.

``actor`` is what the caller knows of who acts (the uploader name, the member
behind a token or a dashboard session); on PostgreSQL an empty one records the
database login. ``address`` is the client's network address when a server
knows it; on PostgreSQL a missing one is the connection's own
(``inet_client_addr()``, none over a Unix socket).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from driftboard.core.text import inert
from driftboard.db.models import WriteLogRow
from driftboard.db.session import transaction
from driftboard.db.store.results import WriteLogEntry
from driftboard.db.store.sql import now

ACTIONS = ("push", "delete", "golden-set", "golden-clear", "explain")
CHANNELS = ("cli", "page", "api")
CLI = "cli"
MAX_LIMIT = 10_000
_ACTOR, _ADDRESS, _RUN_ID, _DETAIL = 200, 255, 64, 2000  # column widths (detail: kept to a readable line)


@dataclass(frozen=True)
class Origin:
    """Who writes and from where: what every writing store method takes besides its own arguments."""

    actor: str = ""
    channel: str = CLI
    address: str | None = None


def record(session: Session, action: str, origin: Origin, *, run_id: str | None = None, detail: str = "") -> None:
    """Add one entry in ``session``'s transaction (the write's own)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown write action {action!r}; expected one of {', '.join(ACTIONS)}")
    if origin.channel not in CHANNELS:
        raise ValueError(f"unknown write channel {origin.channel!r}; expected one of {', '.join(CHANNELS)}")
    actor, address = _clean(origin.actor, _ACTOR), _clean(origin.address, _ADDRESS) if origin.address else None
    if session.get_bind().dialect.name == "postgresql" and (not actor or address is None):
        login, connected_from = session.execute(text("SELECT session_user, host(inet_client_addr())")).one()
        actor = actor or login
        address = address if address is not None else connected_from
    session.add(WriteLogRow(at=now(), action=action, actor=actor, channel=origin.channel, address=address,
                            run_id=_clean(run_id, _RUN_ID) if run_id else None, detail=_clean(detail, _DETAIL)))
    session.flush()


def log_write(engine: Engine, action: str, origin: Origin, *, run_id: str | None = None, detail: str = "") -> None:
    """One entry in a transaction of its own (for a write made outside the store)."""
    with transaction(engine, write=True) as session:
        record(session, action, origin, run_id=run_id, detail=detail)


def write_log(engine: Engine, *, limit: int = 100, action: str | None = None,
              actor: str | None = None) -> tuple[WriteLogEntry, ...]:
    """The newest ``limit`` entries (of ``action``, by ``actor``), newest first."""
    if action is not None and action not in ACTIONS:
        from driftboard.core.errors import StoreError

        raise StoreError(f"unknown write action {action!r}: expected one of {', '.join(ACTIONS)}")
    query = select(WriteLogRow)
    if action is not None:
        query = query.where(WriteLogRow.action == action)
    if actor is not None:
        query = query.where(WriteLogRow.actor == actor)
    with transaction(engine) as session:
        rows = session.execute(query.order_by(WriteLogRow.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))).scalars()
        return tuple(WriteLogEntry(r.id, r.at, r.action, r.actor, r.channel, r.address, r.run_id, r.detail)
                     for r in rows)


def _clean(value: str, width: int) -> str:
    """One inert line any database stores, cut to its column: control characters and lone surrogates shown as
    escapes (``core.text.inert``), whitespace runs made one space. Terminals and pages then show it as is."""
    return " ".join(inert(value).split())[:width]


def write_log_document(entries: tuple[WriteLogEntry, ...]) -> dict[str, Any]:
    """The ``driftboard.write_log`` document (``driftboard log --json``; docs/JSON.md)."""
    from driftboard.core.documents import document

    return document("driftboard.write_log", {"entries": [entry.to_json() for entry in entries]})
