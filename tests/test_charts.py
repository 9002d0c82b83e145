"""Chart builders, checked on their traces and axes: no Streamlit, no browser, no torch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from runs_factory import bump_ulps, make_case, make_run, store

from driftboard.core.audit import TimelineEvent, TimelinePoint
from driftboard.core.compare import NAN_DISTANCE, LayerDivergence, Verdict, compare_runs, ulp_distance
from driftboard.core.compare.verdict import text_colour_on
from driftboard.core.run import MemoryArrays
from driftboard.dashboard import charts
from driftboard.dashboard.format import (
    VERDICT_STYLES,
    fmt_count,
    fmt_ulp,
    html_text,
    markdown_text,
    plotly_text,
    safe_text,
    verdict_label,
)

HOSTILE = "<script>alert(1)</script>"


def annotation_text(fig: go.Figure) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


def axis_title(axis) -> str:  # type: ignore[no-untyped-def]
    return axis.title.text or ""


# ---------------------------------------------------------------- format helpers


def test_every_verdict_has_colour_icon_and_word() -> None:
    for verdict in Verdict:
        style = VERDICT_STYLES[verdict]
        assert style.word == verdict.value
        assert style.icon and style.colour.startswith("#")
        assert verdict_label(verdict) == f"{style.icon} {verdict.value}"
    assert len({s.colour for s in VERDICT_STYLES.values()}) == len(Verdict)  # colours tell verdicts apart too
    assert verdict_label("drift") == verdict_label(Verdict.DRIFT) == verdict_label("DRIFT")
    assert text_colour_on("#ffffff") == "#000000" and text_colour_on("#000000") == "#ffffff"


def test_number_formatting() -> None:
    assert fmt_ulp(0) == "0" and fmt_ulp(24899) == "24,899" and fmt_ulp(None) == "–"
    assert fmt_ulp(NAN_DISTANCE["float32"], "float32") == "∞ (NaN)"
    assert fmt_count(1, 9600) == "1 / 9,600 (0.01%)"
    assert fmt_count(0, 10) == "0 / 10 (0%)" and fmt_count(1, 10**6) == "1 / 1,000,000 (<0.01%)"
    assert fmt_count(9599, 9600).endswith("(99.9%)")


def test_text_helpers_neutralise_markup() -> None:
    assert safe_text("a\nb\x00\u202e c") == "a b c"
    assert "<" not in html_text(HOSTILE) and "&lt;script&gt;" in html_text(HOSTILE)
    assert plotly_text("<a href='javascript:x'>") == "&lt;a href='javascript:x'&gt;"
    assert markdown_text("**x** [a](b) <b>") == r"\*\*x\*\* \[a\]\(b\) \<b\>"
    assert len(safe_text("x" * 1000, 50)) == 50


# ---------------------------------------------------------------- ULP histogram


def test_ulp_histogram_bins_zero_powers_of_two_and_nan() -> None:
    d = np.array([0, 0, 0, 1, 2, 3, 4, 1000, NAN_DISTANCE["float32"]], dtype=np.uint64)
    fig = charts.ulp_histogram(d, dtype="float32")
    bar = fig.data[0]
    assert bar.type == "bar"
    labels, counts = list(bar.x), list(bar.y)
    assert labels[0] == "0" and counts[0] == 3
    assert labels[1] == "1" and counts[1] == 1
    assert labels[2] == "2–3" and counts[2] == 2
    assert labels[-1] == "NaN vs number" and counts[-1] == 1
    assert sum(counts) == d.size
    assert fig.layout.yaxis.type == "log"
    assert "ULP distance" in axis_title(fig.layout.xaxis)
    assert "6 / 9 (66.7%) elements differ" in fig.layout.title.text


def test_ulp_histogram_handles_huge_float64_distances_exactly() -> None:
    d = np.array([2**63 - 1, 2**63, 2**64 - 2], dtype=np.uint64)
    bar = charts.ulp_histogram(d, dtype="float64").data[0]
    assert list(bar.y)[-2:] == [1, 2]  # 2**63 - 1 in bin 63, the two others in bin 64
    assert len(bar.x) == 65


def test_ulp_histogram_empty_input_is_explained() -> None:
    fig = charts.ulp_histogram(np.array([], dtype=np.uint64))
    assert not fig.data
    assert "empty" in annotation_text(fig)


def test_ulp_histogram_of_integer_outputs_has_no_nan_bar() -> None:
    bar = charts.ulp_histogram(np.array([0, 65535], dtype=np.uint64), dtype="int64").data[0]
    assert "NaN vs number" not in list(bar.x) and sum(bar.y) == 2


# ---------------------------------------------------------------- scatter


def test_scatter_has_identity_line_and_subsamples_deterministically() -> None:
    rng = np.random.RandomState(0)
    a = rng.standard_normal(20000).astype(np.float32)
    b = a.copy()
    b[::7] = np.nextafter(b[::7], np.float32(np.inf))
    b[123] += 1.0  # one big outlier that must be in the sample
    fig = charts.scatter_baseline_vs_candidate(a, b, max_points=2000, dtype="float32")
    points = [t for t in fig.data if t.mode == "markers"]
    assert sum(len(t.x) for t in points) == 2000
    assert {t.name.split(" ")[0] for t in points} == {"unchanged", "changed"}
    line = next(t for t in fig.data if t.mode == "lines")
    assert list(line.x) == list(line.y) and line.name.startswith("y = x")
    assert axis_title(fig.layout.xaxis) == "baseline value" and axis_title(fig.layout.yaxis) == "candidate value"
    changed = next(t for t in points if t.name.startswith("changed"))
    assert "[123]" in [row[0] for row in changed.customdata]
    again = charts.scatter_baseline_vs_candidate(a, b, max_points=2000, dtype="float32")
    assert [list(t.x) for t in again.data] == [list(t.x) for t in fig.data]


def test_scatter_small_input_shows_every_point_and_reports_nonfinite() -> None:
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([1.0, 2.5, 3.0, 4.0])
    fig = charts.scatter_baseline_vs_candidate(a, b)
    assert sum(len(t.x) for t in fig.data if t.mode == "markers") == 3
    assert "1 NaN/Inf left out" in fig.layout.title.text


def test_scatter_empty_and_mismatched_shapes_are_explained() -> None:
    assert "empty" in annotation_text(charts.scatter_baseline_vs_candidate(np.array([]), np.array([])))
    fig = charts.scatter_baseline_vs_candidate(np.zeros(3), np.zeros(4))
    assert not fig.data and "Shapes differ" in annotation_text(fig)


def test_scatter_decodes_bfloat16_bits() -> None:
    a = store(np.array([1.0, -2.0, 0.5]), "bfloat16")
    fig = charts.scatter_baseline_vs_candidate(a, a, dtype="bfloat16")
    assert sorted(fig.data[0].x) == [-2.0, 0.5, 1.0]


# ---------------------------------------------------------------- heatmap


def test_heatmap_is_signed_diverging_and_centred_at_zero() -> None:
    a = np.zeros((4, 6))
    b = a.copy()
    b[1, 2] = 0.5
    b[3, 0] = -0.25
    fig = charts.difference_heatmap(a, b)
    heat = fig.data[0]
    assert heat.type == "heatmap" and heat.zmid == 0
    z = np.asarray(heat.z)
    assert z.shape == (4, 6) and z[1, 2] == 0.5 and z[3, 0] == -0.25
    assert heat.colorscale[0][1] != heat.colorscale[-1][1]  # diverging: different ends
    assert fig.layout.yaxis.autorange == "reversed"


def test_heatmap_views_lstm_output_as_timesteps_and_reduces_big_grids() -> None:
    a = np.zeros((64, 30, 5), dtype=np.float32)
    b = a.copy()
    b[10, 7, 3] = 1e-6
    fig = charts.difference_heatmap(a, b, dtype="float32", time_axis=1)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (30, 320)
    assert z[7, 10 * 5 + 3] == pytest.approx(1e-6)
    assert axis_title(fig.layout.yaxis).startswith("timestep")
    big = np.zeros((1000, 2000))
    big_b = big.copy()
    big_b[999, 1999] = -3.0
    reduced = np.asarray(charts.difference_heatmap(big, big_b).data[0].z)
    assert reduced.shape[0] <= charts.HEATMAP_MAX[0] and reduced.shape[1] <= charts.HEATMAP_MAX[1]
    assert np.nanmin(reduced) == -3.0  # the outlier survives the reduction, with its sign


def test_heatmap_of_one_dimensional_output_is_explained() -> None:
    fig = charts.difference_heatmap(np.zeros((10, 1, 1)), np.ones((10, 1, 1)))
    assert not fig.data and "two dimensions" in annotation_text(fig)


def test_heatmap_leaves_nonfinite_mismatches_blank() -> None:
    a = np.array([[1.0, np.nan], [np.inf, 2.0]])
    b = np.array([[1.0, np.nan], [1.0, 2.0]])
    z = np.asarray(charts.difference_heatmap(a, b).data[0].z)
    assert z[0, 1] == 0 and np.isnan(z[1, 0])


# ---------------------------------------------------------------- timesteps and layers


def test_timestep_error_uses_log_axis_when_errors_span_decades() -> None:
    fig = charts.timestep_error([0.0, 1e-9, 1e-8, 1e-6, 1e-5])
    trace = fig.data[0]
    assert trace.type == "scatter" and len(trace.x) == 5
    assert fig.layout.yaxis.type == "log"
    assert "first difference at t=1" in annotation_text(fig)
    assert "absolute error" in axis_title(fig.layout.yaxis) and "timestep" in axis_title(fig.layout.xaxis)
    flat = charts.timestep_error([1e-8, 2e-8, 1.5e-8])
    assert flat.layout.yaxis.type != "log"


def test_timestep_error_empty_and_identical() -> None:
    assert "no time axis" in annotation_text(charts.timestep_error([]))
    assert "identical at every timestep" in charts.timestep_error([0.0, 0.0]).layout.title.text


def test_layer_divergence_highlights_first_divergent_layer() -> None:
    fig = charts.layer_divergence([("fc1", 0.0), ("fc2", 3e-8), ("out", 1e-6)])
    bar = fig.data[0]
    assert bar.type == "bar" and len(bar.x) == 3
    colours = list(bar.marker.color)
    assert colours[1] == charts.VERMILLION and colours[0] != colours[1] and colours[2] != colours[1]
    assert "first divergent" in bar.text[1]
    assert "fc2" in fig.layout.title.text


def test_layer_divergence_explains_digest_only_layers_and_escapes_names() -> None:
    layers = [LayerDivergence("lstm", True, 0.0, 0), LayerDivergence(HOSTILE, False, note="digests differ")]
    fig = charts.layer_divergence(layers)
    assert "digests differ" in fig.data[0].text[1]
    assert HOSTILE not in fig.data[0].x[1] and "&lt;script&gt;" in fig.data[0].x[1]
    assert "no intermediate layers" in annotation_text(charts.layer_divergence([]))


# ---------------------------------------------------------------- drift matrix


def matrix_inputs(n_runs: int, n_cases: int):  # type: ignore[no-untyped-def]
    verdicts = list(Verdict)
    grid = [[verdicts[(r * 7 + c) % 4] if (r + c) % 11 else None for c in range(n_cases)] for r in range(n_runs)]
    hover = [[f"max ULP {r + c}\nmax abs 1e-8" for c in range(n_cases)] for r in range(n_runs)]
    runs = [f"run-{r}" for r in range(n_runs)]
    cases = [f"case_{c}/cpu/float32" for c in range(n_cases)]
    return runs, cases, grid, hover


def test_drift_matrix_colour_bar_shows_words_and_customdata_carries_ids() -> None:
    runs, cases, grid, hover = matrix_inputs(5, 4)
    fig = charts.drift_matrix([f"label {r}" for r in runs], cases, grid, hover, run_ids=runs, case_keys=cases)
    heat, picker = fig.data
    assert heat.type == "heatmap" and picker.type == "scatter"
    ticktext = list(heat.colorbar.ticktext)
    assert all(any(v.value in t for v in Verdict) for t in ticktext)
    assert ticktext == sorted(ticktext, key=lambda t: next(v.severity for v in Verdict if t.endswith(v.value)))
    assert np.asarray(heat.customdata).shape == (5, 4, 2)
    assert tuple(heat.customdata[2][3]) == ("run-2", "case_3/cpu/float32")
    assert len(picker.x) == 20 and tuple(picker.customdata[2 * 4 + 3]) == ("run-2", "case_3/cpu/float32")
    assert "max ULP 5<br>max abs 1e-8" in picker.hovertext[2 * 4 + 3]
    assert np.isnan(np.asarray(heat.z, dtype=float)[0, 0])  # None -> no result, left blank
    clicked = [{"customdata": ["run-1", "case_0/cpu/float32"]}, {"x": 2, "y": 4}, {"x": 2, "y": 4}]
    assert charts.selected_cells(fig, clicked) == [("run-1", "case_0/cpu/float32"), ("run-4", "case_2/cpu/float32")]


def test_drift_matrix_escapes_labels_and_keeps_duplicate_labels_apart() -> None:
    fig = charts.drift_matrix([HOSTILE, HOSTILE], ["c"], [[Verdict.DRIFT], [Verdict.IDENTICAL]], run_ids=["a", "b"])
    assert HOSTILE not in fig.to_json()
    assert list(fig.data[0].y) == [0, 1]


def test_drift_matrix_of_200_runs_by_20_cases_is_one_grid() -> None:
    """Its cost stays flat in the cell count (the speed itself is bench_dashboard's): one heatmap, no per-cell
    annotations or shapes."""
    runs, cases, grid, hover = matrix_inputs(200, 20)
    fig = charts.drift_matrix(runs, cases, grid, hover, run_ids=runs, case_keys=cases)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 1 and np.asarray(heatmaps[0].z).shape == (200, 20)
    assert len(fig.layout.annotations or ()) < 20 and len(fig.layout.shapes or ()) < 20


def test_drift_matrix_empty_is_explained() -> None:
    fig = charts.drift_matrix([], [], [])
    assert not fig.data and "No runs" in annotation_text(fig)
    with pytest.raises(ValueError):
        charts.drift_matrix(["a"], ["c1", "c2"], [[Verdict.DRIFT]])


# ---------------------------------------------------------------- timeline and counts


def test_machine_timeline_has_one_marker_per_event() -> None:
    points = [
        TimelinePoint("r1", "2026-01-05T09:00:00+00:00", "golden", is_golden=True),
        TimelinePoint("r2", "2026-01-12T09:00:00+00:00", drifted=0, compared=18, worst=Verdict.IDENTICAL,
                      ulp_max=0),
        TimelinePoint("r3", "2026-02-02T09:00:00+00:00", drifted=4, failing=1, compared=18,
                      worst=Verdict.DRIFT, ulp_max=512),
        TimelinePoint("r4", "2026-03-01T09:00:00+00:00", drifted=5, compared=18, worst=Verdict.DRIFT,
                      ulp_max=1024),
    ]
    events = [
        TimelineEvent("r2", "r3", points[1].captured_at, points[2].captured_at, ("NVIDIA driver 535 → 580",)),
        TimelineEvent("r3", "r4", points[2].captured_at, points[3].captured_at,
                      ("torch 2.3 → 2.4", "oneDNN 3.3 → 3.5", "BLAS a → b")),
    ]
    fig = charts.machine_timeline(points, events)
    runs = fig.data[0]
    assert list(runs.y)[1:] == [0, 4, 5] and len(runs.x) == 4
    assert runs.marker.symbol[0] == "star"
    assert len(fig.layout.shapes) == len(events)
    marker_trace = next(t for t in fig.data if t.name == "environment change")
    assert len(marker_trace.x) == len(events)
    labels = annotation_text(fig)
    assert "NVIDIA driver 535 → 580" in labels and "torch 2.3 → 2.4; oneDNN 3.3 → 3.5; +1 more" in labels
    assert "captured" in axis_title(fig.layout.xaxis)
    assert events[0].at == "2026-01-22T21:00:00+00:00"  # halfway between the two runs
    ulp = charts.machine_timeline(points, events, y="ulp_max")
    assert "ULP" in axis_title(ulp.layout.yaxis)


def test_machine_timeline_empty_is_explained() -> None:
    assert "No runs" in annotation_text(charts.machine_timeline([], []))


def test_verdict_counts_bar_uses_words() -> None:
    fig = charts.verdict_counts_bar({Verdict.IDENTICAL: 14, Verdict.DRIFT: 3, Verdict.ERROR: 0})
    assert list(fig.data[0].y) == [verdict_label(Verdict.IDENTICAL), verdict_label(Verdict.DRIFT)]
    assert "No cases" in annotation_text(charts.verdict_counts_bar({}))


# ---------------------------------------------------------------- charts for one case


def lstm_pair():  # type: ignore[no-untyped-def]
    rng = np.random.RandomState(1)
    arrays = MemoryArrays()
    out = store(np.tanh(rng.standard_normal((4, 12, 8))), "float32")
    layer = store(rng.standard_normal((4, 16)), "float32")
    drifted = bump_ulps(out, "float32", 3, (slice(None), slice(5, None)))
    base = make_run([make_case(arrays, "lstm_2layer", out, time_axis=1, layers=[("lstm", layer)]),
                     make_case(arrays, "linear_10_5", store(rng.standard_normal((8, 5)), "float32")),
                     make_case(arrays, "rng_randn", store(rng.standard_normal(50), "float32"))])
    cand = make_run([make_case(arrays, "lstm_2layer", drifted, time_axis=1,
                               layers=[("lstm", bump_ulps(layer, "float32", 1))]),
                     make_case(arrays, "linear_10_5", store(rng.standard_normal((8, 5)), "float32"),
                               inputs="inputs-v2")], run_id="candidate")
    return base, cand, arrays, compare_runs(base, arrays, cand, arrays)


def test_case_figures_for_a_drifted_lstm_case() -> None:
    base, cand, arrays, result = lstm_pair()
    case = result.case("lstm_2layer")
    out = charts.case_figures(case, arrays, arrays, base.case("lstm_2layer"), cand.case("lstm_2layer"))
    titles = [title for title, _ in out]
    assert titles == ["ULP distance histogram", "Baseline vs candidate", "Difference heatmap",
                      "Error by timestep", "Divergence by layer"]
    assert case.verdict.value in out.explanation
    histogram = out.figures[0][1]
    assert sum(histogram.data[0].y) == 4 * 12 * 8
    steps = out.figures[3][1].data[0]
    assert list(steps.y)[:5] == [0, 0, 0, 0, 0] and all(v > 0 for v in list(steps.y)[5:])
    assert len(out) == 5 and out[0][0] == "ULP distance histogram"


def test_case_figures_explain_cases_without_charts() -> None:
    base, cand, arrays, result = lstm_pair()
    inputs = result.case("linear_10_5")
    out = charts.case_figures(inputs, arrays, arrays, base.case("linear_10_5"), cand.case("linear_10_5"))
    assert inputs.verdict is Verdict.INPUTS_DIFFER and not out.figures and "different reference data" in out.explanation
    missing = result.case("rng_randn")
    out = charts.case_figures(missing, arrays, arrays, base.case("rng_randn"), None)
    assert not out.figures and "only the baseline ran this case" in out.explanation
    same = compare_runs(base, arrays, base, arrays).case("lstm_2layer")
    out = charts.case_figures(same, arrays, arrays, base.case("lstm_2layer"), base.case("lstm_2layer"))
    assert not out.figures and "same bits" in out.explanation and "384" in out.explanation


def test_ulp_distances_for_the_histogram_match_core() -> None:
    a = store(np.linspace(-1, 1, 11), "float32")
    b = bump_ulps(a, "float32", 5)
    bar = charts.ulp_histogram(ulp_distance(a, b, "float32"), dtype="float32").data[0]
    assert dict(zip(bar.x, bar.y, strict=True))["4–7"] == 11  # every element, 0.0 included, moved 5 ULP


def test_chart_modules_import_no_streamlit_or_torch() -> None:
    import subprocess

    code = ("import sys, driftboard.dashboard.charts, driftboard.dashboard.html_report, driftboard.dashboard.format, "
            "driftboard.cli.report_cmd; "
            "from driftboard.cli import main; "
            "bad = [m for m in ('streamlit', 'torch') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
