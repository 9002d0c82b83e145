"""The team API's pushes, validated, stored and judged in worker processes (``push_and_judge``).

One Python process runs Python one thread at a time: a server that validated,
stored and judged every upload itself used one core, and its pages waited for
the uploads. Here each push runs in one of a few worker processes (one per
core by default, ``$DRIFTBOARD_PUSH_WORKERS``; 0: in the server itself),
started on the first push, each with its own store on the server's database.
Concurrent writers are the database's business as for any two pushers (SQLite
serialises them behind its busy timeout, ``ingest.py`` retries conflicts).

Workers are new interpreters (``spawn``: a threaded server is never forked);
they import the store, never the server's ``__main__`` (``_WorkerContext``),
the dashboard or torch, and exit when the server does. A pool that cannot be
started leaves the pushes to the server itself, with a warning in its log, and
so does a pool whose workers stop before finishing a single push; a worker
that dies later (killed) fails the pushes its pool held with
``BrokenProcessPool`` (503: push again) and the next push starts a new pool.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from multiprocessing import spawn
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from typing import Any

from driftboard.core.errors import DriftboardError
from driftboard.db.push import JudgedPush, push_and_judge, refusal
from driftboard.db.session import redacted
from driftboard.db.store import shared_store
from driftboard.db.store.open_stores import OpenStores

log = logging.getLogger(__name__)

WORKERS_ENV = "DRIFTBOARD_PUSH_WORKERS"
MAX_WORKERS = 32
IN_PROCESS_THREADS = 4  # pushes judged at once in the server itself (pool off, or not started)

__all__ = ["MAX_WORKERS", "WORKERS_ENV", "BrokenProcessPool", "PushWorkers", "configured_workers", "push_workers"]


def configured_workers() -> int:
    """Worker processes for pushes: ``$DRIFTBOARD_PUSH_WORKERS`` (0 to ``MAX_WORKERS``), else one per core."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not text:
        return min(cores, MAX_WORKERS)
    if not text.isascii() or not text.isdigit() or int(text) > MAX_WORKERS:
        log.warning("%s=%r is not a whole number from 0 to %d: using %d worker processes", WORKERS_ENV, text,
                    MAX_WORKERS, min(cores, MAX_WORKERS))
        return min(cores, MAX_WORKERS)
    return int(text)


class PushWorkers:
    """Pushes into one database, each run by ``push_and_judge`` in a worker process (or here, when there is none)."""

    def __init__(self, url: str, workers: int | None = None) -> None:
        self.url = url
        self.workers = configured_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None
        self._here: ThreadPoolExecutor | None = None
        self._failed = False  # the pool could not be started: pushes stay in this process
        self._worked = False  # the current pool finished a push
        self._lock = threading.Lock()

    def submit(self, path: Path, *, name: str, uploader: str, channel: str, address: str | None) -> Future[JudgedPush]:
        """Push one bundle file; the future's result is its ``JudgedPush`` (``BrokenProcessPool``: its worker died)."""
        args = (self.url, str(path), name, uploader, channel, address)
        for _ in range(2):  # a pool broken since the last push is replaced once
            pool = self._started()
            if pool is None:
                break
            try:
                future = pool.submit(_push, *args)
            except (BrokenProcessPool, RuntimeError):  # a worker died since, or the pool was shut down
                self._replace(pool)
                continue
            except OSError as exc:  # a worker process could not be started
                self._give_up(pool, f"cannot start a worker process ({exc})")
                break
            future.add_done_callback(lambda done, pool=pool: self._note(pool, done))
            return future
        return self._in_process().submit(_push, *args)

    def close(self) -> None:
        with self._lock:
            pool, here, self._pool, self._here = self._pool, self._here, None, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if here is not None:
            here.shutdown(wait=True)

    def _started(self) -> ProcessPoolExecutor | None:
        with self._lock:
            if self._pool is None and self.workers > 0 and not self._failed:
                try:
                    self._pool = ProcessPoolExecutor(self.workers, _WorkerContext(), initializer=_start_worker,
                                                     initargs=(self.url,))
                    self._worked = False
                except (OSError, ImportError, ValueError) as exc:  # no semaphores, no processes left, …
                    self._failed = True
                    log.warning("push workers: cannot start worker processes (%s): pushes run in the server "
                                "process", exc)
            return self._pool

    def _note(self, pool: ProcessPoolExecutor, done: Future[JudgedPush]) -> None:
        """A push finished: a pool that finished one works; one broken before any never started properly."""
        if done.cancelled():
            return
        if done.exception() is None:
            with self._lock:
                self._worked |= self._pool is pool
        elif isinstance(done.exception(), BrokenProcessPool):
            self._replace(pool)

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not pool:
                return  # replaced already
            self._pool = None
            worked = self._worked
        if not worked:
            self._give_up(pool, "its worker processes stopped before finishing a push")
            return
        log.warning("push workers of %s: a worker process stopped; the next push starts new ones",
                    redacted(self.url))
        pool.shutdown(wait=False, cancel_futures=False)

    def _give_up(self, pool: ProcessPoolExecutor, why: str) -> None:
        with self._lock:
            self._failed = True
            if self._pool is pool:
                self._pool = None
        log.warning("push workers of %s: %s: pushes run in the server process from now on", redacted(self.url), why)
        pool.shutdown(wait=False, cancel_futures=False)

    def _in_process(self) -> Executor:
        with self._lock:
            if self._here is None:
                self._here = ThreadPoolExecutor(IN_PROCESS_THREADS, thread_name_prefix="driftboard-push")
            return self._here


