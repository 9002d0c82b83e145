"""The team status board (``core.status``, ``db.status``, its page and ``driftboard status``), the drift matrix
grouped by machine, the machine timeline's zero-ULP runs, event labels and settings sweeps, and the table
layouts that must wrap rather than cut (AppTest on a seeded SQLite database, no torch).

The seed (``tests/db_factory.py``): a golden box and its identical rerun; a laptop within tolerance that then
upgrades torch; a GPU node with the golden's CPU results plus CUDA cases; an environment-only machine; and a
machine that ran a settings sweep (three variants in one minute) after an earlier default capture.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from apptest_factory import open_page, private_copy, seed_sqlite
from click.testing import CliRunner
from db_factory import BASE_TIME, make_bundle
from runs_table import shown
from streamlit.testing.v1 import AppTest

from driftboard.cli import cli
from driftboard.core.audit import TimelineEvent, TimelinePoint, capture_groups
from driftboard.core.compare import Verdict, parse_policy
from driftboard.core.documents import schema_path
from driftboard.core.errors import PolicyError
from driftboard.core.processes import driftboard_command
from driftboard.core.status import MachineStatus, TeamStatus, status_json
from driftboard.dashboard import charts
from driftboard.db.session import ENV_VAR
from driftboard.db.status import team_status
from driftboard.db.store import Store, close_shared_stores

GOLDEN = "m0000-r00000-default"
RERUN = "m0000-r00001-default"
LAPTOP, UPGRADED = "m0001-r00000-default", "m0001-r00001-default"
IMPORTED = "m0003-r00000-default"
SWEEP_DEFAULT = "m0006-r00002-default"
SWEEP_START = BASE_TIME + timedelta(days=3)


@cache
def seed_bundles() -> tuple[bytes, ...]:
    sweep = [make_bundle(6, 2, label="sweep", variant=v, tags=(f"variant:{v}",), threads=8 if v == "threads-1" else 16,
                         created_at=SWEEP_START + timedelta(seconds=10 * i),
                         drift={"linear_1024": 1} if v != "default" else None)
             for i, v in enumerate(("default", "threads-1", "onednn-off"))]
    return (
        make_bundle(0, 0, label="golden box"),
        make_bundle(0, 1, label="golden box rerun"),
        make_bundle(1, 0, label="laptop", drift={"lstm_2layer": 2}),
        make_bundle(1, 1, label="laptop after upgrade", torch_version="2.6.0", drift={"lstm_2layer": 3}),
        make_bundle(3, 0, label="imported env", imported=True),
        make_bundle(6, 0, label="sweep box before", torch_version="2.5.0"),
        *sweep,
    )


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    return seed_sqlite(tmp_path_factory.mktemp("status"), seed_bundles(), GOLDEN)


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch) -> Iterator[str]:
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def board(url: str, **options) -> TeamStatus:
    with Store(url) as store:
        return team_status(store, **options)


# ---------------------------------------------------------------- 1. the status board: library


def test_team_status_one_row_per_machine_worst_first(db_url):
    status = board(db_url)
    by_key = {m.run_id: m for m in status.machines}
    assert [m.run_id for m in status.machines][0] == UPGRADED  # within tolerance: the worst verdict here
    assert set(by_key) == {RERUN, UPGRADED, IMPORTED, SWEEP_DEFAULT}
    assert by_key[RERUN].worst is Verdict.IDENTICAL and by_key[RERUN].changes_text == "no numerics-relevant change"
    laptop = by_key[UPGRADED]
    assert laptop.worst is Verdict.WITHIN_TOLERANCE and laptop.previous_run_id == LAPTOP
    assert "torch 2.5.1 → 2.6.0" in laptop.changes and laptop.ulp_max and laptop.ulp_max >= 1
    assert by_key[IMPORTED].state == "environment only" and by_key[IMPORTED].worst is None
    assert status.machines[-1].run_id == IMPORTED  # not judged: listed last
    sweep = by_key[SWEEP_DEFAULT]  # the sweep's default variant stands for the machine, not its newest variant
    assert sweep.worst is Verdict.IDENTICAL and sweep.previous_run_id == "m0006-r00000-default"
    assert sweep.changes[0] == "torch 2.5.0 → 2.5.1"  # against the capture before, not against its own variants
    assert not any("threads" in c for c in sweep.changes)
    assert status.summary == "4 machines: 2 identical, 1 within tolerance, 1 environment only"
    assert not status.agree


def test_team_status_policy_decides_and_bad_policy_raises(db_url):
    assert board(db_url, policy="bitwise").summary == "4 machines: 2 identical, 1 drift, 1 environment only"
    with pytest.raises(PolicyError):
        board(db_url, policy="ulp:nope")


def test_team_status_json_matches_its_schema(db_url):
    schema = json.loads(schema_path("driftboard.status").read_text(encoding="utf-8"))
    doc = status_json(board(db_url))
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["format"] == "driftboard.status" and doc["machines"][0]["worst"] == "within tolerance"


def test_pure_status_orders_and_counts_without_a_database():
    rows = (MachineStatus("a", "ka", "r1", "2026-01-01T00:00:00+00:00", worst=Verdict.IDENTICAL),
            MachineStatus("b", "kb", "r2", "2026-01-01T00:00:00+00:00", imported=True),
            MachineStatus("c", "kc", "r3", "2026-01-01T00:00:00+00:00", worst=Verdict.DRIFT),
            MachineStatus("d", "kd", "r4", "2026-01-01T00:00:00+00:00", is_golden=True))
    status = TeamStatus("default", parse_policy("default"), rows)
    assert [m.machine for m in status.machines] == ["c", "a", "d", "b"]
    assert status.summary == "4 machines: 2 identical, 1 drift, 1 environment only"
    assert TeamStatus("default", parse_policy("default"), ()).summary.startswith("No machines")


# ---------------------------------------------------------------- 1. the status board: CLI and page


def test_cli_status_prints_the_summary_and_json(db_url):
    result = CliRunner().invoke(cli, ["status", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "4 machines: 2 identical, 1 within tolerance, 1 environment only" in result.output
    assert "torch 2.5.1 → 2.6.0" in result.output and "environment only" in result.output
    doc = json.loads(CliRunner().invoke(cli, ["status", "--db", db_url, "--json"]).output)
    assert doc["format"] == "driftboard.status" and len(doc["machines"]) == 4


def test_cli_status_bad_policy_is_one_line_exit_2(db_url):
    done = subprocess.run([*driftboard_command(), "status", "--db", db_url, "--policy", "nope"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "invalid policy" in done.stderr


def test_status_is_the_first_page_with_summary_and_run_links(db_url):
    at = open_page()
    assert at.title[0].value == "Team status"
    assert any("4 machines: 2 identical, 1 within tolerance, 1 environment only" in m.value.replace("\\", "")
               for m in at.markdown)
    raw = next(df.value for df in at.dataframe if "latest run" in df.value.columns)
    assert raw["latest run"].iloc[0] == f"run?run={UPGRADED}"  # a link to the run page
    table = shown(raw)
    assert table["latest run"].tolist()[0] == UPGRADED
    assert "torch 2.5.1 → 2.6.0" in table["changed since the previous run"].iloc[0]
    assert table.set_index("latest run").loc[IMPORTED, "status"] == "environment only"
    at.switch_page("app_pages/runs.py").run()
    assert not at.exception and at.title[0].value == "Runs"


def test_status_page_on_an_empty_database_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{tmp_path / 'empty.sqlite'}")
    at = open_page()
    assert not at.error and at.info
    close_shared_stores()


# ---------------------------------------------------------------- 2. the drift matrix: machines and magnitudes


def figure(at: AppTest, index: int = 0):  # type: ignore[no-untyped-def]
    """The chart as the browser gets it, read back into a Plotly figure (numpy arrays decoded)."""
    import plotly.io

    return plotly.io.from_json(at.get("plotly_chart")[index].proto.spec)


def typed_array(value) -> np.ndarray:  # type: ignore[no-untyped-def]
    """A numpy array Plotly sent as a typed array (``{"dtype", "bdata", "shape"}``), or a plain list."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",")]
        return flat.reshape(shape)
    return np.asarray(value, dtype=float)


