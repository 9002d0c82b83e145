"""The team API's speed: HTTP push throughput from 8 clients, and the first page of runs at 10,000 runs.

    .venv/bin/python benchmarks/bench_api.py                       # SQLite and PostgreSQL push, 10k list
    .venv/bin/python benchmarks/bench_api.py --only sqlite --rounds 1 --bundles 20

1. Push: 8 clients x 100 distinct default-suite-sized bundles (``tests/test_faults.make_bundles``: a fleet
   where a seventh of the machines drift on one case), each client on one kept-alive HTTP connection with a
   member's bearer token, all released together, against a real ``driftboard serve`` (access file, golden
   set, so every push is also judged against it) on a new database per round. Checks afterwards: every
   push answered 201 with its run id, exactly the 800 runs stored (0 lost, 0 duplicated) and each whole
   (``test_faults.integrity_problems``: cases, outcomes, arrays). Target (SQLite): >= 40 bundles/s in
   total. PostgreSQL is measured too (the test server, ``DRIFTBOARD_TEST_POSTGRES_URL``), without a target.
   The server's CPU per bundle counts its push worker processes (``db/push_workers.py``) too; the RSS of
   the server and of each process under it is printed after the round.
2. List: ``GET /api/v1/runs`` (first page, 50 runs, verdicts against the golden) on a copy of
   ``bench_store``'s 10,000-run fleet (built once by ``bench_dashboard.database_10k``, cached), timed on
   the client from request to last byte, after one warm-up request. Target: <= 50 ms median.

Prints each round and the medians; exits 1 when a target is missed or a run is lost, duplicated or partial.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from api_server import TOKENS, Server, serving, write_access_file  # noqa: E402
from test_faults import integrity_problems, make_bundles, postgres_schema, run_id_of, stored_runs  # noqa: E402

PUSH_TARGET = 40.0  # bundles/s, SQLite
LIST_TARGET = 0.050  # s
TOKEN = TOKENS["ci"][1]


def generate(directory: Path, clients: int, bundles: int) -> list[list[Path]]:
    machines = 10
    return [list(make_bundles(directory / f"client-{c}",
                              [(c * machines + k % machines, 1 + k // machines) for k in range(bundles)]))
            for c in range(clients)]


def push_all(server: Server, groups: list[list[Path]]) -> tuple[float, list[str], list[float]]:
    """Wall time of every group pushed by its own client at once; failures; each push's latency."""
    barrier = threading.Barrier(len(groups) + 1)
    failures: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def client(files: list[Path]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        barrier.wait()
        for path in files:
            data = path.read_bytes()
            started = time.perf_counter()
            conn.request("POST", "/api/v1/runs", data, {"Content-Type": "application/octet-stream",
                                                        "Authorization": f"Bearer {TOKEN}"})
            response = conn.getresponse()
            body = response.read()
            with lock:
                latencies.append(time.perf_counter() - started)
                if response.status != 201 or run_id_of(path).encode() not in body:
                    failures.append(f"{path.name}: {response.status} {body[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=client, args=(files,)) for files in groups]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, failures, latencies


def one_round(url: str, directory: Path, groups: list[list[Path]], golden: Path) -> dict[str, object]:
    from driftboard.db.store import Store

    access = write_access_file(directory / "team-auth.toml")
    with serving(url, directory, access_file=access) as server:
        assert server.push(golden.read_bytes(), {"Authorization": f"Bearer {TOKEN}"}).status == 201
        with Store(url) as store:
            store.set_golden(run_id_of(golden), set_by="bench")
        cpu_before, own_before = cpu_seconds(server.proc.pid), cpu_seconds(server.proc.pid, alone=True)
        wall, failures, latencies = push_all(server, groups)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        own = cpu_seconds(server.proc.pid, alone=True) - own_before
        workers = [rss_mb(pid) for pid in server_pids(server.proc.pid)[1:]]
        rss = rss_mb(server.proc.pid), workers
    expected = {run_id_of(p) for g in groups for p in g} | {run_id_of(golden)}
    stored = stored_runs(url)
    problems = failures + [f"lost {sorted(expected - stored.keys())[:5]}"] * bool(expected - stored.keys()) \
        + [f"extra {sorted(stored.keys() - expected)[:5]}"] * bool(stored.keys() - expected) \
        + integrity_problems(url)
    total = sum(len(g) for g in groups)
    return {"wall": wall, "rate": total / wall, "latency": statistics.median(latencies), "problems": problems,
            "cpu": cpu / total, "own_cpu": own / total, "rss": rss}


def cpu_seconds(pid: int, *, alone: bool = False) -> float:
    """CPU time (user + system) the server and its worker processes have used (``alone``: the server process
    only): its cost per bundle whatever else loads the machine (a worker that exited is counted once waited
    for: ``cutime``/``cstime``)."""
    total = 0.0
    for one in [pid] if alone else server_pids(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:13 if alone else 15]) / os.sysconf("SC_CLK_TCK")
    return total


def server_pids(pid: int) -> list[int]:
    """The server process and every process under it (its push workers)."""
    found, todo = [], [pid]
    while todo:
        one = todo.pop()
        found.append(one)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{one}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_text(rss: object) -> str:
    server, workers = rss  # type: ignore[misc]
    others = ", ".join(f"{mb:.0f}" for mb in workers)
    return f"server {server:.0f} MB, its other processes [{others}] MB"


def bench_push(args: argparse.Namespace, tmp: Path) -> bool:
    started = time.perf_counter()
    groups = generate(tmp / "bundles", args.clients, args.bundles)
    (golden,) = make_bundles(tmp / "golden", [(999, 1)])
    size = sum(p.stat().st_size for g in groups for p in g)
    print(f"generated {sum(len(g) for g in groups)} bundles ({size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    ok = True
    for backend in ("sqlite", "postgres"):
        if args.only and backend != args.only:
            continue
        results = []
        for round_ in range(args.rounds):
            directory = Path(tempfile.mkdtemp(prefix=f"{backend}-{round_}-", dir=tmp))
            if backend == "sqlite":
                result = one_round(f"sqlite:///{directory / 'team.sqlite'}", directory, groups, golden)
            else:
                with postgres_schema("benchapi") as url:
                    from driftboard.db.migrate import upgrade
                    from driftboard.db.session import make_engine

                    engine = make_engine(url)
                    upgrade(engine)
                    engine.dispose()
                    result = one_round(url, directory, groups, golden)
            shutil.rmtree(directory, ignore_errors=True)
            results.append(result)
            status = "OK: 0 lost, 0 duplicated, 0 partial" if not result["problems"] else \
                f"PROBLEMS {result['problems'][:5]}"
            print(f"{backend:8} round {round_ + 1}: {result['rate']:.1f} bundles/s ({result['wall']:.1f} s), "
                  f"median push {result['latency'] * 1000:.0f} ms, server CPU {result['cpu'] * 1000:.0f} ms per "
                  f"bundle with its workers ({result['own_cpu'] * 1000:.0f} ms in the server process); "
                  f"RSS {rss_text(result['rss'])}; {status}", flush=True)
            ok &= not result["problems"]
        rate = statistics.median(r["rate"] for r in results)
        met = rate >= PUSH_TARGET if backend == "sqlite" else True
        ok &= met
        target = f" (target >= {PUSH_TARGET:g}: {'ok' if met else 'MISSED'})" if backend == "sqlite" else ""
        print(f"{backend:8} median of {len(results)}: {rate:.1f} bundles/s from {args.clients} clients, median push "
              f"{statistics.median(r['latency'] for r in results) * 1000:.0f} ms{target}", flush=True)
    return ok


def bench_list(args: argparse.Namespace, tmp: Path) -> bool:
    import bench_dashboard

    _wait_for_a_build_under_way(args.wait_build)
    source = bench_dashboard.database_10k()
    copy = tmp / "list-10k.sqlite"
    shutil.copyfile(source, copy)
    with serving(f"sqlite:///{copy}", tmp, access_file=write_access_file(tmp / "list-auth.toml")) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        times = []
        cpu_before = 0.0
        for i in range(args.list_repeats + 1):
            if i == 1:
                cpu_before = cpu_seconds(server.proc.pid)
            started = time.perf_counter()
            conn.request("GET", "/api/v1/runs", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            assert response.status == 200 and b'"total":10000' in body, body[:200]
            if i:  # the first one opens the store and computes what is not cached
                times.append(elapsed)
        conn.close()
        cpu = (cpu_seconds(server.proc.pid) - cpu_before) / len(times)
    median = statistics.median(times)
    ok = median <= LIST_TARGET
    print(f"GET /api/v1/runs, first page of 10,000 runs: median {median * 1000:.1f} ms over {len(times)} "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}), server CPU {cpu * 1000:.1f} ms per request "
          f"(target <= {LIST_TARGET * 1000:g} ms: "
          f"{'ok' if ok else 'MISSED'})", flush=True)
    return ok


def _wait_for_a_build_under_way(seconds: float) -> None:
    """Another benchmark building the cached 10k database: wait for it (starting a build would delete its files)."""
    import bench_store

    deadline = time.monotonic() + seconds
    building = list(bench_store.CACHE.glob("dashboard-10k-*.building"))
    if building:
        print(f"waiting up to {seconds:.0f} s for the 10k database being built ({building[0].name})", flush=True)
    while building and time.monotonic() < deadline:
        time.sleep(5)
        building = [path for path in building if path.exists()]
    if building:
        raise SystemExit(f"the 10k database is still being built ({building[0]}): run again when it is done")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="push on one database only")
    parser.add_argument("--rounds", type=int, default=3, help="push rounds per database (the median is quoted)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--bundles", type=int, default=100, help="distinct bundles per client")
    parser.add_argument("--list-repeats", type=int, default=30)
    parser.add_argument("--no-list", action="store_true", help="skip the 10,000-run list")
    parser.add_argument("--no-push", action="store_true", help="skip the push throughput")
    parser.add_argument("--wait-build", type=float, default=1800, help="seconds to wait for a 10k build under way")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench_api: {args.clients} clients x {args.bundles} bundles; {os.cpu_count()} CPUs, load average {load}",
          flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="driftboard-bench-api-") as name:
        tmp = Path(name)
        if not args.no_push:
            ok &= bench_push(args, tmp)
        if not args.no_list:
            ok &= bench_list(args, tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
