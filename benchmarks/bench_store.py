"""Benchmarks of the store against the issue's targets; medians on this machine.

    .venv/bin/python benchmarks/bench_store.py            # everything (builds the 10k database once)
    .venv/bin/python benchmarks/bench_store.py --quick    # smaller samples, same targets
    .venv/bin/python benchmarks/bench_store.py --only ingest,queries,space --rebuild

1. ingest: default-suite bundle files (bytes) into SQLite, one ``Store.ingest``
   each (full validation included). Two kinds: a fleet that agrees (arrays
   already stored) and every array new (worst case). Target: >= 50 bundles/s
   (median). For information, the GPU machine's suite (52 cases, 2.8 MB, every
   array new), whose validation alone (``read_bundle``) takes most of 20 ms here;
   and with ``--postgres URL`` the same into PostgreSQL. With own cases: the
   same 18-case bundles also carrying a statistics-mode record of the team's
   own 200-module model (``own_bundle``; outputs whole, 200 module calls as
   statistics), agreeing and every array new, measured in the same run against
   the same target.
2. queries: a SQLite database of 10,000 runs (200 machines x 50 runs, torch and
   driver upgrades, a GPU quarter, some drift, goldens and their verdicts),
   built once and cached under ``artifacts/bench/``. First page of runs with its
   total count, unfiltered and with each filter: <= 100 ms; one machine's
   history: <= 50 ms.
3. space: 1,000 runs from 1,000 machines with identical outputs: the database
   grows by no more than one run's arrays plus the 1,000 fingerprints.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from db_factory import BASE_TIME, SUITE, make_bundle, make_run, manifest_digest  # noqa: E402
from own_factory import chain, own_case  # noqa: E402

from driftboard.core.bundle import Bundle, bundle_bytes, read_bundle  # noqa: E402
from driftboard.core.run import MemoryArrays, Run  # noqa: E402
from driftboard.db.store import RunFilter, Store  # noqa: E402

CACHE = REPO / "artifacts" / "bench"
BUILD_VERSION = 3  # bump when the 10k database's recipe changes
MACHINES, RUNS_PER_MACHINE = 200, 50
GPU_FLEET = {"devices": ("cpu", "cuda"), "cuda": "12.4", "gpu": "NVIDIA A100-SXM4-80GB"}
results: list[tuple[str, str, str, bool | None]] = []


def record(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    results.append((name, value, target, ok))
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<52} {value:>22}  {target}{mark}", flush=True)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm: statement cache, SQLite page cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


# ---------------------------------------------------------------- 1. ingest

OWN_MODULES = 200  # module calls of the own model: bench_own_models.py's 100 x (Linear + Tanh)


def own_bundle(machine: int, seq: int, *, moved: bool = False, **options: object) -> bytes:
    """``make_bundle``'s 18-case suite run plus the team's own 200-module model in statistics mode (its output
    whole, each module call as statistics); ``moved`` changes it from module call 100 on, as drift would."""
    import numpy as np

    run, arrays = make_run(machine, seq, **options)
    x = np.random.RandomState(0).uniform(-1, 1, (32, 64)).astype(np.float32)
    calls = chain(x, OWN_MODULES, {100: 2.0**-20 * (1 + machine)} if moved else None)
    case = own_case(arrays, "deep", [("", calls[-1][3])], calls)
    return bundle_bytes(replace(run, cases=run.cases + (case,)), arrays)



def bench_ingest(n: int, postgres: str | None = None) -> None:
    kinds = {
        "fleet agrees (arrays already stored), 18 cases": [make_bundle(m, 1) for m in range(n)],
        "every array new, 18 cases": [make_bundle(m, 2, drift={c: m + 1 for c in SUITE}) for m in range(n)],
        "every array new, GPU suite, 52 cases": [
            make_bundle(m, 3, drift={c: m + 1 for c in SUITE}, driver="550.54.15", **GPU_FLEET) for m in range(n)],
        f"with own cases, fleet agrees, 18 + 1 own ({OWN_MODULES} modules)": [own_bundle(m, 4) for m in range(n)],
        f"with own cases, every array new, 18 + 1 own ({OWN_MODULES} modules)": [
            own_bundle(m, 5, moved=True, drift={c: m + 1 for c in SUITE}) for m in range(n)],
    }
    with tempfile.TemporaryDirectory() as tmp:
        print(f"ingest: {n} bundles of each kind into a new SQLite file, one Store.ingest each", flush=True)
        with Store(f"sqlite:///{tmp}/ingest.sqlite") as store:
            _ingest_kinds(store, kinds)
    if postgres:
        print(f"ingest: the same into PostgreSQL ({postgres.split('@')[-1]}), a new schema", flush=True)
        with _postgres_schema(postgres) as url, Store(url) as store:
            _ingest_kinds(store, kinds, target=False)


def _ingest_kinds(store: Store, kinds: dict[str, list[bytes]], target: bool = True) -> None:
    store.ingest(make_bundle(999, 1))  # the agreeing fleet's arrays are stored already
    store.ingest(own_bundle(999, 4))  # and so are those of the fleet that agrees with own cases
    for kind, bundles in kinds.items():
        times, cpu, validation = [], [], []
        for data in bundles:
            start = time.perf_counter()
            read_bundle(data)
            validation.append(time.perf_counter() - start)
        for data in bundles:
            start, start_cpu = time.perf_counter(), time.process_time()
            result = store.ingest(data)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert result.created
        rate = 1 / statistics.median(times)
        size = statistics.median(len(b) for b in bundles) / 1e6
        # The default suite on a CPU machine (like this one) is the 18-case suite: the target applies to it.
        applies = target and "GPU" not in kind
        record(f"{kind} ({size:.1f} MB)",
               f"{rate:.0f}/s (cpu {1 / statistics.median(cpu):.0f}/s, all {len(times) / sum(times):.0f}/s; "
               f"read_bundle alone {statistics.median(validation) * 1000:.0f} ms)",
               ">= 50/s" if applies else "", (rate >= 50) if applies else None)


class _postgres_schema:  # noqa: N801 - used as a context manager, like a function
    """A throwaway schema of a PostgreSQL database, migrated, as a URL."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.schema = f"bench_{os.getpid()}"

    def __enter__(self) -> str:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        from driftboard.db.migrate import upgrade
        from driftboard.db.session import make_engine, normalize_url

        admin = create_engine(normalize_url(self.base), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        admin.dispose()
        url = make_url(normalize_url(self.base)).update_query_dict({"options": f"-csearch_path={self.schema}"})
        self.url = url.render_as_string(hide_password=False)
        engine = make_engine(self.url)
        upgrade(engine)
        engine.dispose()
        return self.url

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import create_engine, text

        from driftboard.db.session import normalize_url

        admin = create_engine(normalize_url(self.base), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        admin.dispose()


# ---------------------------------------------------------------- 2. queries on 10,000 runs


def _fleet_run(machine: int, seq: int) -> tuple[Run, MemoryArrays]:
    """Run ``seq`` of ``machine`` in a plausible fleet history."""
    gpu = machine % 4 == 0
    torch = "2.4.1" if seq < 20 else ("2.5.1" if seq < 40 or machine % 3 else "2.6.0")
    options: dict[str, object] = {"torch_version": torch, "cpu_capability": "AVX2" if machine % 5 == 1 else "AVX512"}
    if gpu:
        options.update(GPU_FLEET, driver="535.183.01" if seq < 30 else "550.54.15")
        if machine % 8 == 4:
            options["gpu"] = "NVIDIA H100 80GB HBM3"
    drift = {}
    if machine % 5 == 1 and torch != "2.4.1":  # AVX2 machines drift on the BLAS-blocked case after the upgrade
        drift = {"linear_1024": 1, "lstm_2layer": 1 + seq % 2}
    tags = ("nightly",) + (("release",) if seq % 10 == 0 else ())
    return make_run(machine, seq, drift=drift, tags=tags, label=f"node-{machine:03d}",
                    created_at=BASE_TIME + timedelta(days=seq, minutes=machine), **options)


def build_10k(path: Path) -> None:
    print(f"building {MACHINES * RUNS_PER_MACHINE} runs into {path} (once; cached)", flush=True)
    start = time.perf_counter()
    tmp = path.with_suffix(".building")
    for stale in tmp.parent.glob(tmp.name + "*"):
        stale.unlink()
    with Store(f"sqlite:///{tmp}") as store:
        for seq in range(RUNS_PER_MACHINE):
            for machine in range(MACHINES):
                run, arrays = _fleet_run(machine, seq)  # already validated: built here, not read from a file
                bundle = Bundle(run, arrays, manifest_digest(run), sum(map(len, arrays.blobs.values())))
                store.ingest_bundle(bundle, uploader=f"user{machine % 7}")
            if seq % 10 == 9:
                print(f"  {(seq + 1) * MACHINES} runs, {time.perf_counter() - start:.0f} s", flush=True)
        for machine in (0, 1, 2):  # goldens: clean CPU and GPU baselines of the first day
            store.set_golden(f"m{machine:04d}-r00000-default", set_by="bench", reason="first clean run")
        verdict_start = time.perf_counter()
        computed = store.refresh_verdicts()
        record(f"verdicts against the goldens, computed once ({computed})",
               f"{time.perf_counter() - verdict_start:.1f} s")
    with Store(f"sqlite:///{tmp}") as store:
        _checkpoint(store)
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp}{suffix}").unlink(missing_ok=True)
    tmp.rename(path)
    record("10k database built", f"{time.perf_counter() - start:.0f} s")


def upgraded(path: Path) -> Path:
    """A cached database brought to this driftboard's schema (as ``driftboard db upgrade`` would), not rebuilt."""
    from driftboard.db.migrate import upgrade
    from driftboard.db.session import make_engine

    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


def bench_queries(repeats: int, rebuild: bool) -> None:
    key = hashlib.sha256(f"{BUILD_VERSION}/{MACHINES}/{RUNS_PER_MACHINE}".encode()).hexdigest()[:10]
    path = CACHE / f"store-10k-{key}.sqlite"
    CACHE.mkdir(parents=True, exist_ok=True)
    if rebuild or not path.exists():
        build_10k(path)
    upgraded(path)
    print(f"queries on {path.name}: first page (50 runs) + total count, median of {repeats}", flush=True)
    with Store(f"sqlite:///{path}") as store:
        stats = store.stats()
        record("runs / machines / environments / arrays",
               f"{stats.runs} / {stats.machines} / {stats.environments} / {stats.arrays}")
        record("database file", f"{path.stat().st_size / 1e6:.1f} MB")
        filters = {
            "no filter": RunFilter(),
            "torch 2.5": RunFilter(torch="2.5"),
            "machine host-0042": RunFilter(machine="host-0042"),
            "tag release": RunFilter(tags=("release",)),
            "GPU A100, driver 550": RunFilter(gpu="A100", driver="550"),
            "CPU capability AVX2": RunFilter(cpu_capability="avx2"),
            "label contains node-1": RunFilter(label="node-1"),
            "captured in one week": RunFilter(since=BASE_TIME + timedelta(days=10),
                                              until=BASE_TIME + timedelta(days=17)),
            "verdict within tolerance": RunFilter(verdict="within tolerance"),
            "torch 2.5 + AVX2 + verdict + tag": RunFilter(torch="2.5", cpu_capability="avx2",
                                                          verdict="within tolerance", tags=("nightly",)),
            "holds own case deep": RunFilter(own_case="deep"),
        }
        for name, f in filters.items():
            total = store.runs(f).total
            ms = median_ms(lambda f=f: store.runs(f), repeats)
            record(f"runs page 1 + count: {name} ({total})", f"{ms:.1f} ms", "<= 100 ms", ms <= 100)
        deep = median_ms(lambda: store.runs(page=150), repeats)
        record("runs page 150 + count: no filter", f"{deep:.1f} ms", "<= 100 ms", deep <= 100)
        machines = [f"host-{m:04d}" for m in range(0, MACHINES, max(1, MACHINES // repeats))][:repeats]
        store.machine_history(machines[0])
        times = []
        for machine in machines:
            start = time.perf_counter()
            history = store.machine_history(machine)
            times.append(time.perf_counter() - start)
            assert len(history) == RUNS_PER_MACHINE
        ms = statistics.median(times) * 1000
        record(f"machine history ({RUNS_PER_MACHINE} runs)", f"{ms:.1f} ms", "<= 50 ms", ms <= 50)
        case_ms = median_ms(lambda: store.case_results("m0004-r00030-default"), repeats)
        record("one run's 52 case results, no arrays", f"{case_ms:.1f} ms")


# ---------------------------------------------------------------- 3. space


def bench_space(n: int) -> None:
    print(f"space: {n} runs from {n} machines, identical outputs, into a new SQLite file", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "space.sqlite"
        with Store(f"sqlite:///{path}") as store:
            empty = _settled_size(store, path)
            first = read_bundle(make_bundle(0, 1))
            store.ingest(make_bundle(0, 1))
            one_run = store.stats()
            fingerprints = len(_canonical(first.run.fingerprint))
            for machine in range(1, n):
                run, _ = make_run(machine, 1)
                fingerprints += len(_canonical(run.fingerprint))
                store.ingest_bundle(Bundle(run, first.arrays, manifest_digest(run), len(first.arrays.blobs)))
            stats = store.stats()
            assert stats.runs == n and stats.arrays == one_run.arrays
            grown = _settled_size(store, path) - empty
    budget = one_run.stored_bytes + fingerprints
    record("one run's arrays (stored / raw)", f"{one_run.stored_bytes:,} / {one_run.array_bytes:,} B")
    record(f"{n} fingerprints (compact JSON)", f"{fingerprints:,} B ({fingerprints / n:,.0f} each)")
    record(f"database growth for {n} runs", f"{grown:,} B ({(grown - one_run.stored_bytes) / n:,.0f}/run)",
           f"<= {budget:,} B", grown <= budget)


def _checkpoint(store: Store) -> None:
    """Move the WAL into the database file (outside any transaction, or SQLite cannot)."""
    store.engine.dispose()
    raw = store.engine.raw_connection()
    try:
        busy, _, _ = raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "checkpoint blocked"
    finally:
        raw.close()


def _settled_size(store: Store, path: Path) -> int:
    _checkpoint(store)
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller samples (targets unchanged)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached 10k-run database")
    parser.add_argument("--only", default="ingest,queries,space", help="comma-separated: ingest,queries,space")
    parser.add_argument("--postgres", metavar="URL", help="also time ingest into this PostgreSQL database (own schema)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"driftboard store benchmark: {os.cpu_count()} CPUs, load average {load}, Python {sys.version.split()[0]}",
          flush=True)
    if "ingest" in only:
        bench_ingest(20 if args.quick else 60, args.postgres)
    if "queries" in only:
        bench_queries(7 if args.quick else 21, args.rebuild)
    if "space" in only:
        bench_space(200 if args.quick else 1000)
    missed = [name for name, _, _, ok in results if ok is False]
    print("all targets met" if not missed else f"targets missed: {', '.join(missed)}")
    print("(medians of wall time; 'cpu' is this process's CPU time, which other load on the machine does not inflate)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
