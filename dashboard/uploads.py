"""Uploaded bundles into the store, each on its own: one result line per file.

``Store.ingest`` validates a whole bundle before writing and writes it in one
transaction, so a refused file leaves nothing behind; this module makes sure
one bad file never stops the others and says, per file, what happened.

A pasted ``collect_env`` report (``import_report``) becomes an
environment-only run the same way: parsed, written as a bundle, stored in one
transaction, or refused with one line.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from driftboard.core.bundle import DEFAULT_LIMITS, bundle_bytes
from driftboard.core.errors import DriftboardError, NotFoundError, ReportParseError
from driftboard.core.imported import run_from_report
from driftboard.core.run import MemoryArrays
from driftboard.dashboard.format import safe_text
from driftboard.db.session import redacted
from driftboard.db.store import Store

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


@dataclass(frozen=True)
class ImportOutcome:
    status: Status
    message: str  # one line
    run_id: str | None = None
    missing: tuple[str, ...] = ()  # what a partial report lacks (the report's own line names)


MAX_REPORT_CHARS = 4 * 2**20  # as `driftboard import-env`


def import_report(store: Store, text: str, *, label: str = "", note: str = "",
                  uploader: str = UPLOADER) -> ImportOutcome:
    """A pasted ``collect_env`` report stored as an environment-only run; never raises for bad text."""
    try:
        if len(text) > MAX_REPORT_CHARS:
            raise ReportParseError(f"text is longer than {MAX_REPORT_CHARS:,} characters: not a collect_env report")
        run, parsed = run_from_report(text, label=label.strip(), note=note.strip())
        if _stored(store, run.run_id):  # the id comes from the text: the same report pasted again
            return ImportOutcome("already present", f"this report is already stored as run {run.run_id}: "
                                                    "nothing written", run.run_id)
        result = store.ingest(bundle_bytes(run, MemoryArrays()), uploader=uploader)
    except DriftboardError as exc:
        return ImportOutcome("refused", _one_line(exc))
    except Exception as exc:  # a bug: say so in one line and keep the traceback in the log
        log.exception("unexpected error importing a collect_env report")
        return ImportOutcome("refused", f"unexpected error (a driftboard bug): {type(exc).__name__}: {safe_text(exc)}")
    mapped = f"{parsed.mapped_lines} of {parsed.total_lines} report lines mapped to fingerprint fields"
    if not result.created:
        return ImportOutcome("already present", f"already stored as run {result.run_id}: nothing written",
                             result.run_id, parsed.missing)
    return ImportOutcome("stored", f"stored as run {result.run_id}: an environment-only run ({mapped})",
                         result.run_id, parsed.missing)


def _stored(store: Store, run_id: str) -> bool:
    try:
        return store.run(run_id).run_id == run_id
    except NotFoundError:
        return False


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return safe_text(lines[0] if lines else type(exc).__name__, 600)


def team_commands(url: str) -> tuple[str, str]:
    """The commands a team member runs on their machine: capture (with the settings sweep) and push here."""
    capture = "driftboard capture --sweep -o driftboard-runs/"
    push = f"driftboard push driftboard-runs/*.driftboard --db {shlex.quote(redacted(url))}"
    return capture, push
