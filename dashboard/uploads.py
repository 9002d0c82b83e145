"""The Upload page's work: bundles pushed by ``db.push.push_files``, pasted reports imported.

Bundles go through the same library function as ``driftboard push``: each is
validated in full and stored in one transaction or refused with one line, a
bad file never stops the others, and a database locked past the busy timeout
stops the batch with the files not tried marked for retry (``PushOutcome.retry``).
This module only words the outcomes for the page.

A pasted ``collect_env`` report (``import_report``) becomes an
environment-only run the same way: parsed, written as a bundle, stored in one
transaction, or refused with one line.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from driftboard.core.bundle import bundle_bytes
from driftboard.core.collect_env import MAX_CHARS as MAX_REPORT_CHARS  # noqa: F401  (the paste box's cap: the parser's)
from driftboard.core.errors import DriftboardError, NotFoundError
from driftboard.core.imported import run_from_report
from driftboard.core.run import MemoryArrays
from driftboard.core.units import fmt_bytes
from driftboard.dashboard.format import markdown_text, safe_text
from driftboard.db.push import PushOutcome
from driftboard.db.session import redacted
from driftboard.db.store import Store

Status = Literal["stored", "already present", "refused"]
UPLOADER = "dashboard upload"

log = logging.getLogger(__name__)


def outcome_text(outcome: PushOutcome) -> str:
    """One pushed file's result as one line of plain text (the results table)."""
    words, size = _parts(outcome)
    return f"{words} ({size})" if size else words


def outcome_markdown(outcome: PushOutcome) -> str:
    """The same line for ``st.success`` and friends: the name in bold, user text escaped.

    The size is added after escaping: ``markdown_text`` collapses whitespace and
    would turn its no-break space into one the line may break at.
    """
    words, size = _parts(outcome)
    line = f"**{markdown_text(outcome.name, 120)}**: {markdown_text(words, 600)}"
    return f"{line} ({size})" if size else line


def _parts(outcome: PushOutcome) -> tuple[str, str]:
    result = outcome.result
    if result is None:
        return outcome.error, ""
    if not result.created:
        return f"already stored as run {result.run_id}: nothing written", ""
    return (f"stored as run {result.run_id}: {result.case_count} cases, {result.new_arrays} new arrays",
            fmt_bytes(result.new_bytes))


@dataclass(frozen=True)
class ImportOutcome:
    status: Status
    message: str  # one line
    run_id: str | None = None
    missing: tuple[str, ...] = ()  # what a partial report lacks (the report's own line names)


def import_report(store: Store, text: str, *, label: str = "", note: str = "",
                  uploader: str = UPLOADER, address: str | None = None) -> ImportOutcome:
    """A pasted ``collect_env`` report stored as an environment-only run; never raises for bad text.

    Logged in the write log as a push through the page, from ``address``.
    """
    try:
        run, parsed = run_from_report(text, label=label.strip(), note=note.strip())
        if _stored(store, run.run_id):  # the id comes from the text: the same report pasted again
            return ImportOutcome("already present", f"this report is already stored as run {run.run_id}: "
                                                    "nothing written", run.run_id)
        result = store.ingest(bundle_bytes(run, MemoryArrays()), uploader=uploader, channel="page", address=address)
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


@dataclass(frozen=True)
class TeamCommands:
    """What a team member runs on their machine: capture, then push over HTTP or straight to the database."""

    capture: str
    push_server: str | None  # None when this page's address is not known
    push_db: str


def team_commands(url: str, server: str | None) -> TeamCommands:
    """The commands for a store at ``url`` served at ``server`` (``server_address``); passwords hidden."""
    runs = "driftboard-runs/*.driftboard"
    over_http = (f"driftboard push {runs} --server {shlex.quote(server)} --token-file ~/.config/driftboard/token"
                 if server else None)
    return TeamCommands("driftboard capture --sweep -o driftboard-runs/", over_http,
                        f"driftboard push {runs} --db {shlex.quote(redacted(url))}")


def server_address(page_url: str | None, base_path: str = "") -> str | None:
    """The address ``--server`` takes for this dashboard: the page's scheme and host, and Streamlit's base path."""
    if not page_url:
        return None
    parts = urlsplit(page_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username or parts.password:
        return None
    base = base_path.strip("/")
    return f"{parts.scheme}://{parts.netloc}" + (f"/{base}" if base else "")
