"""``db.push_workers``: the team API's pushes run in worker processes, on SQLite and PostgreSQL.

Pushes submitted at once from many threads go through two real worker processes (``spawn``), racing
each other on the same bundles: every run stored exactly once and whole, each push answered with its
verdict. A bad bundle is still one line with nothing stored; a worker killed fails only the push it
held; workers that die before finishing any push leave the pushes to this process, with a warning.
Through a real ``driftboard serve``: its pushes run in its worker processes, or in itself with
``DRIFTBOARD_PUSH_WORKERS=0``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections import Counter
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest
from api_server import bearer, serving, write_access_file
from db_factory import make_bundle, write_bundle_file
from test_faults import integrity_problems, stored_runs

from driftboard.db.push import JudgedPush, push_files
from driftboard.db.push_workers import WORKERS_ENV, PushWorkers, configured_workers
from driftboard.db.store import Store

GOLDEN = "m0099-r00001-default"


def push(workers: PushWorkers, path: Path) -> JudgedPush:
    return workers.submit(path, name=path.name, uploader="ci", channel="api", address="10.0.0.7").result(timeout=120)


def spawned() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


@pytest.fixture
def golden_db(fresh_db: str) -> str:
    with Store(fresh_db) as store:
        push_files(store, [("golden", make_bundle(99, 1))])
        store.set_golden(GOLDEN)
    return fresh_db


def test_pushes_racing_through_two_worker_processes_store_every_run_once_and_whole(golden_db, tmp_path):
    groups = [[write_bundle_file(tmp_path, c * 10 + k, 1, drift={"linear_1024": k % 2}) for k in range(4)]
              for c in range(8)]
    for i, files in enumerate(groups):  # each thread also pushes two of its neighbour's bundles
        files += groups[(i + 1) % len(groups)][:2]
    workers = PushWorkers(golden_db, 2)
    answers: list[tuple[str, JudgedPush]] = []
    barrier, lock = threading.Barrier(len(groups)), threading.Lock()

    def client(files: list[Path]) -> None:
        barrier.wait()
        for path in files:
            judged = push(workers, path)
            with lock:
                answers.append((path.stem, judged))

    try:
        threads = [threading.Thread(target=client, args=(files,)) for files in groups]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(spawned()) >= 1  # the work ran in worker processes, not here
    finally:
        workers.close()
    expected = {path.stem for files in groups for path in files}
    assert {run_id for run_id, j in answers if j.outcome.run_id == run_id} == expected
    stored = Counter(run_id for run_id, j in answers if j.outcome.status == "stored")
    assert stored == Counter(expected)  # one "stored" per run; every other push of it "already present"
    assert {j.outcome.status for _, j in answers} == {"stored", "already present"}
    assert {(j.verdict, j.golden) for _, j in answers} == {("identical", GOLDEN), ("within tolerance", GOLDEN)}
    assert stored_runs(golden_db).keys() == expected | {GOLDEN}
    assert integrity_problems(golden_db) == []
    with Store(golden_db) as store:
        entry = store.write_log(1, action="push")[0]
        assert (entry.actor, entry.channel, entry.address) == ("ci", "api", "10.0.0.7")


def test_a_bad_bundle_through_a_worker_is_one_line_and_nothing_is_stored(golden_db, tmp_path):
    bad = tmp_path / "cut.driftboard"
    bad.write_bytes(make_bundle(1, 1)[:5000])
    workers = PushWorkers(golden_db, 1)
    try:
        judged = push(workers, bad)
    finally:
        workers.close()
    outcome = judged.outcome
    assert (outcome.status, outcome.retry, judged.verdict) == ("refused", False, None)
    assert outcome.error.startswith("invalid bundle: ") and "\n" not in outcome.error
    assert stored_runs(golden_db).keys() == {GOLDEN}


def test_no_workers_pushes_in_this_process(golden_db, tmp_path):
    before = spawned()
    workers = PushWorkers(golden_db, 0)
    try:
        judged = push(workers, write_bundle_file(tmp_path, 1, 1))
    finally:
        workers.close()
    assert (judged.outcome.status, judged.verdict) == ("stored", "identical")
    assert spawned() == before


def test_a_worker_never_runs_the_page_a_streamlit_session_left_as_main(golden_db, tmp_path, monkeypatch):
    page = tmp_path / "page.py"  # Streamlit runs each page as a new __main__ and leaves it there
    page.write_text("raise SystemExit('a push worker ran the page')\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", main)
    workers = PushWorkers(golden_db, 1)
    try:
        judged = push(workers, write_bundle_file(tmp_path, 1, 1))
        assert spawned()
    finally:
        workers.close()
    assert (judged.outcome.status, judged.verdict) == ("stored", "identical")


def test_a_worker_killed_fails_only_the_push_it_held_and_the_next_push_starts_new_workers(golden_db, tmp_path):
    workers = PushWorkers(golden_db, 1)
    try:
        assert push(workers, write_bundle_file(tmp_path, 1, 1)).outcome.status == "stored"
        (first,) = spawned()
        os.kill(first, signal.SIGKILL)
        time.sleep(1)  # the pool notices
        judged = push(workers, write_bundle_file(tmp_path, 2, 1))
        assert judged.outcome.status == "stored" and judged.verdict == "identical"
        assert spawned() and first not in spawned()
    finally:
        workers.close()
    assert integrity_problems(golden_db) == []


def test_workers_that_stop_before_finishing_a_push_leave_pushes_to_this_process(golden_db, tmp_path, caplog):
    workers = PushWorkers(golden_db, 2)
    try:
        future = workers.submit(write_bundle_file(tmp_path, 1, 1), name="a", uploader="ci", channel="api",
                                address=None)
        for pid in spawned():  # killed while starting, as an out-of-memory killer would
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            future.result(timeout=60)
        time.sleep(0.5)
        judged = push(workers, write_bundle_file(tmp_path, 2, 1))
        assert judged.outcome.status == "stored" and not spawned()
    finally:
        workers.close()
    assert "pushes run in the server process from now on" in caplog.text


def test_the_number_of_workers_comes_from_the_environment(monkeypatch, caplog):
    cores = len(os.sched_getaffinity(0))
    for text, expected in (("", cores), ("0", 0), ("3", 3), ("many", cores), ("-1", cores), ("99", cores)):
        monkeypatch.setenv(WORKERS_ENV, text)
        assert configured_workers() == min(expected, 32), text
    assert f"{WORKERS_ENV}='many' is not a whole number" in caplog.text


def server_children(pid: int) -> list[str]:
    """The command lines of a server's child processes."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ").decode() for c in children]


@pytest.mark.parametrize("setting", ["2", "0"])
def test_the_server_pushes_in_its_worker_processes_unless_told_not_to(setting, tmp_path):
    url = f"sqlite:///{tmp_path / 'team.sqlite'}"
    with serving(url, tmp_path, access_file=write_access_file(tmp_path / "auth.toml"),
                 env={WORKERS_ENV: setting}) as server:
        assert not [c for c in server_children(server.proc.pid) if "spawn_main" in c]  # none before a push
        first = server.push(make_bundle(1, 1), bearer("ci"))
        again = server.push(make_bundle(1, 1), bearer("ci"))
        bad = server.push(b"PK\x03\x04 cut short", bearer("ci"))
        workers = [c for c in server_children(server.proc.pid) if "spawn_main" in c]
    assert (first.status, first.json()["stored"], again.status, again.json()["stored"]) == (201, True, 200, False)
    assert bad.status == 422 and bad.json()["error"].startswith("not stored: invalid bundle: ")
    assert 0 < len(workers) <= 2 if setting == "2" else not workers  # one at a time: one started so far
    assert stored_runs(url).keys() == {"m0001-r00001-default"}
