"""The float64 truth on the dashboard and in the machine audit: Compare page, Machines page, HTML and JSON audit.

A seeded SQLite database (no torch): a golden, a laptop as close to the truth
as the golden, and the same laptop after a torch upgrade that moved three
cases further from the truth.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from apptest_factory import open_page, private_copy, seed_sqlite
from db_factory import make_run
from test_dashboard_pages import frame_with, said

from driftboard.core.audit import audit_json
from driftboard.core.bundle import bundle_bytes
from driftboard.core.run import TruthError
from driftboard.dashboard.html_report import machine_report_html
from driftboard.db.audit import audit_machine
from driftboard.db.store import Store

GOLDEN, LAPTOP, UPGRADED = "m0000-r00000-default", "m0001-r00000-default", "m0001-r00001-default"
MOVED = ("linear_1024", "lstm_2layer", "mlp_kaiming")


def seeded(machine: int, seq: int, further: tuple[str, ...] = (), **options) -> bytes:
    run, arrays = make_run(machine, seq, **options)
    cases = tuple(replace(c, truth=TruthError(1e-7, 2e-7, 3e-7 if c.case_id in further else 1e-7, 2, 0.01))
                  if c.dtype == "float32" else c for c in run.cases)
    return bundle_bytes(replace(run, cases=cases), arrays)


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    bundles = (seeded(0, 0), seeded(1, 0, drift={"lstm_2layer": 2}),
               seeded(1, 1, MOVED, torch_version="2.6.0", drift={"lstm_2layer": 3}))
    return seed_sqlite(tmp_path_factory.mktemp("truth_dashboard"), bundles, GOLDEN, reason="reference")


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def test_compare_page_shows_both_machines_error_against_the_truth(db_url: str) -> None:
    at = open_page("compare", baseline=LAPTOP, candidate=UPGRADED)
    assert said(at, "the candidate is further from the truth in 3 of 10 cases")
    truth = frame_with(at, "candidate vs baseline")
    assert truth["candidate vs baseline"].iloc[0] == "further from the truth (×3)"
    assert set(truth["case"].iloc[:3]) == set(MOVED)
    assert truth["baseline rel L2"].iloc[0] != truth["candidate rel L2"].iloc[0]


def test_machines_page_says_which_way_each_change_moved_the_machine(db_url: str) -> None:
    at = open_page("machines", machine="host-0001")
    events = frame_with(at, "what changed")
    assert events["float64 truth"].iloc[0] == "it moved the machine away from the float64 truth in 3 of 10 cases"


def test_the_audit_json_and_html_say_it_too(db_url: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from driftboard.core.documents import schema_path

    with Store(db_url) as store:
        audit = audit_machine(store, "host-0001")
    (event,) = audit.events
    assert event.truth() == ("away", "it moved the machine away from the float64 truth in 3 of 10 cases")
    doc = json.loads(json.dumps(audit_json(audit), allow_nan=False))
    jsonschema.Draft202012Validator(json.loads(schema_path("driftboard.audit").read_text())).validate(doc)
    assert doc["events"][0]["truth"]["direction"] == "away"
    assert "Float64 truth: it moved the machine away from the float64 truth in 3 of 10 cases." in \
        machine_report_html(audit)
