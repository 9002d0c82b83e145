"""Memory of the heaviest valid comparison: two bundles whose float32 output is 64 MiB each.

    .venv/bin/python benchmarks/bench_memory.py                 # everything, medians of 3
    .venv/bin/python benchmarks/bench_memory.py --repeats 1 --no-serve
    .venv/bin/python benchmarks/bench_memory.py --before none   # this checkout only

The pair (``tests/heavy_pair.py``): 16 Mi float32 elements, mostly zeros (each
bundle is ~100 kB on disk), 24 elements moved by 1 to 2**20 ULP.

1. ``driftboard report golden cand -o report.html``: peak RSS of the whole
   process and its wall time, for this checkout and for "before": a copy of
   it whose metrics, ULP and chart modules are those of ``--before REV``
   (default: the last commit before the streaming metrics), run from
   ``PYTHONPATH``.
2. One in-process comparison (``compare_runs`` + the case charts + the worst
   elements) in a fresh process: the peak RSS it adds on top of the two loaded
   bundles (``/proc/self/clear_refs`` resets the high-water mark first), for
   both versions too.
3. A real ``driftboard serve`` on a SQLite database holding the pair, its
   Compare page opened by 8 concurrent sessions (8 pages of one headless
   Chromium, as ``tests/test_e2e_browser.py`` drives it); the RSS of the
   server's process tree is sampled every 50 ms until every page has rendered
   its charts. Target: peak <= 400 MB. Skipped without Chromium or Playwright.
   ``--layers`` does the same for the layered pair (output + three 64 MiB
   layers: the most a bundle may decode to), whose comparison itself
   (``Store.compare``, in ``db/store``) still decodes and keeps every array.

Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "benchmarks"), str(REPO / "tests")]

from heavy_pair import write_heavy_pair  # noqa: E402

from driftboard.core.processes import driftboard_command, python_command  # noqa: E402
from driftboard.db.session import ENV_VAR  # noqa: E402
from driftboard.db.store import Store  # noqa: E402

BEFORE = "9da4c68"  # the last commit before streaming metrics and bounded charts
MEMORY_FILES = ("core/compare/metrics.py", "core/compare/ulp.py", "dashboard/charts.py")  # what "before" undoes
CACHE = REPO / "artifacts" / "bench" / "heavy-pair"
CHROMIUM = Path(os.environ.get("DRIFTBOARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVE_TARGET_MB = 400
VIEWERS = 8
results: list[bool] = []

# Runs in a fresh process: the peak RSS a comparison adds on top of the two loaded bundles.
IN_PROCESS = r"""
import json, sys, time
from pathlib import Path
from driftboard.core.bundle import read_bundle
from driftboard.core.compare import compare_runs, worst_elements
from driftboard.dashboard import charts

def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024

a, b = read_bundle(Path(sys.argv[1])), read_bundle(Path(sys.argv[2]))
try:
    open("/proc/self/clear_refs", "w").write("5")  # the high-water mark restarts from here
except OSError:
    pass
start, floor = time.perf_counter(), max(status("VmRSS"), status("VmHWM"))
result = compare_runs(a.run, a.arrays, b.run, b.arrays)
case, old, new = result.cases[0], a.run.cases[0], b.run.cases[0]
after_compare = status("VmHWM")
figures = charts.case_figures(case, a.arrays, b.arrays, old, new)
worst = worst_elements(a.arrays.load(old.output), b.arrays.load(new.output), old.output.dtype)
print(json.dumps({"compare_mb": after_compare - floor, "all_mb": status("VmHWM") - floor,
                  "seconds": time.perf_counter() - start, "charts": len(figures.figures), "verdict": case.verdict.value}))
"""

# Runs a command and prints its peak RSS (the only child this wrapper waits for).
PEAK_OF_CHILD = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
                 "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t)")


def record(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    if ok is not None:
        results.append(ok)
    mark = "" if ok is None else ("  ok" if ok else "  MISSED")
    print(f"  {name:<62} {value:>18}  {target}{mark}", flush=True)


# ---------------------------------------------------------------- code versions


def old_checkout(rev: str, into: Path) -> dict[str, str]:
    """This checkout with the files of the memory work as they were at ``rev``, and the environment that runs
    it (a copy: nothing in the repository changes; the rest of the code is today's, so only they differ)."""
    target = into / "driftboard"
    shutil.copytree(REPO, target, ignore=shutil.ignore_patterns(".git", ".venv", "artifacts", "__pycache__", ".*cache",
                                                                 ".hypothesis", "*.egg-info", "driftboard-runs"))
    for path in MEMORY_FILES:
        old = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, check=True, capture_output=True).stdout
        (target / path).write_bytes(old)
    return {**os.environ, "PYTHONPATH": str(into)}


def versions(before: str, tmp: Path) -> dict[str, dict[str, str]]:
    out = {"after (this checkout)": dict(os.environ)}
    if before != "none":
        out = {f"before ({before})": old_checkout(before, tmp / "before"), **out}
    return out


# ---------------------------------------------------------------- report and in-process comparison


