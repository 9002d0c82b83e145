"""How many wrong tokens the unlock box checks: per client address and for the whole server. Pure: no Streamlit.

A limit per browser session would be no limit (a script opens as many
sessions as it likes), and a delay would hold a server thread per guess.
Instead each failed attempt is remembered for a sliding window, by client
address and overall; once either count is full, further attempts are refused
at once, without hashing anything, until the oldest failure leaves the window.
Refused attempts are not counted, so a client that keeps trying is not
locked out longer, and memory stays bounded: a caller that asks
``retry_after`` first never makes it hold more than about ``overall`` failures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

PER_CLIENT = 5
OVERALL = 30
WINDOW_SECONDS = 300.0


class AttemptLimiter:
    """Failed attempts within ``window_seconds``: at most ``per_client`` per client and ``overall`` in total."""

    def __init__(self, per_client: int = PER_CLIENT, overall: int = OVERALL, window_seconds: float = WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_client < 1 or overall < per_client or window_seconds <= 0:
            raise ValueError("need 1 <= per_client <= overall and a positive window")
        self.per_client, self.overall, self.window = per_client, overall, window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._all: deque[float] = deque()
        self._by_client: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may have a token checked again; 0 when it may now."""
        with self._lock:
            now = self._clock()
            self._forget_before(now - self.window)
            waits = [0.0]
            if len(self._all) >= self.overall:
                waits.append(self._all[-self.overall] + self.window - now)
            mine = self._by_client.get(client)
            if mine is not None and len(mine) >= self.per_client:
                waits.append(mine[-self.per_client] + self.window - now)
            return max(waits)

    def failed(self, client: str) -> None:
        """Remember one wrong token from ``client``."""
        with self._lock:
            now = self._clock()
            self._forget_before(now - self.window)
            self._all.append(now)
            self._by_client.setdefault(client, deque()).append(now)

    def failures(self, client: str | None = None) -> int:
        """Failures still in the window: of one client, or of everyone."""
        with self._lock:
            self._forget_before(self._clock() - self.window)
            return len(self._all if client is None else self._by_client.get(client, ()))

    def _forget_before(self, cutoff: float) -> None:
        while self._all and self._all[0] <= cutoff:
            self._all.popleft()
        for client in list(self._by_client):
            mine = self._by_client[client]
            while mine and mine[0] <= cutoff:
                mine.popleft()
            if not mine:
                del self._by_client[client]


# One per server process: wrong tokens typed into the dashboard's unlock box and sent to its API count together.
TOKEN_ATTEMPTS = AttemptLimiter()