def test_matrix_groups_runs_by_machine_and_shades_by_ulp(db_url):
    at = open_page("matrix")
    fig = figure(at)
    heat, magnitude, picker = fig.data
    assert magnitude.name == "max ULP" and magnitude.type == "heatmap" and picker.type == "scatter"
    bold = [t for t in fig.layout.yaxis.ticktext if t.startswith("<b>")]
    assert any("host-0001" in t for t in bold) and any("host-0006" in t for t in bold)
    runs = list(fig.layout.meta["run_ids"])
    hosts = [r.split("-")[0] for r in runs]
    assert hosts == sorted(hosts, key=hosts.index)  # each machine's runs adjacent
    assert [r for r in runs if r.startswith("m0001")] == [UPGRADED, LAPTOP]  # newest first within a machine
    z = typed_array(magnitude.z)
    assert np.nanmax(z[runs.index(RERUN)]) == 0  # identical: the bottom of the scale
    assert np.nanmax(z[runs.index(UPGRADED)]) > 0
    assert fig.layout.shapes, "a rule between machines"
    at.session_state["drift_matrix"] = {"selection": {"points": [
        {"x": 3, "y": 0, "customdata": [LAPTOP, "lstm_2layer/cpu/float32"], "curve_number": 2}]}}
    at.run()
    assert not at.exception and at.title[0].value == "Compare runs"
    assert at.query_params == {"baseline": GOLDEN, "candidate": LAPTOP}


