"""8 HTTP clients pushing at once through the team API, on SQLite and PostgreSQL: 0 lost, 0 duplicated, 0 partial.

Each client pushes its own bundles and, racing its neighbour, two of the
neighbour's: every run must be stored exactly once (one 201, every other
push of it a 200 "already stored"), whole (``test_faults.integrity_problems``:
case counts, outcomes, arrays), and the dashboard must keep answering while
it happens. The benchmark (``benchmarks/bench_api.py``) runs the same at 100
bundles per client and times it.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from api_server import Server, bearer, serving, team_database, write_access_file
from test_faults import integrity_problems, make_bundles, run_id_of

from driftboard.db.store import Store

CLIENTS = 8
PER_CLIENT = 10


def push_concurrently(server: Server, groups: list[list[Path]]) -> tuple[list[tuple[str, int]], list[str]]:
    """Every group pushed by its own thread, all released together; (run id, status) of each push, and failures."""
    barrier = threading.Barrier(len(groups))
    answers: list[tuple[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def client(index: int, files: list[Path]) -> None:
        barrier.wait()
        for path in files:
            answer = server.push(path.read_bytes(), bearer("ci"))
            with lock:
                answers.append((run_id_of(path), answer.status))
                if answer.status not in (200, 201) or answer.json()["run_id"] != run_id_of(path):
                    failures.append(f"client {index}, {path.name}: {answer.status} {answer.body[:200]!r}")

    threads = [threading.Thread(target=client, args=(i, files)) for i, files in enumerate(groups)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, failures


def dashboard_latencies(server: Server, stop: threading.Event, seen: list[float]) -> None:
    """How long the dashboard's page and health take, over and over, until ``stop``."""
    while not stop.is_set():
        for path in ("/", "/_stcore/health"):
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=30) as response:
                assert response.status == 200
                response.read()
            seen.append(time.monotonic() - started)
        time.sleep(0.1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path) -> str:
    with team_database(request.param, tmp_path, "apiload") as url:
        yield url


def test_eight_clients_push_at_once_and_every_run_is_stored_once_and_whole(database: str, tmp_path: Path) -> None:
    keys = [(machine, seq) for machine in range(1, CLIENTS + 1) for seq in range(1, PER_CLIENT + 1)]
    files = make_bundles(tmp_path / "bundles", keys)
    by_client = [[path for path in files if path.name.startswith(f"m{machine:04d}-")]
                 for machine in range(1, CLIENTS + 1)]
    groups = [mine + by_client[(i + 1) % CLIENTS][:2] for i, mine in enumerate(by_client)]  # race the neighbour
    access = write_access_file(tmp_path / "team-auth.toml")
    with serving(database, tmp_path, access_file=access) as server:
        stop, latencies = threading.Event(), []
        watcher = threading.Thread(target=dashboard_latencies, args=(server, stop, latencies))
        watcher.start()
        try:
            answers, failures = push_concurrently(server, groups)
        finally:
            stop.set()
            watcher.join()
        assert failures == []
        assert latencies and max(latencies) < 10, sorted(latencies)[-3:]  # the dashboard kept answering
        listed = server.get("/api/v1/runs?per_page=1000").json()
    created = Counter(run_id for run_id, status in answers if status == 201)
    expected = {run_id_of(path) for path in files}
    assert set(created) == expected and set(created.values()) == {1}  # 0 lost, 0 stored twice
    assert len(answers) == CLIENTS * (PER_CLIENT + 2)
    assert {run["run_id"] for run in listed["runs"]} == expected and listed["total"] == len(expected)
    with Store(database) as store:
        for run in store.runs(per_page=1000).runs:
            assert run.case_count == files[tmp_path / "bundles" / f"{run.run_id}.driftboard"]
            assert len(store.case_results(run.run_id)) == run.case_count  # 0 partial
            assert run.uploader == "ci"
    assert integrity_problems(database) == []
