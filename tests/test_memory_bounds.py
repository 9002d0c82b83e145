"""Memory bounds of the heaviest valid comparison (two 64 MiB float32 outputs), and the exactness of the
chunked figures against an independent numpy recomputation on smaller pairs."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import numpy as np
import pytest
from heavy_pair import write_heavy_pair
from runs_factory import bump_ulps, make_case, make_run, store
from sqlalchemy import update
from test_dashboard_pages import GOLDEN, LAPTOP, UPGRADED, db_url, open_page, said, seeded_file, texts  # noqa: F401

from driftboard.core.bundle import write_bundle
from driftboard.core.compare import compare_arrays, compare_runs, worst_elements
from driftboard.core.compare import metrics as metrics_module
from driftboard.core.errors import StoreError
from driftboard.core.processes import python_command
from driftboard.core.run import MemoryArrays
from driftboard.dashboard import charts, decode_budget, element_data
from driftboard.dashboard.decode_budget import DecodeBudget, DecodeGate, MiB
from driftboard.db.array_stream import StreamedArrays
from driftboard.db.models import ArrayRow
from driftboard.db.session import transaction
from driftboard.db.store import Store

# Peak RSS a comparison of the heavy pair may add to the process holding its two bundles: less than one
# more copy of the pair. Before the chunked metrics and charts it added 405 MB (compare) and 1 GB (charts).
ADDED_MB_BOUND = 128

CHILD = r"""
import json, sys
from pathlib import Path
from driftboard.core.bundle import read_bundle
from driftboard.core.compare import compare_runs, worst_elements
from driftboard.dashboard import charts

def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024

a, b = read_bundle(Path(sys.argv[1])), read_bundle(Path(sys.argv[2]))
try:
    open("/proc/self/clear_refs", "w").write("5")  # restart the high-water mark from here
except OSError:
    pass
floor = max(status("VmRSS"), status("VmHWM"))
result = compare_runs(a.run, a.arrays, b.run, b.arrays)
case, old, new = result.cases[0], a.run.cases[0], b.run.cases[0]
figures = charts.case_figures(case, a.arrays, b.arrays, old, new)
worst = worst_elements(a.arrays.load(old.output), b.arrays.load(new.output), old.output.dtype)
print(json.dumps({"added_mb": status("VmHWM") - floor, "verdict": case.verdict.value,
                  "charts": [title for title, _ in figures], "worst_ulp": worst[0].ulp,
                  "changed": case.metrics.changed}))
"""

STREAMED_CHILD = r"""
import json, sys
from driftboard.dashboard.decode_budget import DecodeBudget
from driftboard.dashboard.element_data import ElementRequest
from driftboard.db.array_stream import StreamedArrays
from driftboard.db.store import Store

def status(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key)) / 1024

store = Store(sys.argv[1])
old, new = (store.load_run(run_id)[0].cases[0].output for run_id in sys.argv[2:4])
arrays = StreamedArrays(store.engine)
try:
    open("/proc/self/clear_refs", "w").write("5")
except OSError:
    pass
floor = max(status("VmRSS"), status("VmHWM"))
summary = ElementRequest(arrays, old, arrays, new, 0, 5000, DecodeBudget()).compute()
print(json.dumps({"added_mb": status("VmHWM") - floor, "points": int(summary.scatter.index.size),
                  "changed": summary.scatter.changed, "cells": list(summary.heatmap.z.shape)}))
