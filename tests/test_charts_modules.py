"""The per-module chart and layer table of an own model, from real comparisons of synthetic own runs.

Runs come from ``own_factory`` (module calls with statistics, or whole arrays in
full mode) and are compared by ``compare_runs``; the figure and the table are
checked against the comparison's module changes: execution order, the log
axis, the bands of identical calls and of calls without figures, the marker
of the first divergent call, and one trace per kind of call however many calls.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from own_factory import chain, own_case
from runs_factory import make_run

from driftboard.core.compare import Verdict, compare_runs
from driftboard.core.compare.runs import CaseComparison
from driftboard.core.run import MemoryArrays
from driftboard.dashboard import charts, tables

X = np.random.RandomState(7).uniform(-1, 1, (8, 16)).astype(np.float32)
HOSTILE = "<img src=x onerror=alert(1)>"


def compared(before: list, after: list, *, full: bool = False, **options) -> tuple[CaseComparison, tuple]:
    """The own case ``m`` with module calls ``before`` on the baseline and ``after`` on the candidate."""
    arrays = MemoryArrays()
    base = make_run([own_case(arrays, "m", [("", before[-1][3])], before, full=full)], run_id="base")
    cand = make_run([own_case(arrays, "m", [("", after[-1][3])], after, full=full, **options)], run_id="cand")
    result = compare_runs(base, arrays, cand, arrays)
    return result.cases[0], (base, cand, arrays)


def points(fig: go.Figure) -> dict[int, tuple[str, str, float, list]]:
    """Every drawn call by its x position: (trace name, ..., y, customdata), the first-divergent ring left out."""
    out = {}
    for trace in fig.data:
        if trace.name == "first divergent call":
            continue
        for x, y, custom in zip(trace.x, trace.y, trace.customdata, strict=True):
            assert int(x) not in out, "a call drawn twice"
            out[int(x)] = (trace.name, float(y), list(custom))
    return out


def test_points_follow_execution_order_on_a_log_axis_with_the_first_divergent_call_marked() -> None:
    before, after = chain(X, 12), chain(X, 12, bump={5: 1e-3})
    case, _ = compared(before, after)
    first = case.first_divergent_module
    assert case.verdict is Verdict.DRIFT and first.label == "layers.2.act (Tanh), call 1"
    fig = charts.module_divergence(case.modules, first, title="m")
    drawn = points(fig)
    assert sorted(drawn) == list(range(1, len(case.modules) + 1))
    assert [(c[0], int(c[2])) for _, (_, _, c) in sorted(drawn.items())] == [(m.name, m.call) for m in case.modules]
    assert fig.layout.yaxis.type == "log" and "log" in fig.layout.yaxis.title.text
    floor = fig.layout.yaxis.tickvals[0]
    assert fig.layout.yaxis.ticktext[0] == "0 (identical)"
    for x, (name, y, _) in drawn.items():
        module = case.modules[x - 1]
        if module.identical:
            assert name.startswith("bitwise identical") and y == floor
        else:
            assert name.startswith("differs") and y == pytest.approx(module.change.rel_error) and y > floor
    at = case.modules.index(first) + 1
    assert at == 6  # the bump lands on the sixth call
    (line,) = fig.layout.shapes
    assert line.x0 == line.x1 == at and line.yref == "paper"
    (note,) = fig.layout.annotations
    assert note.x == at and note.text == f"first divergent: {first.label}"
    ring = next(t for t in fig.data if t.name == "first divergent call")
    assert list(ring.x) == [at] and list(ring.customdata[0][:3]) == [first.name, first.type, str(first.call)]
    assert "12 module calls, 7 differ; y: relative change of the L2 norm" in fig.layout.title.text


def test_hover_has_module_type_call_and_figures() -> None:
    case, _ = compared(chain(X, 4), chain(X, 4, bump={2: 2e-4}), full=True)
    fig = charts.module_divergence(case.modules)
    template = fig.data[0].hovertemplate
    assert all(part in template for part in ("%{customdata[0]}", "%{customdata[1]}", "call %{customdata[2]}",
                                             "#%{x} in execution order", "%{customdata[3]}"))
    changed = next(t for t in fig.data if t.name.startswith("differs"))
    module = case.modules[int(changed.x[0]) - 1]
    name, kind, call, figures = changed.customdata[0]
    assert (name, kind, call) == (module.name, module.type, str(module.call))
    assert module.change.elementwise and "ULP" in figures and "rel L2 error" in figures
    assert "y: relative L2 error (element by element)" in fig.layout.title.text
    identical = next(t for t in fig.data if t.name.startswith("bitwise identical"))
    assert identical.customdata[0][3] == "bitwise identical"


def test_calls_without_figures_sit_on_their_own_band() -> None:
    before = chain(X, 4)
    after = [*chain(X, 4)[:2], ("layers.1.linear", 1, "Linear", X[:, :3]), ("layers.9.extra", 1, "Linear", X)]
    case, _ = compared(before, after)
    fig = charts.module_divergence(case.modules)
    drawn = points(fig)
    notes = {m.label: m.change.note for m in case.modules if m.change.note}
    assert len(notes) == 3  # a shape change, a call only in the baseline, one only in the candidate
    top = fig.layout.yaxis.tickvals[-1]
    assert fig.layout.yaxis.ticktext[-1] == "no figure"
    for x, (name, y, custom) in drawn.items():
        module = case.modules[x - 1]
        if module.change.note:
            assert name.startswith("no figure") and y == top and module.change.note in custom[3]
    assert fig.layout.shapes[0].x0 == case.modules.index(case.first_divergent_module) + 1 == 3


def test_thousands_of_calls_stay_one_trace_per_kind_and_one_annotation() -> None:
    small = X[:2, :4]
    n = charts.LARGE_CHART + 500
    case, _ = compared(chain(small, n), chain(small, n, bump={n // 2: 1e-3}))
    fig = charts.module_divergence(case.modules)
    assert len(fig.data) <= len(charts._MODULE_KINDS) + 1
    assert all(isinstance(t, go.Scattergl) for t in fig.data)  # WebGL past LARGE_CHART points
    assert len(fig.layout.annotations) == 1 and len(fig.layout.shapes) == 1
    assert sum(len(t.x) for t in fig.data if t.name != "first divergent call") == n
    assert fig.layout.shapes[0].x0 == n // 2 + 1
    assert fig.layout.xaxis.tickvals is None  # numbered, not named, calls


def test_empty_and_identical_and_escaped() -> None:
    assert "no module calls" in " ".join(a.text for a in charts.module_divergence([]).layout.annotations)
    calls = chain(X, 3)
    case, _ = compared(calls, calls)
    fig = charts.module_divergence(case.modules)
    assert not fig.layout.shapes and "every call bitwise identical" in fig.layout.title.text
    hostile = [(HOSTILE, 1, HOSTILE, a) for _, _, _, a in chain(X, 2)]
    case, _ = compared(hostile, [(HOSTILE, 1, HOSTILE, a + 1) for _, _, _, a in chain(X, 2)])
    fig = charts.module_divergence(case.modules)
    shown = [str(v) for t in fig.data for row in t.customdata for v in row] + [a.text for a in fig.layout.annotations]
    shown += list(fig.layout.xaxis.ticktext)
    assert not any("<img" in text for text in shown) and any("&lt;img" in text for text in shown)


def test_case_figures_put_the_module_chart_first_and_leave_it_out_when_inputs_differ() -> None:
    before, after = chain(X, 6), chain(X, 6, bump={2: 1e-3})
    case, (base, cand, arrays) = compared(before, after)
    out = charts.case_figures(case, arrays, arrays, base.cases[0], cand.cases[0])
    assert out[0][0] == charts.MODULE_CHART and "ULP distance histogram" in [t for t, _ in out]
    without_arrays = charts.case_figures(case, None, None, base.cases[0], cand.cases[0])
    assert [t for t, _ in without_arrays] == [charts.MODULE_CHART]  # statistics need no arrays
    other, (base, cand, arrays) = compared(before, after, weights="w2")
    assert other.verdict is Verdict.INPUTS_DIFFER
    assert not charts.case_figures(other, arrays, arrays, base.cases[0], cand.cases[0]).figures
    quiet = chain(X, 6, bump={2: 1e-3})
    same_out = [*quiet[:-1], before[-1]]  # a middle call differs, the output does not
    case, (base, cand, arrays) = compared(before, same_out)
    assert case.verdict is Verdict.IDENTICAL and case.first_divergent_module is not None
    out = charts.case_figures(case, arrays, arrays, base.cases[0], cand.cases[0])
    assert [t for t, _ in out] == [charts.MODULE_CHART] and "see the module chart" in out.explanation


def test_layer_table_rows_follow_the_calls_in_either_mode() -> None:
    case, _ = compared(chain(X, 6), chain(X, 6, bump={2: 1e-3}))
    frame = tables.module_frame(case.modules, case.first_divergent_module)
    assert list(frame.columns) == ["#", "module call", "identical", "rel change of L2", "min change", "max change",
                                   "mean change", "note"]
    assert list(frame["module call"]) == [m.label for m in case.modules] and list(frame["#"]) == [1, 2, 3, 4, 5, 6]
    assert list(frame["identical"]) == ["yes", "yes", tables.FIRST_DIVERGENT, "no", "no", "no"]
    third = case.modules[2].change
    assert frame["rel change of L2"][2] == f"{third.l2_rel:.3g}" and frame["max change"][0] == "0"
    full, _ = compared(chain(X, 4), chain(X, 4, bump={2: 2e-4}), full=True)
    frame = tables.module_frame(full.modules, full.first_divergent_module)
    assert {"rel L2 error", "max ULP", "max abs", "max rel"} <= set(frame.columns)
    row = full.modules.index(full.first_divergent_module)
    assert frame["max ULP"][row] == f"{full.first_divergent_module.change.ulp_max:,}"
