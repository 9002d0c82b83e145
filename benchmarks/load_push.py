"""Load: 8 concurrent uploaders x 100 distinct bundles each through the real ``driftboard push``.

    .venv/bin/python benchmarks/load_push.py                     # SQLite and PostgreSQL, 3 rounds each
    .venv/bin/python benchmarks/load_push.py --only sqlite --rounds 1
    .venv/bin/python benchmarks/load_push.py --uploaders 8 --bundles 100 --per-invocation 25

The 800 bundles (a fleet: 80 machines x 10 runs, a seventh of the machines drifting on one case) are
generated once. Each round starts from a new database (a new SQLite file, whose schema the first pushes
create while racing each other; a new PostgreSQL schema, created by ``driftboard db upgrade``), releases
the uploaders together (each runs ``driftboard push`` on 25 files at a time, one process after the
other) and times until the last one exits. Then it checks: every push exited 0 with nothing on stderr;
exactly the 800 runs are stored, none missing, none extra; every run has its case count and all its
cases, outcomes and arrays (``tests/test_faults.py::integrity_problems``, arrays inflated and
sha256-checked); and pushing all 800 again stores nothing and says so for each. PostgreSQL needs the
test server (``DRIFTBOARD_TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1/test``).

Prints wall time and throughput (bundles/s) per round and their medians; exits 1 on any lost,
duplicated or partial run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from test_faults import (  # noqa: E402
    integrity_problems,
    make_bundles,
    postgres_schema,
    push,
    run_id_of,
    run_uploaders,
    stored_runs,
)


def generate(directory: Path, uploaders: int, bundles: int) -> list[dict[Path, int]]:
    """Per uploader, its ``bundles`` files: 10 machines of its own, ``bundles // 10`` runs each."""
    machines = 10
    return [make_bundles(directory / f"uploader-{u}",
                         [(u * machines + k % machines, k // machines) for k in range(bundles)])
            for u in range(uploaders)]


def one_round(url: str, groups: list[dict[Path, int]], per_invocation: int) -> dict[str, object]:
    load = run_uploaders(url, [list(g) for g in groups], files_per_invocation=per_invocation)
    expected = {run_id_of(p): cases for g in groups for p, cases in g.items()}
    stored = stored_runs(url)
    total = sum(len(g) for g in groups)
    check = {
        "failed pushes": load.failures,
        "lost": sorted(expected.keys() - stored.keys()),
        "unexpected": sorted(stored.keys() - expected.keys()),
        "wrong case count": sorted(k for k in expected.keys() & stored.keys() if stored[k] != expected[k]),
        "integrity": integrity_problems(url, deep=True),
    }
    every = [p for g in groups for p in g]
    start = time.perf_counter()
    again = push(every, url)
    repush = time.perf_counter() - start
    lines = again.stdout.splitlines()
    check["re-push stored something"] = [] if (again.returncode == 0 and len(lines) == total and all(
        ": already stored as run " in line for line in lines)) else [again.stderr[-500:] or again.stdout[-500:]]
    check["duplicates after re-push"] = [] if stored_runs(url) == stored else ["the re-push changed the runs"]
    return {"wall": load.wall, "rate": total / load.wall, "invocations": load.invocations, "stored": len(stored),
            "repush": repush, "problems": {k: v for k, v in check.items() if v}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="one database only")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per database (medians are quoted)")
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument("--bundles", type=int, default=100, help="distinct bundles per uploader")
    parser.add_argument("--per-invocation", type=int, default=25, help="files per driftboard push process")
    args = parser.parse_args()
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load_push: {args.uploaders} uploaders x {args.bundles} bundles, {args.per_invocation} per "
          f"`driftboard push`; {os.cpu_count()} CPUs, load average {load_average}", flush=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="driftboard-load-") as tmp:
        start = time.perf_counter()
        groups = generate(Path(tmp) / "bundles", args.uploaders, args.bundles)
        size = sum(p.stat().st_size for g in groups for p in g)
        print(f"generated {sum(len(g) for g in groups)} bundles ({size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        for backend in ("sqlite", "postgres"):
            if args.only and backend != args.only:
                continue
            results = []
            for round_ in range(args.rounds):
                if backend == "sqlite":
                    path = Path(tmp) / f"load-{round_}.sqlite"
                    result = one_round(f"sqlite:///{path}", groups, args.per_invocation)
                    result["size"] = path.stat().st_size
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
                else:
                    with postgres_schema("load") as url:
                        _db_upgrade(url)
                        result = one_round(url, groups, args.per_invocation)
                results.append(result)
                status = "OK" if not result["problems"] else f"PROBLEMS {result['problems']}"
                print(f"{backend:8} round {round_ + 1}: {result['stored']} runs stored in {result['wall']:.1f} s "
                      f"= {result['rate']:.1f} bundles/s ({result['invocations']} pushes); re-push of all: "
                      f"{result['repush']:.1f} s, nothing stored; {status}", flush=True)
                failed |= bool(result["problems"])
            print(f"{backend:8} median of {len(results)}: {statistics.median(r['wall'] for r in results):.1f} s, "
                  f"{statistics.median(r['rate'] for r in results):.1f} bundles/s; over all rounds: "
                  f"{sum(r['stored'] for r in results)} runs stored, lost {_count(results, 'lost')}, "
                  f"unexpected {_count(results, 'unexpected')}, wrong case count {_count(results, 'wrong case count')}, "
                  f"integrity problems {_count(results, 'integrity')}, failed pushes {_count(results, 'failed pushes')}, "
                  f"re-push stored again {_count(results, 're-push stored something')}", flush=True)
    sys.exit(1 if failed else 0)


def _count(results: list[dict], key: str) -> int:
    return sum(len(r["problems"].get(key, [])) for r in results)


def _db_upgrade(url: str) -> None:
    import subprocess

    from test_faults import CLI

    subprocess.run([*CLI, "db", "upgrade", "--db", url], cwd=REPO, check=True, capture_output=True)


if __name__ == "__main__":
    main()
