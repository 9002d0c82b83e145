"""The HTML report of a comparison with own-model cases: the module chart and the first divergent module named."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
from own_factory import chain, own_case
from runs_factory import make_run

from driftboard.core.compare import Verdict, compare_runs
from driftboard.core.run import MemoryArrays
from driftboard.dashboard.html_report import comparison_report_html

X = np.random.RandomState(9).uniform(-1, 1, (8, 16)).astype(np.float32)
WHEN = "2026-02-01T10:00:00+00:00"
HOSTILE = "<script>alert(1)</script>"


def own_pair():  # type: ignore[no-untyped-def]
    """An encoder that drifts from its fourth call, a model whose weights differ, and one left alone."""
    arrays = MemoryArrays()
    before, after = chain(X, 10), chain(X, 10, bump={3: 1e-3})
    hostile = [(f"{HOSTILE}.{i}", 1, "Linear", a) for i, (_, _, _, a) in enumerate(chain(X, 2))]
    base = make_run([own_case(arrays, "encoder", [("", before[-1][3])], before),
                     own_case(arrays, "other_weights", [("", X)], chain(X, 2)),
                     own_case(arrays, "hostile", [("", X)], hostile)], run_id="base")
    cand = make_run([own_case(arrays, "encoder", [("", after[-1][3])], after),
                     own_case(arrays, "other_weights", [("", X + 1)], chain(X + 1, 2), weights="w2"),
                     own_case(arrays, "hostile", [("", X * 2)], [(n, k, t, a * 2) for n, k, t, a in hostile])],
                    run_id="cand")
    return base, cand, arrays, compare_runs(base, arrays, cand, arrays)


def plots(page: str) -> list[dict]:
    """Each chart's figure as the page hands it to Plotly.newPlot: (div id, data, layout)."""
    found = re.findall(r'Plotly\.newPlot\(\s*"([^"]+)",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"', page, re.S)
    return [{"id": i, "data": json.loads(d), "layout": json.loads(lay)} for i, d, lay in found]


def values(array: list | dict) -> list:
    """A trace's values as plotly.js reads them: a list, or a typed array (``{"dtype", "bdata"}``, base64)."""
    if isinstance(array, list):
        return array
    return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()


def test_report_charts_the_module_calls_and_names_the_first_divergent_module() -> None:
    base, cand, arrays, result = own_pair()
    encoder = result.case("encoder")
    first = encoder.first_divergent_module
    assert encoder.verdict is Verdict.DRIFT and first.label == "layers.1.act (Tanh), call 1"
    page = comparison_report_html([result], {r.run_id: (r, arrays) for r in (base, cand)}, generated_at=WHEN)
    assert (f"First divergent module: <strong>{first.label}</strong>, call 4 of 10 in execution order; 7 differ"
            in page)
    modules = {p["layout"]["title"]["text"].split(":")[0]: p for p in plots(page)
               if "divergence by module call" in p["layout"]["title"]["text"]}
    assert sorted(modules) == ["encoder/cpu/float32", "hostile/cpu/float32"]
    chart = modules["encoder/cpu/float32"]
    assert chart["layout"]["yaxis"]["type"] == "log"
    assert [s["x0"] for s in chart["layout"]["shapes"]] == [encoder.modules.index(first) + 1]
    assert chart["layout"]["annotations"][0]["text"] == f"first divergent: {first.label}"
    drawn = sorted((int(x), row[0]) for t in chart["data"] if t["name"] != "first divergent call"
                   for x, row in zip(values(t["x"]), t["customdata"], strict=True))
    assert [name for _, name in drawn] == [m.name for m in encoder.modules]
    # weights differ: compute not judged, so no module is named and no module chart drawn
    assert "other_weights/cpu/float32: divergence by module call" not in page
    assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.0 (Linear), call 1" in page


def test_the_module_chart_needs_no_arrays() -> None:
    _, _, _, result = own_pair()
    page = comparison_report_html([result], generated_at=WHEN)
    assert page.count("* plotly.js v") == 1  # the module chart brings the library, once
    assert any("encoder/cpu/float32: divergence by module call" in p["layout"]["title"]["text"] for p in plots(page))
    assert "First divergent module: <strong>layers.1.act (Tanh), call 1</strong>" in page
