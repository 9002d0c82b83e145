"""Ingest as a PostgreSQL pusher: the whole write is one call of ``driftboard_push_run``.

Members of the pushers' role hold no INSERT, UPDATE or DELETE on any table
(docs/DEPLOY.md), so no statement of theirs can reach a stored run. They add
runs through the SECURITY DEFINER function of migration 0003, which can only
create a new run with its own rows, and records the caller's login as the
uploader. ``ingest.py`` decides who writes how (``writer``); this module turns
a plan into the function's arguments. The function writes the same rows as
``ingest.py``'s direct path, in the same order (tests/test_pg_pusher.py checks
that a pushed run reads back exactly as one stored directly).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from driftboard.core.errors import StoreError
from driftboard.db.models import EnvironmentRow
from driftboard.db.store import run_extras
from driftboard.db.store.arrays import CODEC

if TYPE_CHECKING:
    from driftboard.db.store.ingest import _Plan
    from driftboard.db.store.write_log import Origin

FUNCTION = "driftboard_push_run"
_CALL = text(f"SELECT {FUNCTION}(CAST(:plan AS jsonb), :fingerprint, CAST(:data AS bytea[]))")
_FINGERPRINT = EnvironmentRow.__table__.c.fingerprint.type


@dataclass(frozen=True)
class Writer:
    """How this session stores a run, and the uploader name it records."""

    uploader: str
    through_function: bool  # a PostgreSQL pusher: only driftboard_push_run


def writer(session: Session, uploader: str) -> Writer:
    """SQLite, or a PostgreSQL role that may insert runs itself (the dashboard's, an admin's): direct writes,
    recording ``uploader`` (on PostgreSQL, the login when empty). Any other PostgreSQL role writes through the
    function, which records its login: naming someone else is refused before anything is written."""
    if session.get_bind().dialect.name != "postgresql":
        return Writer(uploader, through_function=False)
    login, direct = session.execute(text("SELECT session_user, has_table_privilege('runs', 'INSERT')")).one()
    if direct:
        return Writer(uploader or login, through_function=False)
    if uploader and uploader != login:
        raise StoreError(f"permission denied: runs pushed as database login {login!r} are recorded as uploaded "
                         f"by it; it cannot name {uploader!r} as the uploader")
    return Writer(login, through_function=True)


def push_run(session: Session, plan: _Plan, arrays: dict[str, bytes], origin: Origin | None = None) -> int:
    """Store ``plan`` as a new run with ``arrays`` (sha256 -> stored bytes, those not yet stored); its pk.

    The function also writes the push's write-log entry (migration 0004): the actor is always the
    caller's login; ``origin`` gives its channel and address (else the connection's address).
    """
    shas = sorted(arrays)
    dialect = session.get_bind().dialect
    payload = _payload(plan, shas)
    if origin is not None:
        payload["log"] = {"channel": origin.channel, **({"address": origin.address} if origin.address else {})}
    arguments = {
        "plan": json.dumps(payload, separators=(",", ":")),
        "fingerprint": _FINGERPRINT.process_bind_param(plan.run.fingerprint, dialect),
        "data": [arrays[sha] for sha in shas],
    }
    return session.execute(_CALL, arguments).scalar_one()


def _payload(plan: _Plan, shas: list[str]) -> dict[str, Any]:
    run = plan.run
    return {
        "machine": {"machine_key": plan.machine_key, "hostname": plan.hostname,
                    "seen": plan.captured_at.isoformat()},
        "environment": {"content_key": plan.environment_key, "digest": run.fingerprint_digest,
                        **plan.environment_columns},
        "run": {
            "run_id": run.run_id, "bundle_digest": plan.bundle_digest, "bundle_size": plan.bundle_size,
            "created_at": run.created_at, "captured_at": plan.captured_at.isoformat(), "label": run.label,
            "tags": _json(list(run.tags)), "note": run.note, "suite_id": run.suite_id,
            "suite_version": run.suite_version, "variant": run.variant, "device_class": plan.device_class,
            "settings": _json(run_extras.stored_settings(run)),
            "tool_version": run.tool_version, "imported": run.imported,
            "case_count": len(run.cases),
        },
        "arrays": [{"sha256": sha, "nbytes": len(plan.blobs[sha]), "codec": CODEC} for sha in shas],
        "outcomes": [{**row, "output_shape": _json(row["output_shape"]), "layers": _json(row["layers"])}
                     for row in plan.outcomes.values()],
        "links": [{"digest": digest, "array_sha": sha}
                  for digest in plan.outcomes for sha in plan.outcome_arrays[digest]],
        # repr keeps every float exactly, infinity included (JSON has no infinity; PostgreSQL reads "inf")
        "cases": [{"position": i, "outcome": digest, "repeats": case.repeats,
                   "repeat_identical": case.repeat_identical, "seconds": repr(case.seconds)}
                  for i, (case, digest) in enumerate(zip(plan.run.cases, plan.outcome_of_case))],
        "tags": sorted(set(run.tags)),
    }


def _json(value: Any) -> str:
    """A JSON column's text, as SQLAlchemy's JSON type writes it on the direct path."""
    return json.dumps(value)