"""


@pytest.fixture(scope="module")
def heavy_pair(tmp_path_factory):  # type: ignore[no-untyped-def]
    return write_heavy_pair(tmp_path_factory.mktemp("heavy"))


def run_child(code: str, *args: str) -> dict:
    done = subprocess.run(python_command("-c", code, *args), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_comparing_charting_and_ranking_the_heaviest_pair_stays_bounded(heavy_pair) -> None:  # type: ignore[no-untyped-def]
    out = run_child(CHILD, *map(str, heavy_pair))
    assert out["verdict"] == "drift" and out["changed"] == 24 and out["worst_ulp"] == 1 << 20
    assert out["charts"] == ["ULP distance histogram", "Baseline vs candidate", "Difference heatmap",
                             "Error by timestep"]
    assert out["added_mb"] < ADDED_MB_BOUND, out


def test_charts_of_stored_heavy_arrays_are_streamed(heavy_pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'heavy.sqlite'}"
    with Store(url) as db:
        ids = [db.ingest(path).run_id for path in heavy_pair]
    out = run_child(STREAMED_CHILD, url, *ids)
    assert out["changed"] == 24 and out["points"] == 5000 and out["cells"] == [228, 456]
    assert out["added_mb"] < 48, out  # two chunks and the two compressed rows, never the 2 x 64 MiB


# ---------------------------------------------------------------- exact figures on smaller pairs


def drifted(shape: tuple[int, ...], seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """float32 values of both signs, zeros, and a third of them moved by up to 3,000 ULP (p99 above 1,024)."""
    rng = np.random.default_rng(seed)
    base = store(rng.standard_normal(shape) * 10.0 ** rng.integers(-6, 3, shape), "float32")
    base.reshape(-1)[rng.random(base.size) < 0.05] = 0
    moved = rng.random(shape) < 0.35
    cand = bump_ulps(base, "float32", rng.integers(1, 3000, int(moved.sum())), moved)
    return base, cand


def reference(a: np.ndarray, b: np.ndarray, time_axis: int) -> dict:
    """The figures from their definitions, on whole arrays, without driftboard's ULP code."""
    bits_a, bits_b = a.view(np.int32).astype(np.int64), b.view(np.int32).astype(np.int64)
    line_a = np.where(bits_a < 0, -(bits_a & 0x7FFFFFFF), bits_a)  # floats ordered as integers, ±0 -> 0
    line_b = np.where(bits_b < 0, -(bits_b & 0x7FFFFFFF), bits_b)
    d = np.abs(line_b - line_a).reshape(-1)
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(fb - fa)
    with np.errstate(all="ignore"):
        rel = np.where(diff == 0, 0.0, diff / np.abs(fa))
    order = sorted(range(d.size), key=lambda i: (-int(d[i]), i))[:10]
    steps = np.moveaxis(diff, time_axis, 0).reshape(diff.shape[time_axis], -1).max(axis=1)
    return {
        "changed": int(np.count_nonzero(bits_a != bits_b)),
        "ulp_max": int(d.max()),
        "ulp_mean": float(d.mean()),
        "ulp_p99": int(np.sort(d)[-(-99 * d.size // 100) - 1]),
        "max_abs": float(diff.max()),
        "max_abs_index": tuple(int(i) for i in np.unravel_index(diff.argmax(), a.shape)),
        "max_rel": float(rel.max()),
        "max_rel_index": tuple(int(i) for i in np.unravel_index(rel.argmax(), a.shape)),
        "mismatched": int(np.count_nonzero(diff > 1e-5 + 1.3e-6 * np.abs(fa))),  # float32 default policy
        "timestep_max_abs": tuple(float(v) for v in steps),
        "worst": [(tuple(int(i) for i in np.unravel_index(k, a.shape)), int(d[k])) for k in order],
    }


@pytest.mark.parametrize("chunk, keep", [(1 << 16, 1 << 16), (1000, 64)])
def test_chunked_metrics_equal_a_whole_array_recomputation(monkeypatch: pytest.MonkeyPatch, chunk: int,
                                                           keep: int) -> None:
    # keep=64: far more large distances than are kept, so p99 comes from the selection passes
    monkeypatch.setattr(metrics_module, "CHUNK", chunk)
    monkeypatch.setattr(metrics_module, "LARGE_KEEP", keep)
    a, b = drifted((48, 64, 40))
    want = reference(a, b, time_axis=1)
    got = compare_arrays(a, b, "float32", time_axis=1)
    for name, value in want.items():
        if name == "worst":
            rows = worst_elements(a, b, "float32", k=10)
            assert [(r.index, r.ulp) for r in rows] == value
        elif name == "ulp_mean":
            assert got.ulp_mean == pytest.approx(value, rel=1e-12)
        else:
            assert getattr(got, name) == value, name
    assert want["ulp_p99"] > 1024  # the pair does reach the selection path


def test_a_long_time_axis_is_folded_into_groups_of_timesteps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "TIMESTEP_CAP", 100)
    a, b = drifted((2, 250, 3))
    m = compare_arrays(a, b, "float32", time_axis=1)
    per_step = np.abs(b.astype(np.float64) - a.astype(np.float64)).max(axis=(0, 2))
    assert m.timestep_group == 3 and len(m.timestep_max_abs) == 84
    assert m.timestep_max_abs == tuple(float(per_step[i : i + 3].max()) for i in range(0, 250, 3))
    assert m.to_json()["timestep_group"] == 3
    assert "timestep_group" not in compare_arrays(a, b, "float32", time_axis=0).to_json()
    fig = charts.timestep_error(m.timestep_max_abs, group=m.timestep_group)
    assert list(fig.data[0].x)[:3] == [0, 3, 6]


def test_stored_arrays_stream_to_the_same_charts_and_a_corrupt_row_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = drifted((60, 70))
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "c", a, time_axis=0)])
    new = make_run([make_case(arrays, "c", b, time_axis=0)], run_id="candidate")
    with Store(f"sqlite:///{tmp_path / 'db.sqlite'}") as db:
        for run, name in ((old, "a"), (new, "b")):
            db.ingest(write_bundle(tmp_path / name, run, arrays))
        streamed = StreamedArrays(db.engine)
        ref_a, ref_b = old.cases[0].output, new.cases[0].output
        assert np.array_equal(streamed.load(ref_a), a)
        assert np.array_equal(np.concatenate(list(streamed.chunks(ref_b, 999))), b.reshape(-1))
        request = element_data.ElementRequest(streamed, ref_a, streamed, ref_b, 0, 500, DecodeBudget())
        summary, whole = request.compute(), element_data.element_charts(a, b, "float32", 0, 500)
        assert summary.ulp == whole.ulp and np.array_equal(summary.heatmap.z, whole.heatmap.z, equal_nan=True)
        assert np.array_equal(summary.scatter.index, whole.scatter.index)
        assert np.array_equal(summary.scatter.y, whole.scatter.y)
        with transaction(db.engine, write=True) as session:
            stored = session.get(ArrayRow, ref_b.sha256)
            session.execute(update(ArrayRow).where(ArrayRow.sha256 == ref_b.sha256)
                            .values(data=stored.data[:-40] + bytes(40)))
        with pytest.raises(StoreError, match="corrupt in the database"):
            request.compute()