# ---------------------------------------------------------------- starting a worker process

_WORKER_NAME = "driftboard-push-worker"


class _WorkerProcess(SpawnProcess):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{_WORKER_NAME}-{self.name}"


class _WorkerContext(SpawnContext):
    """``spawn`` for push workers, which never run the server's ``__main__`` first.

    ``spawn`` starts a child by running the parent's ``__main__`` script (as ``__mp_main__``). Streamlit
    runs every page as a new ``__main__`` module whose file is the page script and leaves it there: a
    worker started after any page ran would run the dashboard, and die. Workers need nothing of
    ``__main__`` (their function is ``driftboard.db.push_workers._push``), so it is left out of their
    start: ``multiprocessing.spawn.get_preparation_data`` is wrapped (``_preparation_data``), changing
    only what processes named ``_WORKER_NAME`` get; any other process this one spawns is untouched.
    """

    Process = _WorkerProcess

    def __init__(self) -> None:
        super().__init__()
        spawn.get_preparation_data = _preparation_data  # once is enough; again changes nothing


_spawn_preparation = spawn.get_preparation_data  # the standard one, wrapped


def _preparation_data(name: str) -> dict[str, Any]:
    data = _spawn_preparation(name)
    if name.startswith(_WORKER_NAME):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


# ---------------------------------------------------------------- in a worker process (or the server itself)


def _start_worker(url: str) -> None:
    """A worker's start: Ctrl+C is the server's to handle, the server gone ends it, its store opened now."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True, name="driftboard-parent-watch").start()
    shared_store(url)


def _exit_with(parent: multiprocessing.process.BaseProcess) -> None:
    from multiprocessing.connection import wait

    wait([parent.sentinel])
    os._exit(0)  # the server was killed: nobody is waiting for an answer (a transaction under way rolls back)


def _push(url: str, path: str, name: str, uploader: str, channel: str, address: str | None) -> JudgedPush:
    try:
        store = shared_store(url)
    except DriftboardError as exc:  # the server opened it: failing here is the database's moment, not the bundle's
        return JudgedPush(replace(refusal(name, exc), retry=True))
    return push_and_judge(store, name, Path(path), uploader=uploader, channel=channel, address=address)


# ---------------------------------------------------------------- the server's pools, one per database

_POOLS: OpenStores[PushWorkers] = OpenStores(PushWorkers, max_open=4)
atexit.register(_POOLS.close_all)


def push_workers(url: str) -> PushWorkers:
    """This process's pushers into ``url`` (a resolved URL), made on first use (their processes on first push)."""
    return _POOLS.get(url)
