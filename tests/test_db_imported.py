"""Imported environments in the store, from a new user's walk-through: how their machines are named, and
that an environment-only run is never a golden (and is said to have no outputs to judge)."""

from __future__ import annotations

from pathlib import Path

import pytest
from db_factory import make_bundle
from test_db_cli import run_cli

from driftboard.core.bundle import bundle_bytes
from driftboard.core.errors import StoreError
from driftboard.core.imported import run_from_report
from driftboard.core.run import MemoryArrays
from driftboard.db.store import Store

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "collect_env"
REPORTS = ("005.txt", "019.txt")

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"real collect_env reports not found at {FIXTURES}")


@pytest.fixture
def imported(fresh_db) -> tuple[str, list]:
    """Two real collect_env reports imported, and a captured run with a hostname."""
    runs = [run_from_report((FIXTURES / name).read_text(errors="replace"))[0] for name in REPORTS]
    with Store(fresh_db) as store:
        for run in runs:
            store.ingest(bundle_bytes(run, MemoryArrays()))
        store.ingest(make_bundle(1, 1))
    return fresh_db, runs


def test_an_imported_machine_is_named_by_its_runs_label_not_by_its_key(imported):
    url, runs = imported
    with Store(url) as store:
        machines = {m.machine_key: m for m in store.machines()}
    named = {m.name for m in machines.values()}
    assert {run.label for run in runs} | {"host-0001"} == named
    assert all(run.label.startswith("collect_env: ") and run.label != "collect_env: " for run in runs)
    assert not any(name.startswith("collect_env:") and len(name) <= 13 for name in named)  # not the key's start
    assert {m.hostname for m in machines.values()} == {"", "host-0001"}  # the hostname stays what was recorded


def test_an_environment_only_run_cannot_be_a_golden_and_says_why(imported, capsys):
    url, runs = imported
    with Store(url) as store, pytest.raises(StoreError) as err:
        store.set_golden(runs[0].run_id)
    assert str(err.value) == (f"run {runs[0].run_id} cannot be a golden: it holds an environment only (imported "
                              "from a collect_env report), no outputs to judge other runs against")
    code, out, err_text = run_cli(capsys, "golden", "set", runs[0].run_id[:14], "--db", url)
    assert code == 2 and out == "" and err_text == f"driftboard: error: {err.value}\n"
    with Store(url) as store:
        assert store.goldens() == ()


def test_no_golden_applies_to_an_environment_only_run_because_it_has_no_outputs(imported, capsys):
    url, runs = imported
    code, _, err = run_cli(capsys, "golden", "clear", runs[1].run_id, "--db", url)
    assert code == 2
    assert err == (f"driftboard: error: no golden applies to run {runs[1].run_id}: it holds an environment only "
                   "(imported from a collect_env report), no outputs to judge\n")
    code, _, err = run_cli(capsys, "golden", "clear", "m0001-r00001-default", "--db", url)
    assert code == 2 and err == ("driftboard: error: no golden 'default' applies to run m0001-r00001-default "
                                 "(none is set for its suite version and device class)\n")


def test_the_machines_picker_shows_an_imports_label(imported, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from driftboard.db.session import ENV_VAR
    from driftboard.db.store import close_shared_stores

    url, runs = imported
    if not url.startswith("sqlite"):
        pytest.skip("the dashboard's pages are tested on SQLite")
    monkeypatch.setenv(ENV_VAR, url)
    app = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=90)
    try:
        at.run()
        at.switch_page("app_pages/machines.py").run()
        assert not at.exception, [e.value for e in at.exception]
        shown = at.selectbox(key="machine_pick").options
        for run in runs:
            assert any(option.startswith(run.label[:30]) and " · 1 run · last " in option for option in shown), shown
    finally:
        close_shared_stores()
