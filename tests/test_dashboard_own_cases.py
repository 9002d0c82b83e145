"""Cases of the team's own models on the drift matrix and the Runs page (AppTest, a seeded SQLite database)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from apptest_factory import open_page, private_copy, seed_sqlite
from db_factory import make_bundle, make_run
from own_factory import chain, own_case
from runs_table import runs_table
from streamlit.testing.v1 import AppTest

from driftboard.core.bundle import bundle_bytes
from driftboard.core.compare import VERDICT_STYLES, Verdict
from driftboard.dashboard import charts

GOLDEN = "m0000-r00000-default"
DRIFTING = "m0001-r00000-default"
SUITE_ONLY = "m0002-r00000-default"
X = np.random.RandomState(11).uniform(-1, 1, (4, 8)).astype(np.float32)
HOSTILE_SOURCE = "<img src=x onerror=alert(1)>cases.py:heads"


def with_own(machine: int, bump: float | None = None) -> bytes:
    """A suite run plus two own cases; ``bump`` moves the encoder from its third module call on."""
    run, arrays = make_run(machine, 0)
    calls = chain(X, 6, {2: bump} if bump else None)
    encoder = own_case(arrays, "encoder", [("", calls[-1][3])], calls)
    heads = own_case(arrays, "heads", [("", X)], chain(X, 2))
    heads = replace(heads, own=replace(heads.own, source=HOSTILE_SOURCE))
    return bundle_bytes(replace(run, cases=run.cases + (encoder, heads)), arrays)


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    bundles = (with_own(0), with_own(1, bump=1e-3), make_bundle(2, 0))
    return seed_sqlite(tmp_path_factory.mktemp("own_dashboard"), bundles, GOLDEN)


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def figure(at: AppTest) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


# ---------------------------------------------------------------- drift matrix


def test_matrix_shows_own_cases_after_the_suite_under_their_own_heading(db_url):
    at = open_page("matrix")
    fig = figure(at)
    keys = fig["layout"]["meta"]["case_keys"]
    labels = fig["layout"]["xaxis"]["ticktext"]
    suite_cases = len({(c.case_id, c.device, c.dtype) for c in make_run(0, 0)[0].cases})
    assert keys[suite_cases:] == ["encoder/cpu/float32", "heads/cpu/float32"]  # own columns last
    assert labels[suite_cases:] == ["own · encoder/cpu/float32", "own · heads/cpu/float32"]
    assert not any(label.startswith("own") for label in labels[:suite_cases])
    rules = [s for s in fig["layout"]["shapes"] if s["x0"] == s["x1"]]
    assert [r["x0"] for r in rules] == [suite_cases - 0.5]  # one rule, between the suite and the own columns
    headings = [a["text"] for a in fig["layout"]["annotations"]]
    assert headings == ["<b>reference suite</b>", "<b>your own models</b>"]
    picker = fig["data"][-1]
    hovers = dict(zip((tuple(c) for c in picker["customdata"]), picker["hovertext"], strict=True))
    drifting = hovers[(DRIFTING, "encoder/cpu/float32")]
    assert "a case of the team's own models, from cases.py:encoder" in drifting
    assert "first divergent module layers.1.linear (Linear), call 1" in drifting
    assert drifting.split("<br>")[3] == VERDICT_STYLES[Verdict.DRIFT].label
    assert VERDICT_STYLES[Verdict.MISSING_IN_CANDIDATE].label in hovers[(SUITE_ONLY, "encoder/cpu/float32")]
    heads = hovers[(DRIFTING, "heads/cpu/float32")]
    assert "&lt;img src=x onerror=alert(1)&gt;cases.py:heads" in heads and "<img" not in heads
    assert "own models" not in hovers[(DRIFTING, "lstm_2layer/cpu/float32")]
    assert any("cases of your own models" in str(c.value) for c in at.caption)


def test_matrix_click_on_an_own_cell_opens_compare_on_that_case(db_url):
    at = open_page("matrix")
    at.session_state["drift_matrix"] = {"selection": {"points": [
        {"x": 0, "y": 0, "customdata": [DRIFTING, "encoder/cpu/float32"], "curve_number": 1}]}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Compare runs"
    assert at.query_params == {"baseline": GOLDEN, "candidate": DRIFTING}
    assert at.selectbox(key="compare_case_0").value == "encoder/cpu/float32"


def test_a_suite_only_matrix_has_no_group_headings():
    fig = charts.drift_matrix(["r1"], ["c1", "c2"], [[Verdict.IDENTICAL, Verdict.DRIFT]], run_ids=["r1"])
    assert not fig.layout.annotations and not [s for s in fig.layout.shapes if s.x0 == s.x1]


def test_column_groups_and_notes_must_fit_the_columns():
    with pytest.raises(ValueError, match="2 entries"):
        charts.drift_matrix(["r1"], ["c1", "c2"], [[None, None]], column_groups=["suite"])
    with pytest.raises(ValueError, match="2 entries"):
        charts.drift_matrix(["r1"], ["c1", "c2"], [[None, None]], case_notes=["x", None, None])


# ---------------------------------------------------------------- runs page


def test_runs_page_counts_own_cases_and_filters_by_one(db_url):
    at = open_page("runs")
    table = runs_table(at)
    own = dict(zip(table["run id"], table["own cases"], strict=True))
    assert own == {GOLDEN: 2, DRIFTING: 2, SUITE_ONLY: 0}
    total = dict(zip(table["run id"], table["cases"], strict=True))
    assert total[GOLDEN] == total[SUITE_ONLY] + 2
    at.text_input(key="f_own_case").input("encoder").run()
    assert not at.exception
    assert set(runs_table(at)["run id"]) == {GOLDEN, DRIFTING}
    at.text_input(key="f_own_case").input("lstm_2layer").run()  # a suite case: no run holds it as an own case
    assert not at.exception and not [df for df in at.dataframe if df.key == "runs_table"]
    assert any("No runs match" in str(i.value) for i in at.info)