def bench_report(pair: tuple[Path, Path], envs: dict[str, dict[str, str]], repeats: int, tmp: Path) -> None:
    for label, env in envs.items():
        peaks, times = [], []
        for _ in range(repeats):
            command = driftboard_command("report", str(pair[0]), str(pair[1]), "-o", str(tmp / "report.html"))
            done = subprocess.run(python_command("-c", PEAK_OF_CHILD, *command), env=env, check=True,
                                  capture_output=True, text=True)
            peak, seconds = map(float, done.stdout.split())
            peaks.append(peak)
            times.append(seconds)
        record(f"driftboard report, peak RSS / wall time: {label}",
               f"{statistics.median(peaks):.0f} MB / {statistics.median(times):.1f} s")


def bench_in_process(pair: tuple[Path, Path], envs: dict[str, dict[str, str]], repeats: int) -> None:
    for label, env in envs.items():
        runs = []
        for _ in range(repeats):
            done = subprocess.run(python_command("-c", IN_PROCESS, str(pair[0]), str(pair[1])), env=env, check=True,
                                  capture_output=True, text=True)
            runs.append(json.loads(done.stdout))
        compare = statistics.median(r["compare_mb"] for r in runs)
        everything = statistics.median(r["all_mb"] for r in runs)
        seconds = statistics.median(r["seconds"] for r in runs)
        record(f"one comparison, peak RSS added: {label}", f"{compare:.0f} MB")
        record(f"  + case charts + worst elements: {label}", f"{everything:.0f} MB / {seconds:.1f} s")


# ---------------------------------------------------------------- a real server, 8 viewers


def tree_rss_mb(root: int) -> float:
    """RSS of ``root`` and every process below it, from /proc (MB)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = (Path("/proc") / str(pid) / "status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0) / 1024
    return total


class Sampler(threading.Thread):
    """Samples a process tree's RSS every ``interval`` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak, self.samples = pid, interval, 0.0, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss_mb(self.pid))
            self.samples += 1
            self.done.wait(self.interval)


def heavy_database(pair: tuple[Path, Path], tmp: Path) -> tuple[str, str, str]:
    url = f"sqlite:///{tmp / (pair[0].stem + '.sqlite')}"
    with Store(url) as store:
        ids = [store.ingest(path).run_id for path in pair]
    return url, ids[0], ids[1]


def bench_serve(pair: tuple[Path, Path], tmp: Path, repeats: int, what: str = "the heavy pair") -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        record("driftboard serve, 8 viewers", "skipped (no playwright)")
        return
    if not CHROMIUM.exists():
        record("driftboard serve, 8 viewers", "skipped (no chromium)")
        return
    url, baseline, candidate = heavy_database(pair, tmp)
    peaks, idle, times = [], [], []
    for _ in range(repeats):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
        proc = subprocess.Popen([*driftboard_command(), "serve", "--db", url, "--port", str(port)], cwd=REPO,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(base, proc)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
                warm = browser.new_page()  # imports and the first script run, outside the measurement
                warm.goto(base + "/")
                _rendered(warm, charts=0)
                warm.close()
                idle.append(tree_rss_mb(proc.pid))
                sampler = Sampler(proc.pid)
                sampler.start()
                start = time.perf_counter()
                pages = [browser.new_page(viewport={"width": 1400, "height": 1200}) for _ in range(VIEWERS)]
                for page in pages:  # all eight sessions start before any is waited for
                    page.goto(f"{base}/compare?baseline={baseline}&candidate={candidate}", wait_until="commit")
                for page in pages:
                    _rendered(page, charts=3)
                times.append(time.perf_counter() - start)
                sampler.done.set()
                sampler.join()
                peaks.append(max(sampler.peak, tree_rss_mb(proc.pid)))
                browser.close()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    peak = statistics.median(peaks)
    record(f"{what}: driftboard serve tree RSS before the viewers", f"{statistics.median(idle):.0f} MB")
    record(f"{what}: Compare page, {VIEWERS} sessions at once, all rendered", f"{statistics.median(times):.1f} s")
    record(f"{what}: serve tree peak RSS, {VIEWERS} viewers (max of runs {max(peaks):.0f})", f"{peak:.0f} MB",
           f"<= {SERVE_TARGET_MB} MB", max(peaks) <= SERVE_TARGET_MB)


def _rendered(page, charts: int) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=300_000)
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=300_000)
    if charts:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=300_000)


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


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--before", default=BEFORE, help="git revision to measure as 'before', or 'none'")
    parser.add_argument("--no-serve", action="store_true", help="skip the real-server measurement")
    parser.add_argument("--layers", action="store_true",
                        help="also serve the layered pair (four arrays, 256 MiB decoded per bundle)")
    args = parser.parse_args()
    pair = write_heavy_pair(CACHE)
    print(f"heavy pair: {pair[0].stat().st_size:,} and {pair[1].stat().st_size:,} bytes on disk, "
          "64 MiB float32 output each", flush=True)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        envs = versions(args.before, tmp)
        bench_in_process(pair, envs, args.repeats)
        bench_report(pair, envs, args.repeats, tmp)
        if not args.no_serve:
            bench_serve(pair, tmp, args.repeats)
            if args.layers:
                bench_serve(write_heavy_pair(CACHE, layers=True), tmp, args.repeats, "the layered pair")
    missed = results.count(False)
    print("all targets met" if not missed else f"{missed} target(s) missed", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
