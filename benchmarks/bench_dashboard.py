"""Dashboard speed and memory with 10,000 runs in SQLite; medians on this machine.

    .venv/bin/python benchmarks/bench_dashboard.py             # everything
    .venv/bin/python benchmarks/bench_dashboard.py --repeats 3 --no-serve

The database is ``benchmarks/bench_store.py``'s 10,000-run fleet (200 machines
x 50 runs, torch and driver upgrades, a GPU quarter, drift on some machines,
CPU and GPU goldens, verdicts computed), built by its ``build_10k`` once into
``artifacts/bench/dashboard-10k-*.sqlite`` (about two minutes) and cached;
the pages run on a copy.

1. Server-side render time of each page, ``AppTest.run()`` after a warm-up
   run, in two states: "warm" (the comparisons a page needs are in
   ``st.cache_data`` already: a user clicking around) and "cold data cache"
   (``st.cache_data`` cleared before every run: the comparisons are computed
   again from the database; the ``Store`` and its engine stay, as on a
   running server). Targets: Runs <= 1.5 s and Compare <= 1.5 s; Drift matrix
   for 200 runs x the default CPU suite <= 2 s; both states must meet them.
   With own cases: two more runs whose bundles also carry the team's own
   200-module model in statistics mode (``bench_store.own_bundle``; the
   candidate's moved from module call 100 on) are stored in the copy, dated
   before the fleet so the other pages see the same first rows; Compare on
   that pair, and the drift matrix against the first of them (200 runs x the
   suite and the own column), are timed in the same run against the same
   targets.
2. Memory: the peak RSS of this process after rendering every page (AppTest
   runs the pages in-process), and the RSS of a real ``driftboard serve``
   process after Chromium has opened every page through HTTP and WebSocket
   (skipped without Chromium or with ``--no-serve``). Target: <= 400 MB.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

import bench_store  # noqa: E402

from driftboard.core.processes import driftboard_command  # noqa: E402
from driftboard.db.session import ENV_VAR  # noqa: E402
from driftboard.db.store import RunFilter, Store  # noqa: E402

APP = REPO / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TARGETS = {"runs": 1.5, "compare": 1.5, "matrix": 2.0}
RSS_TARGET_MB = 400
MATRIX_RUNS = 200
results: list[bool] = []


def record(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    if ok is not None:
        results.append(ok)
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<58} {value:>12}  {target}{mark}", flush=True)


# ---------------------------------------------------------------- the 10k database


def database_10k() -> Path:
    """bench_store's 10,000-run fleet, built with its builder into a file of this benchmark's own (cached), so
    a concurrent ``bench_store.py --rebuild`` never pulls it away mid-run."""
    key = hashlib.sha256(
        f"{bench_store.BUILD_VERSION}/{bench_store.MACHINES}/{bench_store.RUNS_PER_MACHINE}".encode()).hexdigest()[:10]
    path = bench_store.CACHE / f"dashboard-10k-{key}.sqlite"
    if path.exists():
        with Store(f"sqlite:///{bench_store.upgraded(path)}", create_if_empty=False) as store:
            if store.stats().runs == bench_store.MACHINES * bench_store.RUNS_PER_MACHINE:
                return path
        path.unlink()
    bench_store.CACHE.mkdir(parents=True, exist_ok=True)
    bench_store.build_10k(path)
    return path


# ---------------------------------------------------------------- render times


def _median_run(at, repeats: int, clear: Callable[[], None] | None) -> float:
    times = []
    for _ in range(repeats):
        if clear:
            clear()
        start = time.perf_counter()
        at.run(timeout=300)
        times.append(time.perf_counter() - start)
        assert not at.exception, [e.value for e in at.exception]
    return statistics.median(times)


def bench_pages(url: str, repeats: int) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ[ENV_VAR] = url
    with Store(url) as store:
        golden = next(g for g in store.goldens("default") if g.key.device_class == "cpu")
        drifting = store.runs(RunFilter(machine="host-0001"), per_page=1).runs[0].run_id  # AVX2: drifts
        stats = store.stats()
        own_pair = _store_own_pair(store)
    record("database: runs / machines", f"{stats.runs} / {stats.machines}")
    pages = {
        "runs": ("app_pages/runs.py", {}, {}),
        "compare": ("app_pages/compare.py", {"baseline": golden.run_id, "candidate": drifting}, {}),
        "matrix": ("app_pages/matrix.py", {}, {}),
        "machines": ("app_pages/machines.py", {"machine": "host-0001"}, {}),
        "compare, with own cases": ("app_pages/compare.py", {"baseline": own_pair[0], "candidate": own_pair[1]}, {}),
        "matrix, with own cases": ("app_pages/matrix.py", {}, {"matrix_baseline": own_pair[0]}),
    }
    for name, (page, params, session) in pages.items():
        at = AppTest.from_file(str(APP), default_timeout=300)
        at.query_params.update(params)
        for key, value in session.items():
            at.session_state[key] = value
        start = time.perf_counter()
        at.switch_page(page).run()  # warm-up: imports, engine, first queries
        first = time.perf_counter() - start
        assert not at.exception, [e.value for e in at.exception]
        at.query_params.update(params)
        detail = _describe(name, at)
        warm = _median_run(at, repeats, None)
        cold = _median_run(at, repeats, st.cache_data.clear)
        target = TARGETS.get(name.split(",")[0])
        label = f"{name} page{detail}"
        record(f"{label}: first run in this process", f"{first:.2f} s")
        for state, seconds in (("warm", warm), ("cold data cache", cold)):
            record(f"{label}: {state}", f"{seconds:.2f} s", f"<= {target} s" if target else "",
                   seconds <= target if target else None)


def _store_own_pair(store: Store) -> tuple[str, str]:
    """Two runs with own cases (a CPU machine of the fleet, its own model moved on the second), dated before
    the fleet: (baseline, candidate) run ids."""
    ids = []
    for seq, moved in ((0, False), (1, True)):
        data = bench_store.own_bundle(0, seq, moved=moved, label="own models", run_id=f"own-models-{seq}",
                                      created_at=bench_store.BASE_TIME - timedelta(days=2 - seq))
        ids.append(store.ingest(data, uploader="bench").run_id)
    return ids[0], ids[1]


def _describe(name: str, at) -> str:
    if name.startswith("matrix"):
        fig = at.get("plotly_chart")[0].proto.spec
        import json

        trace = json.loads(fig)["data"][0]
        return f" ({len(trace['y'])} runs x {len(trace['x'])} cases)"
    if name == "runs":
        return f" ({len(at.dataframe[0].value)} rows of 10,000)"
    if name.startswith("compare"):
        return f" ({len(at.get('plotly_chart'))} charts)"
    return ""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


# ---------------------------------------------------------------- a real server


def bench_serve(url: str) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        record("driftboard serve RSS", "skipped (no playwright)")
        return
    if not CHROMIUM.exists():
        record("driftboard serve RSS", "skipped (no chromium)")
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.Popen([*driftboard_command(), "serve", "--db", url, "--port", str(port)], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, proc)
        with Store(url) as store:
            golden = next(g for g in store.goldens("default") if g.key.device_class == "cpu")
            drifting = store.runs(RunFilter(machine="host-0001"), per_page=1).runs[0].run_id
        paths = ["/", "/upload", f"/compare?baseline={golden.run_id}&candidate={drifting}", "/matrix",
                 "/machines?machine=host-0001", "/"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            for path in paths:
                start = time.perf_counter()
                page.goto(base + path)
                page.wait_for_selector("[data-testid='stMain'] h1", timeout=120_000)
                page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=120_000)
                page.wait_for_timeout(500)
                record(f"serve: {path[:40]} in the browser", f"{time.perf_counter() - start:.2f} s")
            browser.close()
        rss, hwm = _rss(proc.pid)
        record("driftboard serve process RSS after every page", f"{rss:.0f} MB", f"<= {RSS_TARGET_MB} MB",
               rss <= RSS_TARGET_MB)
        record("driftboard serve process peak RSS (VmHWM)", f"{hwm:.0f} MB", f"<= {RSS_TARGET_MB} MB",
               hwm <= RSS_TARGET_MB)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _wait(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"driftboard serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise SystemExit("driftboard serve did not become healthy")


def _rss(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per page and state (median)")
    parser.add_argument("--no-serve", action="store_true", help="skip the real-server memory measurement")
    args = parser.parse_args()
    source = database_10k()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "dashboard-10k.sqlite"
        shutil.copy(source, copy)  # the pages write verdicts they compute: keep the cached file as built
        url = f"sqlite:///{copy}"
        print(f"pages on a copy of {source.name}, AppTest.run() median of {args.repeats} after a warm-up", flush=True)
        bench_pages(url, args.repeats)
        rss = peak_rss_mb()
        record("this process (AppTest, every page) peak RSS", f"{rss:.0f} MB", f"<= {RSS_TARGET_MB} MB",
               rss <= RSS_TARGET_MB)
        if not args.no_serve:
            print("a real driftboard serve process, every page opened in Chromium", flush=True)
            bench_serve(url)
    missed = results.count(False)
    print("all targets met" if not missed else f"{missed} target(s) missed", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
