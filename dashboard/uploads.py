"""Uploaded bundles into the store, each on its own: one result line per file.

``Store.ingest`` validates a whole bundle before writing and writes it in one
transaction, so a refused file leaves nothing behind; this module makes sure
one bad file never stops the others and says, per file, what happened.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from core.bundle import DEFAULT_LIMITS
from core.errors import DriftboardError
from dashboard.format import safe_text
from db.session import redacted
from db.store import Store

Status = Literal["stored", "already present", "refused"]
UPLOADER = "dashboard upload"
MAX_UPLOAD_MB = max(1, DEFAULT_LIMITS.file_bytes // 2**20)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadOutcome:
    name: str  # the file name as uploaded (user text: show as text)
    status: Status
    message: str  # one line
    run_id: str | None = None


def ingest_upload(store: Store, name: str, data: bytes, uploader: str = UPLOADER) -> UploadOutcome:
    """Validate and store one uploaded file; never raises for a bad file."""
    try:
        result = store.ingest(data, uploader=uploader)
    except DriftboardError as exc:
        return UploadOutcome(name, "refused", str(exc))
    except Exception as exc:  # a bug, but one file must not stop the others: say so and keep the traceback in the log
        log.exception("unexpected error ingesting %s", safe_text(name))
        return UploadOutcome(name, "refused", f"unexpected error (a driftboard bug): {type(exc).__name__}: "
                                              f"{safe_text(exc)}")
    if not result.created:
        return UploadOutcome(name, "already present", f"already stored as run {result.run_id}: nothing written",
                             result.run_id)
    size = f"{result.new_bytes / 2**20:.1f} MiB" if result.new_bytes >= 2**20 else f"{result.new_bytes / 1024:.0f} KiB"
    return UploadOutcome(name, "stored", f"stored as run {result.run_id}: {result.case_count} cases, "
                                         f"{result.new_arrays} new arrays ({size})", result.run_id)


def ingest_uploads(store: Store, files: Iterable[tuple[str, bytes]], uploader: str = UPLOADER) -> list[UploadOutcome]:
    return [ingest_upload(store, name, data, uploader) for name, data in files]


def team_commands(url: str) -> tuple[str, str]:
    """The commands a team member runs on their machine: capture (with the settings sweep) and push here."""
    capture = "driftboard capture --sweep -o driftboard-runs/"
    push = f"driftboard push driftboard-runs/*.driftboard --db {shlex.quote(redacted(url))}"
    return capture, push
