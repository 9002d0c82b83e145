"""Pushing many bundles into a store: one outcome per file, the same for every shell.

``driftboard push`` (also behind ``capture --push`` and ``import-env --push``)
and the dashboard's Upload page both call ``push_files``; they differ only in
how they show its outcomes. The team API pushes one bundle at a time and
answers its verdict too: ``push_and_judge`` (in a worker process of the
server's, ``push_workers.py``, or in the server itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from driftboard.core.bundle import Bundle, read_bounded, read_bundle
from driftboard.core.errors import DriftboardError
from driftboard.db.session import is_lock_timeout, is_unavailable
from driftboard.db.store.results import IngestResult

if TYPE_CHECKING:
    from driftboard.db.store import Store

Status = Literal["stored", "already present", "refused", "not attempted"]
Source = str | Path | tuple[str, str | Path | bytes]  # a file, or (the name to show, its path or bytes)
NOT_TRIED = "not tried: the database is locked"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PushOutcome:
    """What happened to one bundle; text is made by the shell that shows it."""

    name: str  # the file as the user named it (user text: show it as text)
    status: Status
    result: IngestResult | None = None  # stored, already present
    error: str = ""  # refused, not attempted: one line
    retry: bool = False  # the database failed, not the bundle: pushing it again later may store it

    @property
    def run_id(self) -> str | None:
        return self.result.run_id if self.result else None


@dataclass(frozen=True)
class JudgedPush:
    """One bundle pushed, and its worst verdict against the golden that applies (None: none, or not computed)."""

    outcome: PushOutcome
    verdict: str | None = None
    golden: str | None = None  # the golden's run id


def push_and_judge(store: Store, name: str, data: str | Path | bytes, *, uploader: str = "", channel: str = "api",
                   address: str | None = None) -> JudgedPush:
    """One bundle pushed as ``push_files`` pushes it, then judged against its golden (``Store.pushed_verdict``).

    The run is judged from the bundle just validated, in memory, not read back. A verdict that cannot be
    computed is logged and left out: the run is stored all the same (its verdict is computed on demand later).
    """
    read: list[Bundle] = []

    def ingest() -> IngestResult:
        read.append(read_bundle(read_bounded(data), streams=True))
        return store.ingest_bundle(read[0], uploader=uploader, channel=channel, address=address)

    outcome, _ = _push_one(name, ingest)
    if outcome.result is None:
        return JudgedPush(outcome)
    try:
        found = store.pushed_verdict(read[0].run, read[0].arrays)
    except DriftboardError as exc:
        log.warning("run %s stored, its verdict not computed: %s", outcome.result.run_id, exc)
        return JudgedPush(outcome)
    return JudgedPush(outcome, found.worst, found.golden_run_id) if found is not None else JudgedPush(outcome)


def push_files(store: Store, sources: Sequence[Source], *, uploader: str = "", channel: str = "cli",
               address: str | None = None, report: Callable[[PushOutcome], None] | None = None) -> list[PushOutcome]:
    """Validate and store each bundle on its own, in order; one outcome per source, never raising for a file.

    ``report`` is called with each outcome as soon as it is known (a shell prints it then). Each stored
    bundle is logged in the write log (``channel``: cli, page or api; ``address``: the client's, when a
    server knows it) in its own transaction; a refused or duplicate one logs nothing.

    A bad bundle is refused and the next one is tried. A SQLite database still
    locked by another writer after the busy timeout stops the batch: that bundle
    is refused and every later one is "not attempted", all with ``retry`` set.
    That loses nothing: none of them was written, each has its own outcome, and
    pushing them again stores them (a bundle already stored is recognised, never
    duplicated). Going on instead would make each remaining bundle wait the
    whole busy timeout again (30 s by default), holding a terminal or a browser
    request for minutes to fail the same way. Any other database failure (a
    PostgreSQL connection lost) does not stop the batch: the next bundle gets a
    new connection and usually goes in. An unexpected exception (a driftboard
    bug) is that bundle's outcome, logged with its traceback.
    """
    named = [_named(source) for source in sources]
    outcomes: list[PushOutcome] = []

    def done(outcome: PushOutcome) -> None:
        outcomes.append(outcome)
        if report is not None:
            report(outcome)

    for i, (name, data) in enumerate(named):
        outcome, locked = _push_one(name, lambda data=data: store.ingest(data, uploader=uploader, channel=channel,
                                                                         address=address))
        done(outcome)
        if locked:  # each later bundle would wait the whole busy timeout again
            for rest, _ in named[i + 1:]:
                done(PushOutcome(rest, "not attempted", error=NOT_TRIED, retry=True))
            break
    return outcomes


def _named(source: Source) -> tuple[str, str | Path | bytes]:
    if isinstance(source, tuple):
        return source
    return str(source), source


def _push_one(name: str, ingest: Callable[[], IngestResult]) -> tuple[PushOutcome, bool]:
    """One bundle's outcome (``ingest`` validates and stores it), and whether it met a lock held past the busy timeout."""
    try:
        result = ingest()
    except DriftboardError as exc:
        return refusal(name, exc), is_lock_timeout(exc)
    except Exception as exc:  # a bug, but one file must not stop the others: say so, keep the traceback in the log
        log.exception("unexpected error pushing %r", name)
        bug = f"unexpected error (a driftboard bug): {type(exc).__name__}: {_one_line(exc)}"
        return PushOutcome(name, "refused", error=bug), False
    return PushOutcome(name, "stored" if result.created else "already present", result), False


def refusal(name: str, exc: DriftboardError) -> PushOutcome:
    """A bundle refused for ``exc``: retry when the database failed, not the bundle."""
    return PushOutcome(name, "refused", error=_one_line(exc), retry=is_unavailable(exc))


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