# ---------------------------------------------------------------- charts draw a bounded number of points


def test_chart_builders_cap_what_a_huge_array_draws() -> None:
    a, b = drifted((2048, 2048))
    scatter = charts.scatter_baseline_vs_candidate(a, b, max_points=10**9, dtype="float32")
    points = sum(len(t.x) for t in scatter.data if t.mode == "markers")
    assert points == charts.POINT_CAP
    heat = np.asarray(charts.difference_heatmap(a, b, dtype="float32").data[0].z)
    assert heat.shape[0] <= charts.HEATMAP_MAX[0] and heat.shape[1] <= charts.HEATMAP_MAX[1]
    bars = charts.ulp_histogram(element_data.ulp_bins_of(a, b, "float32"), dtype="float32").data[0]
    assert len(bars.x) <= 66 and sum(bars.y) == a.size
    steps = charts.timestep_error(np.linspace(0, 1, 100_000))
    assert len(steps.data[0].x) <= charts.POINT_CAP and steps.data[0].y[-1] == 1.0


def heavy_case(shape: tuple[int, ...] = (64, 96)):  # type: ignore[no-untyped-def]
    a, b = drifted(shape)
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "c", a, time_axis=0)])
    new = make_run([make_case(arrays, "c", b, time_axis=0)], run_id="candidate")
    return compare_runs(old, arrays, new, arrays).cases[0], arrays, old.cases[0], new.cases[0]


def test_a_page_past_its_decode_budget_skips_the_element_charts_and_says_so() -> None:
    case, arrays, old, new = heavy_case()
    pair = old.output.nbytes + new.output.nbytes
    budget = DecodeBudget(limit=pair + pair // 2, gate=None)
    first = charts.case_figures(case, arrays, arrays, old, new, budget=budget)
    assert [t for t, _ in first] == ["ULP distance histogram", "Baseline vs candidate", "Difference heatmap",
                                     "Error by timestep"] and not first.skipped
    second = charts.case_figures(case, arrays, arrays, old, new, budget=budget)  # a second tab of the page
    assert [t for t, _ in second] == ["Error by timestep"]
    assert second.skipped in second.explanation and "\n" not in second.skipped
    assert "ULP histogram, scatter and heatmap" in second.skipped and "budget" in second.skipped
    assert budget.used == pair


def test_a_summary_given_by_a_cache_decodes_nothing() -> None:
    case, arrays, old, new = heavy_case()
    summary = element_data.element_charts(arrays.load(old.output), arrays.load(new.output), "float32", 0)
    budget = DecodeBudget(limit=0)
    out = charts.case_figures(case, arrays, arrays, old, new, budget=budget, summarise=lambda request: summary)
    assert len(out) == 4 and budget.used == 0


def test_the_decode_gate_lets_one_heavy_pair_in_at_a_time() -> None:
    gate = DecodeGate(128 * MiB)
    order: list[str] = []

    def second() -> None:
        with gate.hold(128 * MiB):
            order.append("second")

    with gate.hold(100 * MiB):
        order.append("first")
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.2)  # the second holder would fit only past the capacity: it must still be waiting
        order.append("first done")
    waiter.join(timeout=10)
    assert order == ["first", "first done", "second"]
    with gate.hold(512 * MiB):  # larger than the gate: runs, alone
        assert gate.in_flight == 512 * MiB
    assert gate.in_flight == 0


# ---------------------------------------------------------------- the Compare page


def test_the_compare_page_says_which_charts_its_budget_skipped_and_cached_charts_cost_nothing(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(decode_budget, "PAGE_DECODE_BYTES", 1)  # no chart data may be decoded
    at = open_page("compare", baseline=GOLDEN, candidate=[LAPTOP, UPGRADED])
    skipped = [t for t in texts(at) if "Skipped the ULP histogram, scatter and heatmap" in t]
    assert len(skipped) == 2 and all("budget for chart data" in t for t in skipped)  # one line per tab
    assert not any("ULP distance per element" in str(c.proto.spec) for c in at.get("plotly_chart"))
    monkeypatch.setattr(decode_budget, "PAGE_DECODE_BYTES", 256 * MiB)
    at.run()
    assert not at.exception and not said(at, "Skipped the ULP histogram")
    drawn = sum("ULP distance per element" in str(c.proto.spec) for c in at.get("plotly_chart"))
    assert drawn == 2
    monkeypatch.setattr(decode_budget, "PAGE_DECODE_BYTES", 1)
    at.run()  # the same cases again: their chart data comes from the cache, nothing is decoded
    assert not at.exception and not said(at, "Skipped the ULP histogram")
    assert sum("ULP distance per element" in str(c.proto.spec) for c in at.get("plotly_chart")) == 2
