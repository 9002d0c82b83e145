"""``db.push.push_files``: one outcome per bundle, and the same behaviour in both shells that push many.

The shells are ``driftboard push`` (its locked-database test is in ``test_faults.py``, through a real
process) and the dashboard's Upload page (here, under ``AppTest``). The lock is real: another process
holds SQLite's write lock (``test_faults.write_lock_held``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from db_factory import make_bundle, write_bundle_file
from streamlit.testing.v1 import AppTest
from test_faults import integrity_problems, stored_runs, write_lock_held

import driftboard.dashboard
from driftboard.core.units import NBSP
from driftboard.db.push import NOT_TRIED, PushOutcome, push_files
from driftboard.db.session import BUSY_TIMEOUT_ENV, ENV_VAR
from driftboard.db.store import Store, close_shared_stores

APP = Path(driftboard.dashboard.__file__).with_name("app.py")


@pytest.fixture
def store(fresh_db):
    with Store(fresh_db) as store:
        yield store


@pytest.fixture
def locked_db(tmp_path, monkeypatch) -> tuple[Path, str]:
    """A SQLite file with the schema, whose writers give up after 1 s (set before any engine is made)."""
    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "1")
    path = tmp_path / "team.sqlite"
    Store(str(path)).close()
    return path, f"sqlite:///{path}"


def test_each_bundle_gets_its_own_outcome_in_order(store, tmp_path):
    path = write_bundle_file(tmp_path, 1, 1)
    seen: list[PushOutcome] = []
    outcomes = push_files(store, [path, ("garbage.driftboard", b"not a bundle"), ("again", path.read_bytes()),
                                  ("other", make_bundle(2, 1))], uploader="ci", report=seen.append)
    assert seen == outcomes  # reported as they happen, in order
    assert [o.status for o in outcomes] == ["stored", "refused", "already present", "stored"]
    assert [o.name for o in outcomes] == [str(path), "garbage.driftboard", "again", "other"]
    assert outcomes[0].run_id == outcomes[2].run_id == "m0001-r00001-default" and outcomes[0].result.created
    assert outcomes[1].error.startswith("invalid bundle: ") and "\n" not in outcomes[1].error
    assert not any(o.retry for o in outcomes)  # a bad bundle is the bundle's fault: pushing it again is no use
    assert store.run("m0002-r00001-default").uploader == "ci"
    assert store.stats().runs == 2


def test_a_bundle_that_crashes_is_one_outcome_and_the_next_is_still_pushed(store, caplog):
    class Flaky:
        calls = 0

        def ingest(self, data, *, uploader="", **origin):
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("boom\nsecond line")
            return store.ingest(data, uploader=uploader, **origin)

    bug, good = push_files(Flaky(), [("x", make_bundle(3, 1)), ("y", make_bundle(4, 1))])
    assert bug.status == "refused" and bug.error == "unexpected error (a driftboard bug): RuntimeError: boom"
    assert good.status == "stored"
    assert "unexpected error pushing 'x'" in caplog.text and "Traceback" in caplog.text


def test_a_locked_database_stops_the_batch_and_each_file_not_tried_says_so(locked_db, tmp_path):
    path, url = locked_db
    files = [write_bundle_file(tmp_path, m, 1) for m in (1, 2, 3)]
    with Store(url) as store, write_lock_held(path, 120):
        started = time.perf_counter()
        outcomes = push_files(store, files)
        elapsed = time.perf_counter() - started
    assert elapsed < 15  # one busy timeout, not one per bundle
    assert [(o.name, o.status) for o in outcomes] == [(str(files[0]), "refused"), (str(files[1]), "not attempted"),
                                                      (str(files[2]), "not attempted")]
    assert "is locked by another writer" in outcomes[0].error
    assert [o.error for o in outcomes[1:]] == [NOT_TRIED, NOT_TRIED]
    assert all(o.retry for o in outcomes)  # the database failed, not the bundles
    assert stored_runs(url) == {} and integrity_problems(url) == []
    with Store(url) as store:  # the lock gone, the same files go in
        assert [o.status for o in push_files(store, files)] == ["stored"] * 3


def test_the_upload_page_on_a_locked_database_stops_marks_the_rest_and_retries_on_request(locked_db, monkeypatch):
    path, url = locked_db
    monkeypatch.setenv(ENV_VAR, url)
    uploads = [(f"node-{m}.driftboard", make_bundle(m, 1), "application/octet-stream") for m in (1, 2, 3)]
    at = AppTest.from_file(str(APP), default_timeout=90)
    try:
        at.run()
        at.switch_page("app_pages/upload.py").run()
        assert not at.exception, [e.value for e in at.exception]
        with write_lock_held(path, 120):
            started = time.perf_counter()
            at.file_uploader(key="upload_files").set_value(uploads).run()
            elapsed = time.perf_counter() - started
        assert not at.exception, [e.value for e in at.exception]
        assert elapsed < 30  # one busy timeout, not one per file
        table = _results(at)
        assert table["result"].tolist() == ["refused", "not attempted", "not attempted"]
        assert "is locked by another writer" in table["detail"][0]
        assert table["detail"].tolist()[1:] == [NOT_TRIED, NOT_TRIED]
        assert len(at.error) == 1 and len(at.warning) == 2
        assert stored_runs(url) == {}

        at.run()  # an ordinary rerun never pushes again by itself
        assert _results(at)["result"].tolist() == ["refused", "not attempted", "not attempted"]
        assert at.button(key="upload_retry").label == "Try the 3 files not stored again"
        at.button(key="upload_retry").click().run()  # the lock is gone now
        assert not at.exception, [e.value for e in at.exception]
        table = _results(at)
        assert table["result"].tolist() == ["stored"] * 3
        assert all(re.search(rf"new arrays \([\d.]+{NBSP}(B|KiB|MiB)\)$", detail) for detail in table["detail"])
        assert not [b for b in at.button if b.key == "upload_retry"]
        assert set(stored_runs(url)) == {"m0001-r00001-default", "m0002-r00001-default", "m0003-r00001-default"}
    finally:
        close_shared_stores()
        import streamlit as st

        st.cache_data.clear()


def _results(at: AppTest):
    [table] = [df.value for df in at.dataframe if "result" in df.value.columns]
    return table
