"""Stores a long-lived process keeps open (``db.store.shared_store``): bounded, closed when evicted and at exit.

Open connections are counted where they really are: file descriptors of this process on SQLite files,
sessions in ``pg_stat_activity`` on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from db_factory import make_bundle
from test_faults import postgres_admin, upgrade_schema, with_query

from driftboard.core.processes import python_command
from driftboard.db.store import MAX_OPEN_STORES, Store, close_shared_stores, load_stored_run, shared_store
from driftboard.db.store.open_stores import OpenStores

PROC_FD = Path("/proc/self/fd")


@pytest.fixture(autouse=True)
def no_shared_stores():
    close_shared_stores()
    yield
    close_shared_stores()


def open_files_under(directory: Path) -> set[Path]:
    """The files under ``directory`` this process holds open (SQLite keeps the database, -wal and -shm)."""
    directory, found = directory.resolve(), set()
    for fd in os.listdir(PROC_FD):
        try:
            target = Path(os.readlink(PROC_FD / fd))
        except OSError:  # closed while listing
            continue
        if target.is_relative_to(directory):
            found.add(target)
    return found


def databases(paths: set[Path]) -> set[str]:
    return {p.name.removesuffix("-wal").removesuffix("-shm") for p in paths}


@pytest.mark.skipif(not PROC_FD.is_dir(), reason="needs /proc/self/fd (Linux)")
def test_opening_many_sqlite_databases_keeps_only_the_last_few_open(tmp_path):
    names = [f"db{i:02d}.sqlite" for i in range(3 * MAX_OPEN_STORES)]
    for name in names:
        store = shared_store(str(tmp_path / name))
        assert store.stats().runs == 0  # a query, so its pool really holds a connection
        assert databases(open_files_under(tmp_path)) <= set(names[: names.index(name) + 1][-MAX_OPEN_STORES:])
    assert databases(open_files_under(tmp_path)) == set(names[-MAX_OPEN_STORES:])
    close_shared_stores()
    assert open_files_under(tmp_path) == set()


@pytest.mark.skipif(not PROC_FD.is_dir(), reason="needs /proc/self/fd (Linux)")
def test_load_stored_run_shares_one_store_per_database(tmp_path):
    path = tmp_path / "team.sqlite"
    with Store(str(path)) as store:
        store.ingest(make_bundle(1, 1))
        store.ingest(make_bundle(2, 1))
    first, _ = load_stored_run("m0001-r00001-default", str(path))
    second, arrays = load_stored_run("m0002-r00001-default", f"sqlite:///{path}")
    assert (first.run_id, second.run_id) == ("m0001-r00001-default", "m0002-r00001-default")
    assert arrays.load(second.cases[0].output) is not None
    assert shared_store(str(path)) is shared_store(f"sqlite:///{path}")
    assert databases(open_files_under(tmp_path)) == {"team.sqlite"}


@pytest.mark.postgres
def test_opening_many_postgres_urls_keeps_a_bounded_number_of_connections(postgres_url):
    upgrade_schema(postgres_url)
    prefix = f"driftboard-open-{uuid.uuid4().hex[:8]}"
    urls = [with_query(postgres_url, application_name=f"{prefix}-{i}") for i in range(3 * MAX_OPEN_STORES)]

    def connections() -> int:
        [(n,)] = postgres_admin("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE :p",
                                p=f"{prefix}-%")
        return n

    for url in urls:
        assert shared_store(url).stats().runs == 0
        assert connections() <= MAX_OPEN_STORES
    assert connections() == MAX_OPEN_STORES
    close_shared_stores()
    assert connections() == 0


def test_a_store_evicted_while_in_use_keeps_working(tmp_path):
    cache: OpenStores[Store] = OpenStores(Store, max_open=1)
    try:
        held = cache.get(f"sqlite:///{tmp_path / 'a.sqlite'}")
        held.ingest(make_bundle(1, 1))
        cache.get(f"sqlite:///{tmp_path / 'b.sqlite'}")  # closes the first
        assert cache.urls() == (f"sqlite:///{tmp_path / 'b.sqlite'}",)
        assert held.stats().runs == 1  # a caller still holding it is not broken: it reconnects
    finally:
        cache.close_all()
        held.close()


_AT_EXIT = """
import atexit, os, sys
from pathlib import Path

directory = Path(sys.argv[1]).resolve()

def open_now():
    return sorted(p.name for fd in os.listdir("/proc/self/fd") if (p := Path(os.path.realpath(f"/proc/self/fd/{fd}")))
                  .is_relative_to(directory))

atexit.register(lambda: print("at exit", open_now(), flush=True))  # registered first, so it runs last
from driftboard.db.store import shared_store
for i in range(3):
    shared_store(str(directory / f"db{i}.sqlite")).stats()
print("before exit", open_now(), flush=True)
"""


@pytest.mark.skipif(not PROC_FD.is_dir(), reason="needs /proc/self/fd (Linux)")
def test_shared_stores_are_closed_at_exit(tmp_path):
    result = subprocess.run(python_command("-c", _AT_EXIT, str(tmp_path)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()
    assert before.startswith("before exit ['db0.sqlite'") and "db2.sqlite" in before
    assert after == "at exit []"
