"""A delete racing a push that shares its arrays, on PostgreSQL: how often either fails.

    .venv/bin/python benchmarks/race_delete_push.py [--rounds 100] [--jitter 0.05] [--postgres URL]

Each round stores run A, then one thread deletes A while another pushes B (another machine, the same
outputs: every array and outcome of A is B's too), both released by a barrier and each after a random
delay of up to ``--jitter`` seconds; then B is deleted. Prints how each side ended, counted over the
rounds. ``tests/test_db_races.py`` is the CI-sized version.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from db_factory import make_bundle  # noqa: E402
from test_faults import POSTGRES_DEFAULT, POSTGRES_ENV, postgres_schema, upgrade_schema  # noqa: E402

from driftboard.core.errors import DriftboardError  # noqa: E402
from driftboard.db.store import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--jitter", type=float, default=0.05, help="largest random delay after the barrier, seconds")
    parser.add_argument("--postgres", default=os.environ.get(POSTGRES_ENV) or POSTGRES_DEFAULT)
    args = parser.parse_args()
    os.environ[POSTGRES_ENV] = args.postgres
    a, b = make_bundle(1, 1, tags=("a",)), make_bundle(2, 1, tags=("b",))
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    with postgres_schema("race") as url:
        upgrade_schema(url)
        with Store(url) as deleter, Store(url) as pusher:
            for _ in range(args.rounds):
                deleter.ingest(a)
                barrier = threading.Barrier(2)

                def side(name: str, action, barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    threading.Event().wait(random.uniform(0, args.jitter))
                    try:
                        action()
                        outcomes[(name, "ok")] += 1
                    except DriftboardError as exc:
                        outcomes[(name, f"{type(exc).__name__}: {str(exc)[:100]}")] += 1
                    except Exception as exc:  # noqa: BLE001 - what this script counts
                        outcomes[(name, f"crash {type(exc).__name__}: {str(exc)[:60]}")] += 1

                threads = [threading.Thread(target=side, args=("delete", lambda: deleter.delete_run("m0001-r00001-default"))),
                           threading.Thread(target=side, args=("push", lambda: pusher.ingest(b)))]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                for run_id in ("m0001-r00001-default", "m0002-r00001-default"):
                    with contextlib.suppress(DriftboardError):  # one of them may be gone already
                        deleter.delete_run(run_id)
    for (side_name, outcome), count in sorted(outcomes.items()):
        print(f"{count:5d}  {side_name:<6}  {outcome}")
    failed = sum(count for (_, outcome), count in outcomes.items() if outcome != "ok")
    print(f"{args.rounds} rounds, jitter {args.jitter} s: {failed} of {2 * args.rounds} operations failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
