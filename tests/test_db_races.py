"""A delete racing a push that shares its arrays, on the real PostgreSQL server, with real threads.

SQLite serialises writers, so only PostgreSQL (READ COMMITTED: each statement sees what committed before
it) lets one transaction's view change under it. Two interleavings, each forced once by a hook that lets
the other side commit at the worst moment, then a bounded free-running race:

- a push looks up which arrays are missing, a delete of the run that held them commits, the push goes
  on (it raised KeyError, not a driftboard error: ``push`` printed a traceback and skipped the rest);
- a delete finds an outcome unused, a push starts using it and commits, the delete removes it (the
  database refused: a raw foreign-key message).

Both are conflicts: the whole transaction is tried again, a bounded number of times.
"""

from __future__ import annotations

import threading
import time

import pytest
from db_factory import make_bundle
from test_faults import integrity_problems

import driftboard.db.store.delete as delete_module
import driftboard.db.store.ingest as ingest_module
from driftboard.core.bundle import read_bundle
from driftboard.core.errors import DriftboardError
from driftboard.db.store import Store

pytestmark = pytest.mark.postgres

A = make_bundle(1, 1, tags=("a",))  # the run being deleted
B = make_bundle(2, 1, tags=("b",))  # another machine, the same outputs: it shares every array and outcome of A
A_ID, B_ID = read_bundle(A).run.run_id, read_bundle(B).run.run_id


@pytest.fixture
def stores(fresh_db_postgres):
    """Two stores (two connection pools) on one fresh PostgreSQL schema, A stored."""
    with Store(fresh_db_postgres) as deleter, Store(fresh_db_postgres) as pusher:
        deleter.ingest(A)
        yield deleter, pusher


@pytest.fixture
def fresh_db_postgres(postgres_url) -> str:
    from test_faults import upgrade_schema

    upgrade_schema(postgres_url)
    return postgres_url


def _in_thread(target) -> None:
    """Run ``target`` to completion in another thread (it must not wait for the caller's transaction)."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the other transaction waited for this one: the interleaving is not the race"
    if failure:
        raise failure[0]


def _whole(url: str) -> None:
    assert integrity_problems(url, deep=True, machines_without_runs=True) == []
    with Store(url) as store:
        for sha, raw in read_bundle(B).arrays.blobs.items():
            assert store.arrays().raw(sha) == raw


def test_a_delete_committed_between_a_pushs_looks_at_its_arrays_is_retried(stores, monkeypatch):
    deleter, pusher = stores
    original, calls = ingest_module._missing_arrays, []

    def missing_then_deleted(session, shas):
        found = original(session, shas)
        calls.append(len(found))
        if len(calls) == 2:  # the push's first look inside its write transaction: A's arrays are there
            _in_thread(lambda: deleter.delete_run(A_ID))  # ... and now they are gone, committed
        return found

    monkeypatch.setattr(ingest_module, "_missing_arrays", missing_then_deleted)
    result = pusher.ingest(B)
    assert result.created and result.new_arrays == len(read_bundle(B).arrays.blobs)  # stored them itself
    assert [r.run_id for r in pusher.runs().runs] == [B_ID]
    _whole(pusher.url)


def test_a_push_committed_inside_a_delete_that_shares_its_outcomes_is_retried(stores, monkeypatch):
    deleter, pusher = stores
    original, pushed = delete_module.delete, []

    def delete_after_a_push(table):
        if table is delete_module.OutcomeArrayRow and not pushed:  # the delete found A's outcomes unused
            pushed.append(True)
            _in_thread(lambda: pusher.ingest(B))  # B now uses them, committed
        return original(table)

    monkeypatch.setattr(delete_module, "delete", delete_after_a_push)
    result = deleter.delete_run(A_ID)
    assert pushed and result.run_id == A_ID and result.arrays_removed == 0  # B keeps every shared array
    assert [r.run_id for r in deleter.runs().runs] == [B_ID]
    _whole(deleter.url)


def test_deletes_racing_pushes_never_fail_and_never_lose_an_array(stores, capfd):
    deleter, pusher = stores
    rounds, started, failures = 25, time.monotonic(), []
    for _ in range(rounds):
        barrier = threading.Barrier(2)

        def side(action, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(timeout=30)
            try:
                action()
            except DriftboardError as exc:  # a driftboard error would at least be one line; none is expected
                failures.append(f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the crash this test is about
                failures.append(f"crash {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=side, args=(lambda: deleter.delete_run(A_ID),)),
                   threading.Thread(target=side, args=(lambda: pusher.ingest(B),))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        _whole(pusher.url)
        pusher.delete_run(B_ID)
        deleter.ingest(A)
    assert time.monotonic() - started < 180
    assert capfd.readouterr().err == ""  # a retried conflict prints nothing (psycopg's own warning included)


def test_a_conflict_that_outlasts_the_retries_is_one_line_saying_nothing_was_done():
    from sqlalchemy.exc import IntegrityError

    from driftboard.core.errors import StoreError
    from driftboard.db.session import retry_conflicts, store_error

    tries = []

    def always_conflicts():
        tries.append(1)
        orig = IntegrityError("DELETE …", {}, Exception("violates foreign key constraint \"fk_x\"\nDETAIL: …"))
        raise store_error(orig, "postgresql://db/x") from orig

    with pytest.raises(StoreError) as err:
        retry_conflicts(always_conflicts, 3, "run r1 was not deleted: pushes sharing its arrays conflicted 3 times; "
                                             "nothing was deleted, try again")
    assert len(tries) == 3 and "\n" not in str(err.value)
    assert str(err.value).startswith("run r1 was not deleted: pushes sharing its arrays conflicted 3 times; nothing "
                                     "was deleted, try again (last: database refused the change: violates foreign")
    assert isinstance(err.value.__cause__, IntegrityError)
