"""Stores kept open across calls in a long-lived process, with a lifetime.

Each ``Store`` owns an engine and its connection pool: a file handle per SQLite
connection, a server connection per PostgreSQL one. A process that opens stores
by URL as it goes (the dashboard server, a command comparing stored runs) keeps
at most ``max_open`` of them: the least recently used is closed when another
would exceed it, and every one left is closed at exit (``close_all``, registered
with ``atexit`` by the owner).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closeable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Closeable)


class OpenStores(Generic[S]):
    """One open store per URL, at most ``max_open``, least recently used closed first.

    A store closed on eviction while another thread still uses it keeps working:
    ``Engine.dispose`` closes idle connections at once and a connection in use
    when it is returned, and a later query opens a new one.
    """

    def __init__(self, opener: Callable[[str], S], *, max_open: int) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self._opener = opener
        self.max_open = max_open
        self._open: OrderedDict[str, S] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> S:
        """The open store of ``url`` (a resolved URL), opened now if it is not."""
        with self._lock:  # held while opening: two threads never open the same database twice
            store = self._open.get(url)
            if store is not None:
                self._open.move_to_end(url)
                return store
            store = self._opener(url)
            self._open[url] = store
            evicted = [self._open.popitem(last=False)[1] for _ in range(len(self._open) - self.max_open)]
        for old in evicted:
            old.close()
        return store

    def close_all(self) -> None:
        """Close every open store (at exit, or when a test is done with its databases)."""
        with self._lock:
            stores = list(self._open.values())
            self._open.clear()
        for store in stores:
            store.close()

    def urls(self) -> tuple[str, ...]:
        """The URLs open now, least recently used first."""
        with self._lock:
            return tuple(self._open)

    def __len__(self) -> int:
        return len(self._open)
