"""User text is shown, never rendered: no Markdown image, link or autolink from a label or hostname,
and the Runs page's CSV export cannot run a formula in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from apptest_factory import private_copy
from db_factory import fingerprint, machine_key, make_bundle
from streamlit.testing.v1 import AppTest

import driftboard.dashboard
from driftboard.core.text import spreadsheet_safe
from driftboard.dashboard import tables
from driftboard.db.store import Store

APP = Path(driftboard.dashboard.__file__).with_name("app.py")
GOLDEN = "m0000-r00000-default"
OTHER = "m0001-r00000-default"
LABEL = "![p](http://evil.example/p.png) see http://evil.example/x and www.evil.example [c](javascript:alert(1))"
FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("user-text") / "seed.sqlite"
    fp = fingerprint(1)
    fp["identity"]["hostname"] = "www.evil.example"
    with Store(f"sqlite:///{path}") as store:
        store.ingest(make_bundle(0, 0, label=LABEL), uploader="seed")
        store.ingest(make_bundle(1, 0, label=FORMULA, fp=fp, drift={"lstm_2layer": 2}), uploader="seed")
        store.set_golden(GOLDEN, set_by="seed", reason=LABEL)
    return path


@pytest.fixture
def db_url(seeded, tmp_path, monkeypatch) -> Iterator[str]:
    yield from private_copy(seeded, tmp_path, monkeypatch)


def _page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    if page != "status":  # the app opens on the team status board
        at.query_params.update(params)
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown_sources(at: AppTest) -> list[str]:
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error")
    found = [str(e.value) for kind in kinds for e in at.get(kind)]
    found += [str(t.label) for t in at.tabs] + [str(e.label) for e in at.expander]
    return found


@pytest.mark.parametrize(("page", "params"), [
    ("status", {}),
    ("runs", {}),
    ("compare", {"baseline": GOLDEN, "candidate": OTHER}),
    ("matrix", {}),
    ("machines", {"machine": machine_key(0)}),
    ("machines", {"machine": machine_key(1)}),
])
def test_no_page_renders_user_text_as_markdown(db_url: str, page: str, params: dict[str, str]) -> None:
    sources = _markdown_sources(_page(page, **params))
    assert sources
    for text in sources:
        assert "![" not in text and "](" not in text, text
        assert "http://" not in text and "www.evil" not in text, text  # no autolink either


def test_the_golden_label_reaches_the_machines_caption_escaped(db_url: str) -> None:
    captions = [str(c.value) for c in _page("machines", machine=machine_key(0)).caption]
    assert any("Against the golden" in c and "http\\:" in c for c in captions), captions


@pytest.mark.parametrize("cell", [FORMULA, "=1+2", "+1+2", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"])
def test_formula_cells_are_exported_as_text(cell: str) -> None:
    frame = pd.DataFrame({"label": [cell, "plain"], "runs": [3, -4]})
    rows = list(csv.reader(io.StringIO(tables.csv_bytes(frame).decode(), newline="")))
    assert rows[1][0] == "'" + cell and rows[2] == ["plain", "-4"]
    assert spreadsheet_safe(-4) == -4


def test_the_runs_page_offers_its_own_csv_and_it_is_safe(db_url: str) -> None:
    at = _page("runs")
    with Store(db_url) as store:
        frame = tables.runs_frame(store.runs().runs, {GOLDEN})
    exported = tables.csv_bytes(frame).decode()
    assert "'=HYPERLINK" in exported and "\n=HYPERLINK" not in exported and ",=HYPERLINK" not in exported
    assert any(b.label == "Download this page (CSV)" for b in at.get("download_button"))
