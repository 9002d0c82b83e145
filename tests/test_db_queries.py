"""Queries: pages and filters, machine history, cases without arrays, arrays on demand, delete, goldens, verdicts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache

import numpy as np
import pytest
from db_factory import BASE_TIME, make_bundle, make_run
from sqlalchemy import event

from driftboard.core.bundle import bundle_bytes
from driftboard.core.compare import Verdict
from driftboard.core.errors import NotFoundError, StoreError
from driftboard.core.run import ArrayRef
from driftboard.db.store import GoldenKey, RunFilter, Store, verdicts

GPU = {"devices": ("cpu", "cuda"), "cuda": "12.4", "driver": "550.54.15", "gpu": "NVIDIA A100-SXM4-80GB"}


@pytest.fixture
def store(fresh_db):
    with Store(fresh_db) as store:
        yield store


FLEET = [
    (1, 1, {"label": "laptop", "tags": ("nightly",)}),
    (1, 2, {"label": "laptop", "tags": ("nightly", "release")}),
    (1, 3, {"label": "laptop after upgrade", "torch_version": "2.6.0", "tags": ("nightly",)}),
    (2, 1, {"label": "ci runner"}),
    (2, 2, {"label": "ci runner", "cpu_capability": "AVX2", "drift": {"linear_1024": 1}}),
    (2, 3, {"label": "ci runner", "torch_version": "2.10.0"}),
    (3, 1, {"label": "gpu node", **GPU}),
    (3, 2, {"label": "gpu node", **GPU, "driver": "580.65.06"}),
    (4, 1, {"label": "imported", "imported": True}),
    (4, 2, {"label": "workstation", "tags": ("release",)}),
    (4, 3, {"label": "workstation"}),
    (4, 4, {"label": "workstation", "variant": "threads-1"}),
]


@cache
def _fleet_bundles() -> tuple[bytes, ...]:
    return tuple(make_bundle(machine, seq, **options) for machine, seq, options in FLEET)


@pytest.fixture
def fleet(store):
    """Twelve runs: four machines, three torch versions, one GPU pair, tags and labels, one drifting run."""
    for (machine, _, _), data in zip(FLEET, _fleet_bundles(), strict=True):
        store.ingest(data, uploader=f"user{machine}")
    return store


def _ids(page) -> list[str]:
    return [run.run_id for run in page.runs]


def test_runs_come_newest_first_page_by_page_with_the_total(fleet):
    first = fleet.runs(per_page=5)
    second = fleet.runs(page=2, per_page=5)
    last = fleet.runs(page=3, per_page=5)
    assert (first.total, first.pages) == (12, 3)
    assert len(first.runs) == 5 and len(second.runs) == 5 and len(last.runs) == 2
    ordered = [r.captured_at for r in first.runs + second.runs + last.runs]
    assert ordered == sorted(ordered, reverse=True)
    assert len(set(_ids(first) + _ids(second) + _ids(last))) == 12
    assert fleet.runs(page=9).runs == ()


FILTERS = [
    (RunFilter(machine="host-0001"), 3),
    (RunFilter(label="RUNNER"), 3),
    (RunFilter(tags=("nightly",)), 3),
    (RunFilter(tags=("nightly", "release")), 1),
    (RunFilter(torch="2.5"), 10),
    (RunFilter(torch="2.6"), 1),
    (RunFilter(torch="2.1"), 0),  # not 2.10.0
    (RunFilter(torch="2.10"), 1),
    (RunFilter(cuda="12"), 2),
    (RunFilter(driver="580"), 1),
    (RunFilter(gpu="a100"), 2),
    (RunFilter(cpu_capability="avx2"), 1),
    (RunFilter(variant="threads-1"), 1),
    (RunFilter(imported=True), 1),
    (RunFilter(machine="host-0004", torch="2.5", label="work"), 3),
    (RunFilter(machine="nobody"), 0),
]


def test_runs_filters(fleet):
    for filters, expected in FILTERS:  # one fleet for all: building it is the slow part
        page = fleet.runs(filters, per_page=3)
        assert (page.total, len(page.runs)) == (expected, min(expected, 3)), filters


def test_runs_filter_by_date_range(fleet):
    day = BASE_TIME.date()
    everything = fleet.runs(RunFilter(since=day, until=day + timedelta(days=1)))
    assert everything.total == 12
    # seq n is captured n hours after BASE_TIME: since is inclusive, until exclusive.
    window = fleet.runs(RunFilter(since=BASE_TIME + timedelta(hours=2), until=BASE_TIME + timedelta(hours=3)))
    assert {r.run_id.split("-")[1] for r in window.runs} == {"r00002"}
    assert fleet.runs(RunFilter(until=date(2025, 12, 31))).total == 0
    naive = datetime(2026, 1, 5, 12, 0)  # taken as UTC
    assert fleet.runs(RunFilter(since=naive)).total == fleet.runs(RunFilter(since=naive.replace(tzinfo=UTC))).total


def test_one_machines_history_is_in_time_order_with_its_environment(fleet):
    history = fleet.machine_history("host-0001")
    assert [r.run_id for r in history] == ["m0001-r00001-default", "m0001-r00002-default", "m0001-r00003-default"]
    assert [r.environment.torch_version for r in history] == ["2.5.1", "2.5.1", "2.6.0"]
    assert fleet.machine_history(history[0].machine_key) == history
    with pytest.raises(NotFoundError, match="no machine"):
        fleet.machine_history("host-9999")
    machines = {m.hostname: m for m in fleet.machines()}
    assert machines["host-0001"].run_count == 3
    assert machines["host-0001"].first_seen < machines["host-0001"].last_seen


def test_a_runs_cases_come_without_reading_any_array(store):
    run, _ = make_run(5, 1, **GPU)
    store.ingest(bundle_bytes(run, _))
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    cases = store.case_results(run.run_id)
    assert cases == run.cases
    assert not any("arrays.data" in s or "FROM arrays" in s for s in statements)


def test_arrays_are_read_on_demand_and_checked(store):
    run, arrays = make_run(6, 1)
    store.ingest(bundle_bytes(run, arrays))
    loaded, source = store.load_run(run.run_id[:8])  # an unambiguous prefix is enough
    case = loaded.case("linear_1024", "cpu", "float32")
    np.testing.assert_array_equal(source.load(case.output), arrays.load(case.output))
    assert source.load(case.output).shape == (64, 1024)
    with pytest.raises(NotFoundError, match="not in the database"):
        source.load(ArrayRef("0" * 64, "float32", (2,)))
    with pytest.raises(StoreError, match="its reference needs"):
        source.load(ArrayRef(case.output.sha256, "float32", (3,)))


def test_unknown_and_ambiguous_run_ids(fleet):
    with pytest.raises(NotFoundError, match="no run"):
        fleet.run("nope")
    with pytest.raises(NotFoundError, match="ambiguous"):
        fleet.run("m0001")
    assert fleet.run("m0001-r00002").run_id == "m0001-r00002-default"
    with pytest.raises(NotFoundError):
        fleet.run("m0001_r00002")  # LIKE wildcards are escaped


def test_delete_removes_the_arrays_no_other_run_uses(store):
    store.ingest(make_bundle(1, 1))
    store.ingest(make_bundle(2, 1, drift={"linear_1024": 5}))
    shared = store.stats()
    gone = store.delete_run("m0002-r00001-default")
    assert gone.arrays_removed == 2 and gone.bytes_freed > 400_000
    stats = store.stats()
    assert (stats.runs, stats.arrays, stats.environments) == (1, shared.arrays - 2, 1)
    assert stats.outcomes == shared.outcomes - 2
    last = store.delete_run("m0001-r00001-default")
    assert last.arrays_removed == shared.arrays - 2
    stats = store.stats()
    assert (stats.runs, stats.arrays, stats.outcomes, stats.environments, stats.stored_bytes) == (0, 0, 0, 0, 0)
    with pytest.raises(NotFoundError):
        store.delete_run("m0001-r00001-default")


def test_goldens_per_suite_version_and_device_class(fleet):
    cpu = fleet.set_golden("m0001-r00001-default", set_by="alice", reason="first clean run")
    gpu = fleet.set_golden("m0003-r00001-default", set_by="bob", reason="A100 baseline")
    assert cpu.key.device_class == "cpu" and gpu.key.device_class == "cuda"
    assert {g.run_id for g in fleet.goldens()} == {"m0001-r00001-default", "m0003-r00001-default"}
    assert fleet.golden_for("m0002-r00003-default").run_id == "m0001-r00001-default"
    assert fleet.golden_for("m0003-r00002-default").run_id == "m0003-r00001-default"
    assert fleet.golden_for("m0002-r00003-default", name="release") is None
    moved = fleet.set_golden("m0004-r00002-default", set_by="carol", reason="new workstation")
    assert moved.key == cpu.key and fleet.golden_for("m0001-r00001-default").run_id == "m0004-r00002-default"
    assert (moved.set_by, moved.reason) == ("carol", "new workstation")
    with pytest.raises(StoreError, match="clear that golden"):
        fleet.delete_run("m0004-r00002-default")
    with pytest.raises(StoreError, match="cannot be a golden"):
        fleet.set_golden("m0004-r00001-default")  # imported: no outputs
    assert fleet.clear_golden(moved.key) and not fleet.clear_golden(moved.key)
    assert fleet.golden_for("m0001-r00001-default") is None
    assert not fleet.clear_golden(GoldenKey("default", "other-suite", 1, "cpu"))
    fleet.delete_run("m0004-r00002-default")


def test_verdicts_are_computed_once_and_kept(fleet, monkeypatch):
    assert fleet.verdict("m0002-r00002-default") is None  # no golden yet
    fleet.set_golden("m0001-r00001-default")
    first = fleet.verdict("m0002-r00002-default")
    assert not first.cached and first.worst == Verdict.WITHIN_TOLERANCE.value
    assert first.counts == {"identical": 16, "within tolerance": 2}

    def no_judging(*args, **kwargs):
        raise AssertionError("a cached verdict was recomputed")

    monkeypatch.setattr(verdicts, "_judge", no_judging)
    again = fleet.verdict("m0002-r00002-default")
    assert again.cached and again.worst == first.worst and again.computed_at == first.computed_at
    assert fleet.verdict("m0004-r00001-default") is None  # imported: nothing to judge
    assert fleet.verdict("m0003-r00001-default") is None  # GPU run: no cuda golden


def test_verdict_filters_and_refresh(fleet):
    fleet.set_golden("m0001-r00001-default")
    assert fleet.runs(RunFilter(verdict="identical")).total == 0  # nothing judged yet
    computed = fleet.refresh_verdicts()
    assert computed == 9  # every cpu run with cases, the golden itself included
    assert fleet.refresh_verdicts() == 0
    assert fleet.runs(RunFilter(verdict="within-tolerance")).total == 1
    assert fleet.runs(RunFilter(verdict="identical")).total == 8
    assert fleet.runs(RunFilter(verdict="identical", machine="host-0004")).total == 3
    page = fleet.runs(RunFilter(machine="host-0002"))
    assert {r.run_id: r.verdict for r in page.runs}["m0002-r00002-default"] == "within tolerance"
    with pytest.raises(StoreError, match="unknown verdict"):
        fleet.runs(RunFilter(verdict="sideways"))
    for word in ("non-finite mismatch", "non-finite-mismatch", "NON_FINITE mismatch"):  # its own hyphen too
        assert fleet.runs(RunFilter(verdict=word)).total == 0


def test_changing_the_golden_invalidates_its_cached_verdicts(fleet):
    fleet.set_golden("m0001-r00001-default")
    fleet.refresh_verdicts()
    fleet.set_golden("m0002-r00002-default")  # the drifting run becomes the golden
    assert fleet.runs(RunFilter(verdict="identical")).total == 0
    verdict = fleet.verdict("m0001-r00001-default")
    assert not verdict.cached and verdict.golden_run_id == "m0002-r00002-default"
    assert verdict.worst == "within tolerance"
    with fleet.engine.connect() as conn:
        goldens_judged = conn.exec_driver_sql("SELECT DISTINCT golden_run_pk FROM verdicts").fetchall()
    assert len(goldens_judged) == 1
    fleet.clear_golden(fleet.golden_for("m0001-r00001-default").key)
    with fleet.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM verdicts").scalar() == 0


def test_verdicts_are_kept_per_policy(fleet):
    fleet.set_golden("m0001-r00001-default")
    assert fleet.verdict("m0002-r00002-default", policy="bitwise").worst == "drift"
    assert fleet.verdict("m0002-r00002-default").worst == "within tolerance"
    assert fleet.verdict("m0002-r00002-default", policy="BITWISE").cached


def test_two_stored_runs_compare_through_core_compare(fleet):
    result = fleet.compare("m0002-r00001-default", "m0002-r00002-default")
    assert result.worst == Verdict.WITHIN_TOLERANCE
    assert result.case("linear_1024", "cpu", "float32").verdict == Verdict.WITHIN_TOLERANCE
    assert fleet.compare("m0002-r00002-default", "m0002-r00002-default", policy="bitwise").worst == Verdict.IDENTICAL


def test_a_stored_run_loads_by_id_for_commands_that_take_files_or_ids(fleet):
    from driftboard.db.store import load_stored_run

    run, arrays = load_stored_run("m0002-r00002", fleet.url)
    again, _ = load_stored_run("m0002-r00001-default", fleet.url)
    case = run.case("linear_1024")
    assert arrays.load(case.output).shape == (64, 1024) and again.run_id == "m0002-r00001-default"
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        load_stored_run("nope", fleet.url)


def test_loading_a_stored_run_never_creates_a_database(tmp_path):
    from driftboard.db.store import load_stored_run

    with pytest.raises(NotFoundError, match="there is no database at"):
        load_stored_run("m0001", str(tmp_path / "typo.sqlite"))
    assert not (tmp_path / "typo.sqlite").exists()


def test_any_page_number_works_and_past_the_end_is_an_empty_page(fleet, capsys):
    from test_db_cli import run_cli

    assert len(fleet.runs(page=2, per_page=10).runs) == 2
    for page in (3, 2**63 - 1, 2**63, 10**30):  # an offset no integer column holds raised OverflowError
        got = fleet.runs(page=page, per_page=10)
        assert (got.runs, got.total, got.page, got.pages) == ((), 12, page, 2)
    code, out, err = run_cli(capsys, "runs", "--db", fleet.url, "--page", str(2**63 - 1))
    assert (code, out, err) == (0, f"no runs on page {2**63 - 1} (of 1)\n", "")
