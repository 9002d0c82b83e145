"""Golden runs kept in memory by a long-lived process, so judging each push does not reload its golden.

A stored run's content never changes: it is keyed here by its run id and bundle
digest (a run deleted and another pushed under the same id has another digest),
so nothing kept needs invalidating. Which run is the golden is always asked of
the database (``verdicts.pushed_verdict``): a golden changed takes effect at the
next push. The arrays read while comparing are kept with their run (``DbArrays``'
own bounded cache); only the few most recently used goldens are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy.engine import Engine

from driftboard.core.run import Run
from driftboard.db.store.arrays import DbArrays
from driftboard.db.store.queries import load_run

MAX_GOLDENS = 4  # a team has one golden per suite version and device class: a few at a time
GoldenKey = tuple[str, str]  # (run id, bundle digest)


class GoldenRuns:
    """A bounded, thread-safe cache of golden runs and their arrays, by (run id, bundle digest)."""

    def __init__(self, max_runs: int = MAX_GOLDENS) -> None:
        self._runs: OrderedDict[GoldenKey, tuple[Run, DbArrays]] = OrderedDict()
        self._max_runs = max_runs
        self._lock = threading.Lock()

    def get(self, engine: Engine, run_id: str, bundle_digest: str) -> tuple[Run, DbArrays]:
        """The run and an array source that keeps what it read; loaded from the database on first use."""
        key = (run_id, bundle_digest)
        with self._lock:
            found = self._runs.get(key)
            if found is not None:
                self._runs.move_to_end(key)
                return found
        found = load_run(engine, run_id), DbArrays(engine)  # outside the lock: two threads may both load it once
        with self._lock:
            self._runs[key] = found
            while len(self._runs) > self._max_runs:
                self._runs.popitem(last=False)
        return found

    def __len__(self) -> int:
        return len(self._runs)