def test_drift_matrix_chart_magnitudes_are_log_ulps_and_checked():
    fig = charts.drift_matrix(["a", "b"], ["c1", "c2"], [[Verdict.IDENTICAL, Verdict.DRIFT], [Verdict.ERROR, None]],
                              run_ids=["r1", "r2"], magnitude_grid=[[0, 999], [None, None]],
                              row_groups=["<b>m</b>", "<b>m</b>"])
    heat, magnitude, _ = fig.data
    z = np.asarray(magnitude.z, dtype=float)
    assert z[0, 0] == 0 and z[0, 1] == pytest.approx(3.0) and np.isnan(z[1, 0])
    assert "1,000" in list(magnitude.colorbar.ticktext)
    assert list(fig.layout.yaxis.ticktext) == ["<b>&lt;b&gt;m&lt;/b&gt;</b> · a", "b"]  # escaped, named once
    with pytest.raises(ValueError):
        charts.drift_matrix(["a"], ["c"], [[Verdict.DRIFT]], magnitude_grid=[[1, 2]])


# ---------------------------------------------------------------- 3. the machine timeline


def point(run_id: str, day: int, ulp: int | None, **kw) -> TimelinePoint:  # type: ignore[no-untyped-def]
    worst = None if ulp is None else (Verdict.IDENTICAL if ulp == 0 else Verdict.DRIFT)
    return TimelinePoint(run_id, f"2026-01-{day:02d}T09:00:00+00:00", compared=18, worst=worst, ulp_max=ulp,
                         drifted=0 if not ulp else 3, **kw)


def test_timeline_draws_zero_ulp_runs_on_an_identical_band():
    fig = charts.machine_timeline([point("r1", 1, 0), point("r2", 2, 512), point("r3", 3, 4)], y="ulp_max")
    ys = list(fig.data[0].y)
    assert len(ys) == 3 and all(np.isfinite(ys)), "every run is drawn, the 0-ULP one too"
    assert fig.layout.yaxis.type == "log" and ys[0] == charts.ZERO_ULP_AT < 1
    assert fig.layout.yaxis.ticktext[0] == "0 (identical)"
    assert fig.layout.yaxis.range[0] < np.log10(charts.ZERO_ULP_AT)
    assert "3 runs" in fig.layout.title.text


def test_close_environment_changes_share_one_label_with_the_text_in_hover():
    points = [point(f"r{d}", d, 1) for d in (1, 10, 11, 12, 28)]
    events = [TimelineEvent(a.run_id, b.run_id, a.captured_at, b.captured_at, (f"torch 2.{i} → 2.{i + 1}",
                                                                            "a very long change " * 5))
              for i, (a, b) in enumerate(zip(points, points[1:], strict=False))]
    fig = charts.machine_timeline(points, events[1:3] + events[:1])
    assert len(fig.layout.shapes) == 3  # one line per change
    labels = [a.text for a in fig.layout.annotations]
    assert "2 environment changes" in labels and len(labels) == 2
    assert all(len(t) <= 50 for t in labels)
    assert any("torch 2.1 → 2.2" in (a.hovertext or "") and "torch 2.2 → 2.3" in (a.hovertext or "")
               for a in fig.layout.annotations)


def test_a_settings_sweep_is_one_capture_not_environment_changes(db_url):
    with Store(db_url) as store:
        history = store.machine_history("host-0006")
    groups = capture_groups(history)  # type: ignore[arg-type]
    assert [len(g) for g in groups] == [1, 3]
    at = open_page("machines", machine="host-0006")
    events = shown(next(df.value for df in at.dataframe if "what changed" in df.value.columns))
    assert len(events) == 1 and "torch 2.5.0 → 2.5.1" in events["what changed"].iloc[0]
    assert "threads" not in events["what changed"].iloc[0]
    fig = figure(at)
    xs = list(fig.data[0].x)
    assert len(xs) == 4 and len(set(xs[1:])) == 1  # the sweep's three variants at one time
    assert "diamond" in list(fig.data[0].marker.symbol)


# ---------------------------------------------------------------- 4. long text is never cut at 1440 px


def column_widths(at: AppTest, column: str) -> dict:
    """The width the page gives ``column`` in its first table holding it (Streamlit's column config)."""
    for df in at.dataframe:
        if column in df.value.columns:
            config = json.loads(df.proto.columns or "{}")
            return config.get(column, {})
    raise AssertionError(f"no table with {column!r}")


def test_compare_gives_long_text_room_and_writes_it_out_in_full(db_url):
    at = open_page("compare", baseline=GOLDEN, candidate=UPGRADED)
    assert column_widths(at, "what was found").get("width") == "large"
    labels = [e.label for e in at.expander]
    assert any("What was found" in label for label in labels)
    found = next(e for e in at.expander if "What was found" in e.label)
    text = " ".join(m.value.replace("\\", "") for m in found.markdown)
    assert "lstm_2layer/cpu/float32" in text and "within tolerance" in text
    if any("Likely causes" in label for label in labels):
        assert column_widths(at, "evidence").get("width") == "large"


def test_machines_page_keeps_before_and_after_whole(db_url):
    at = open_page("machines", machine="host-0001")
    assert column_widths(at, "before").get("width") == 300 and column_widths(at, "after").get("width") == 300
    detail = next(e for e in at.expander if "in full" in e.label)
    text = " ".join(m.value.replace("\\", "") for m in detail.markdown)
    assert "torch 2.5.1 → 2.6.0" in text and "Before: " in text and "After: " in text and "cases differ" in text
