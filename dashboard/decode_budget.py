"""How many bytes of arrays the charts may decode: per page render, and at once in the whole server.

A valid bundle may hold 64 MiB arrays that compress to almost nothing, so a
page must not decode whatever its cases hold. Two bounds, both on decoded
(raw) bytes:

- ``DecodeBudget``: one page render (the Compare page with all its candidate
  tabs, or one HTML report case) decodes at most ``PAGE_DECODE_BYTES`` for
  charts; past it the charts that would need more are skipped and the page
  says so in one line (``DecodeBudgetExceeded.line``).
- ``DECODE_GATE``: the whole process decodes at most ``SERVER_DECODE_BYTES``
  for charts at once; a page that would pass it waits for the pages before
  it. Eight viewers of the heaviest pair therefore decode it one after the
  other instead of holding eight copies (the dashboard also caches what the
  charts draw, by array digest, so the later viewers decode nothing).

Pure Python (no Streamlit): the chart builders and the HTML report use it too.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from driftboard.core.errors import DriftboardError

MiB = 2**20
PAGE_DECODE_BYTES = 256 * MiB  # per page render: two pairs of the largest arrays a bundle may hold
SERVER_DECODE_BYTES = 128 * MiB  # at once in the process: one pair of the largest arrays


def mib(nbytes: int) -> str:
    return f"{nbytes / MiB:,.0f} MiB" if nbytes >= MiB else f"{nbytes / MiB:.1f} MiB"


class DecodeBudgetExceeded(DriftboardError):
    """Decoding these arrays would pass the page's budget: the charts that need them are skipped."""

    def __init__(self, what: str, needed: int, used: int, limit: int) -> None:
        self.what, self.needed, self.used, self.limit = what, needed, used, limit
        super().__init__(self.line)

    @property
    def line(self) -> str:
        """The one line a page shows where the charts would be."""
        spent = f" ({mib(self.used)} used by the charts above)" if self.used else ""
        return (f"Skipped {self.what}: their arrays need {mib(self.needed)} decoded, past this page's "
                f"{mib(self.limit)} budget for chart data{spent}; compare this candidate on its own to see them.")


class DecodeGate:
    """Decoded bytes in flight across every session of the process; a request waits until it fits.

    A request larger than the whole capacity still runs, alone (it would
    otherwise wait forever).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_flight = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self.in_flight == 0 or self.in_flight + nbytes <= self.capacity)
            self.in_flight += nbytes
        try:
            yield
        finally:
            release_freed_memory()
            with self._cond:
                self.in_flight -= nbytes
                self._cond.notify_all()


DECODE_GATE = DecodeGate(SERVER_DECODE_BYTES)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError, TypeError):  # musl and macOS lack it; Windows cannot open "None"
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand memory freed by a decode back to the OS (glibc ``malloc_trim``; nothing elsewhere).

    Decompressing a 64 MiB array allocates its output in growing blocks below
    glibc's mmap threshold; freed in a thread's arena (every Streamlit session
    runs in its own thread) they stay in the process's RSS. Measured on the
    8-viewer benchmark, the server kept ~70 MB more per decode without this.
    """
    if _TRIM is not None:
        _TRIM(0)


class DecodeBudget:
    """Bytes one page render may still decode for charts (shared by its tabs and cases, not by threads)."""

    def __init__(self, limit: int | None = None, gate: DecodeGate | None = DECODE_GATE) -> None:
        self.limit = PAGE_DECODE_BYTES if limit is None else limit
        self.used = 0
        self._gate = gate

    def check(self, nbytes: int, what: str) -> None:
        """Raise ``DecodeBudgetExceeded`` when ``nbytes`` more would pass the limit."""
        if self.used + nbytes > self.limit:
            raise DecodeBudgetExceeded(what, nbytes, self.used, self.limit)

    @contextmanager
    def decoding(self, nbytes: int, what: str) -> Iterator[None]:
        """Charge ``nbytes`` (refused past the limit) and hold the process-wide gate while they are decoded:
        the arrays must be dropped before the block ends."""
        self.check(nbytes, what)
        self.used += nbytes
        if self._gate is None:
            yield
            return
        with self._gate.hold(nbytes):
            yield
