"""The Compare page on a case of the team's own models (AppTest, a seeded SQLite database): the first
divergent module in words, the smallest passing tolerance, the module chart and the layer table."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from apptest_factory import open_page, private_copy, seed_sqlite
from db_factory import make_run
from own_factory import chain, own_case
from streamlit.testing.v1 import AppTest

from driftboard.core.bundle import bundle_bytes
from driftboard.dashboard import charts, tables

GOLDEN = "m0000-r00000-default"
DRIFTING = "m0001-r00000-default"
X = np.random.RandomState(13).uniform(-1, 1, (4, 8)).astype(np.float32)
FIRST = "layers.1.linear (Linear), call 1"  # chain's third call, where the bump lands


def with_own(machine: int, bump: float | None = None) -> bytes:
    """A suite run plus two own cases; ``bump`` moves the encoder from its third module call on."""
    run, arrays = make_run(machine, 0)
    calls = chain(X, 6, {2: bump} if bump else None)
    encoder = own_case(arrays, "encoder", [("", calls[-1][3])], calls)
    heads = own_case(arrays, "heads", [("", X)], chain(X, 2))
    return bundle_bytes(replace(run, cases=run.cases + (encoder, heads)), arrays)


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    return seed_sqlite(tmp_path_factory.mktemp("compare_own"), (with_own(0), with_own(1, bump=1e-3)), GOLDEN)


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def open_compare(case: str) -> AppTest:
    return open_page("compare", baseline=GOLDEN, candidate=DRIFTING, case=case)


def said(at: AppTest, phrase: str) -> bool:
    shown = [str(e.value) for kind in ("markdown", "caption", "info") for e in at.get(kind)]
    return any(phrase in text.replace("\\", "") for text in shown)


def module_table(at: AppTest):  # type: ignore[no-untyped-def]
    found = [df.value for df in at.dataframe if "module call" in df.value.columns]
    assert len(found) == 1, "one layer table"
    return found[0]


def test_an_own_case_shows_where_its_forward_starts_to_differ(db_url):
    at = open_compare("encoder/cpu/float32")
    assert at.selectbox(key="compare_case_0").value == "encoder/cpu/float32"
    assert said(at, f"First divergent module: **{FIRST}**, call 3 of 6 in execution order; 4 calls differ.")
    assert said(at, "Smallest tolerance that would have passed: passes at ulp:")
    table = module_table(at)
    assert list(table["#"]) == [1, 2, 3, 4, 5, 6]
    assert list(table["identical"]) == ["yes", "yes", tables.FIRST_DIVERGENT, "no", "no", "no"]
    assert table["module call"][2] == FIRST
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    modules = [s for s in specs if "divergence by module call" in s["layout"]["title"]["text"]]
    assert len(modules) == 1, "the module chart, drawn once, full width"
    assert modules[0]["layout"]["yaxis"]["type"] == "log"
    assert [s["x0"] for s in modules[0]["layout"]["shapes"]] == [3]
    assert modules[0]["layout"]["annotations"][0]["text"] == f"first divergent: {FIRST}"
    assert len(specs) > 1  # the element charts of the output follow


def test_an_identical_own_case_says_every_call_is_identical(db_url):
    at = open_compare("heads/cpu/float32")
    assert at.selectbox(key="compare_case_0").value == "heads/cpu/float32"
    assert said(at, "All 2 module calls are bitwise identical on both machines.")
    assert not any(charts.MODULE_CHART.lower() in c.proto.spec for c in at.get("plotly_chart"))
    table = module_table(at)
    assert list(table["identical"]) == ["yes", "yes"]
