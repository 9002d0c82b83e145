"""Every dashboard page under ``streamlit.testing.v1.AppTest`` against a seeded SQLite database.

The seed (``tests/db_factory.py``, no torch): a golden and its rerun, a laptop
that drifts in LSTM and linear cases and then upgrades torch, a run whose
label, tags, note and hostname are hostile markup, an environment-only run,
a run with a failed case, and a GPU node whose CUDA cases the CPU golden
lacks. Each test works on its own copy of that database.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from apptest_factory import APP, private_copy, seed_sqlite
from apptest_factory import open_page as _open
from db_factory import fingerprint, make_bundle
from runs_table import shown, tick
from streamlit.testing.v1 import AppTest

from driftboard.core.bundle import read_bundle
from driftboard.core.errors import BundleError, NotFoundError
from driftboard.dashboard.uploads import outcome_text, server_address, team_commands
from driftboard.db.push import push_files
from driftboard.db.session import ENV_VAR
from driftboard.db.store import Store

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("status", "runs", "upload", "compare", "matrix", "machines", "write_log")

GOLDEN = "m0000-r00000-default"
LAPTOP = "m0001-r00000-default"
UPGRADED = "m0001-r00001-default"
HOSTILE_RUN = "m0002-r00000-default"
IMPORTED = "m0003-r00000-default"
BROKEN = "m0004-r00000-default"
GPU_NODE = "m0005-r00000-default"
HOSTILE = "<script>alert(1)</script> **bold**"
HOSTILE_HOST = "<img src=x onerror=alert(1)>**host**"


def _hostile_fp() -> dict:
    fp = fingerprint(2)
    fp["identity"]["hostname"] = HOSTILE_HOST
    return fp


@cache
def seed_bundles() -> tuple[bytes, ...]:
    return (
        make_bundle(0, 0, label="golden box"),
        make_bundle(0, 1, label="golden box rerun"),
        make_bundle(1, 0, label="laptop", drift={"lstm_2layer": 2, "linear_1024": 1}),
        make_bundle(1, 1, label="laptop after upgrade", torch_version="2.6.0", drift={"lstm_2layer": 3}),
        make_bundle(2, 0, label=HOSTILE, tags=("<b>x</b>", "**t**"), note="**note** <img src=x onerror=alert(1)>",
                    fp=_hostile_fp(), drift={"mlp_kaiming": 1}),
        make_bundle(3, 0, label="imported env", imported=True),
        make_bundle(4, 0, label="broken", error_case="linear_10_5"),
        make_bundle(5, 0, label="gpu node", devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15",
                    gpu="NVIDIA A100-SXM4-80GB"),
    )


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    return seed_sqlite(tmp_path_factory.mktemp("dashboard"), seed_bundles(), GOLDEN, reason="reference **box**")


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch) -> Iterator[str]:
    """A private copy of the seeded database, named to the dashboard through the environment."""
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def open_page(page: str = "runs", **params: str | list[str]) -> AppTest:
    """``page`` (the Runs page by default); the app opens on the team status board."""
    return _open(None if page == "status" and not params else page, **params)


def texts(at: AppTest) -> list[str]:
    """Every string Streamlit renders as Markdown on the page."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error", "toast")
    return [str(e.value) for kind in kinds for e in at.get(kind)]


def said(at: AppTest, phrase: str) -> bool:
    """Whether the page shows ``phrase`` (Markdown escapes removed)."""
    return any(phrase in text.replace("\\", "") for text in texts(at))


def frames(at: AppTest) -> list:
    return [df.value for df in at.dataframe]


def frame_with(at: AppTest, column: str):
    """The first table with ``column``, as shown (run page addresses read as the run ids the links show)."""
    found = [f for f in frames(at) if column in f.columns]
    assert found, f"no table with a {column!r} column"
    return shown(found[0])


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


# ---------------------------------------------------------------- every page


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_error(db_url, page):
    at = open_page(page)
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value


def test_runs_page_lists_runs_newest_first_with_verdicts(db_url):
    at = open_page()
    table = frame_with(at, "verdict")
    assert len(table) == len(seed_bundles())
    assert list(table.columns[:5]) == ["verdict", "run id", "captured", "machine", "label"]
    for column in ("torch", "CUDA", "driver", "GPU", "CPU capability", "variant"):
        assert column in table.columns
    by_id = table.set_index("run id")
    assert by_id.loc[GOLDEN, "verdict"] == "★ golden"
    assert by_id.loc[LAPTOP, "verdict"] == "✗ drift" or "tolerance" in by_id.loc[LAPTOP, "verdict"]
    assert by_id.loc[IMPORTED, "verdict"] == "environment only"
    assert by_id.loc[BROKEN, "verdict"] == "‼ error"
    assert by_id.loc[GPU_NODE, "CUDA"] == "12.4"
    captured = list(table["captured"])
    assert captured == sorted(captured, reverse=True)


def test_runs_filters_narrow_the_table(db_url):
    at = open_page()
    at.text_input(key="f_label").input("laptop").run()
    assert list(frame_with(at, "verdict")["run id"]) == [UPGRADED, LAPTOP]
    at.text_input(key="f_label").input("").run()
    at.text_input(key="f_torch").input("2.6").run()
    assert list(frame_with(at, "verdict")["run id"]) == [UPGRADED]
    at.text_input(key="f_torch").input("").run()
    at.text_input(key="f_gpu").input("A100").run()
    assert list(frame_with(at, "verdict")["run id"]) == [GPU_NODE]
    at.text_input(key="f_gpu").input("").run()
    at.selectbox(key="f_verdict").set_value("error").run()
    assert list(frame_with(at, "verdict")["run id"]) == [BROKEN]
    at.text_input(key="f_label").input("no such run").run()
    assert not at.exception
    assert said(at, "No runs match")


def test_runs_page_pages_through_many_runs(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'many.sqlite'}"
    with Store(url) as store:
        for seq in range(60):
            store.ingest(make_bundle(seq % 3, seq, label=f"run {seq}"))
    monkeypatch.setenv(ENV_VAR, url)
    at = open_page()
    assert len(frame_with(at, "verdict")) == 50
    at.selectbox(key="runs_per_page").set_value(25).run()
    first = list(frame_with(at, "verdict")["label"])
    assert len(first) == 25 and first[0] == "run 59"
    at.number_input(key="runs_page").set_value(3).run()
    last = list(frame_with(at, "verdict")["label"])
    assert last == [f"run {i}" for i in range(9, -1, -1)]
    assert said(at, "page 3 of 3")
    at.text_input(key="f_label").input("run 5").run()  # 11 runs match: back to page 1 of 1
    assert not at.exception
    assert at.number_input(key="runs_page").value == 1
    assert len(frame_with(at, "verdict")) == 11


# ---------------------------------------------------------------- goldens and deletion


def test_mark_a_run_golden_with_a_reason_then_clear_it(db_url):
    at = tick(open_page(), LAPTOP)
    at.text_input(key="golden_reason").input("after the **driver** upgrade")
    at.button(key="make_golden").click().run()
    assert not at.exception
    assert said(at, "is now the golden")
    with Store(db_url) as store:
        golden = store.golden_for(GOLDEN)
        assert golden is not None and golden.run_id == LAPTOP
        assert golden.reason == "after the **driver** upgrade"
    assert frame_with(at, "verdict").set_index("run id").loc[LAPTOP, "verdict"] == "★ golden"
    assert frame_with(at, "reason")["reason"].tolist() == ["after the **driver** upgrade"]  # shown as typed

    tick(at, LAPTOP)
    at.button(key="clear_golden").click().run()
    assert not at.exception
    with Store(db_url) as store:
        assert store.goldens() == ()


def test_an_environment_only_run_cannot_be_made_golden(db_url):
    at = tick(open_page(), IMPORTED)
    assert at.button(key="make_golden").disabled


def test_delete_needs_the_confirmation(db_url):
    at = tick(open_page(), BROKEN)
    assert at.button(key="delete_run").disabled
    at.checkbox(key="delete_confirm").check().run()
    assert not at.button(key="delete_run").disabled
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert said(at, f"Deleted run {BROKEN}")
    assert BROKEN not in list(frame_with(at, "verdict")["run id"])
    assert not [box for box in at.checkbox if box.key == "delete_confirm"]  # nothing stays ticked
    with Store(db_url) as store, pytest.raises(NotFoundError):
        store.run(BROKEN)


def test_deleting_the_golden_is_refused_with_the_reason(db_url):
    at = tick(open_page(), GOLDEN)
    at.checkbox(key="delete_confirm").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert said(at, "clear that golden before deleting")
    with Store(db_url) as store:
        assert store.run(GOLDEN).run_id == GOLDEN


# ---------------------------------------------------------------- upload


def test_upload_stores_good_files_reports_duplicates_and_refuses_bad_ones(db_url):
    good = make_bundle(7, 0, label="new box")
    other = make_bundle(7, 1, label="new box again", drift={"lstm_2layer": 1})
    truncated = good[: len(good) // 2]
    with pytest.raises(BundleError) as bad_zip:
        read_bundle(b"not a bundle at all")
    with pytest.raises(BundleError) as cut:
        read_bundle(truncated)
    at = open_page("upload")
    assert at.get("file_uploader")
    at.file_uploader(key="upload_files").set_value([
        ("new.driftboard", good, "application/octet-stream"),
        ("garbage.driftboard", b"not a bundle at all", "application/octet-stream"),
        ("copy-of-new.driftboard", good, "application/octet-stream"),
        ("cut.driftboard", truncated, "application/octet-stream"),
        ("other.driftboard", other, "application/octet-stream"),
        ("golden-again.driftboard", seed_bundles()[0], "application/octet-stream"),
    ]).run()
    assert not at.exception
    table = frame_with(at, "result")
    assert table["result"].tolist() == ["stored", "refused", "already present", "refused", "stored",
                                        "already present"]
    detail = dict(zip(table["file"], table["detail"]))
    assert detail["garbage.driftboard"] == str(bad_zip.value)  # the exact one-line reason
    assert detail["cut.driftboard"] == str(cut.value)
    assert detail["golden-again.driftboard"] == f"already stored as run {GOLDEN}: nothing written"
    assert len(at.success) == 2 and len(at.error) == 2 and len(at.info) == 2
    with Store(db_url) as store:
        assert store.stats().runs == len(seed_bundles()) + 2
        assert store.run("m0007-r00000-default").label == "new box"

    at.run()  # a rerun keeps the results and ingests nothing twice
    assert frame_with(at, "result")["result"].tolist()[0] == "stored"
    with Store(db_url) as store:
        assert store.stats().runs == len(seed_bundles()) + 2


def test_upload_page_shows_the_team_commands(db_url):
    at = open_page("upload")
    code = [c.value for c in at.code]
    assert code[0].startswith("driftboard capture")
    assert code[1].startswith("driftboard push") and db_url in code[1]


def test_uploads_are_pushed_one_file_at_a_time(db_url):
    with Store(db_url) as store:
        before = store.stats()
        outcomes = push_files(store, [("a", make_bundle(8, 0)), ("b", b"PK\x03\x04junk"), ("c", make_bundle(8, 0))])
        assert [o.status for o in outcomes] == ["stored", "refused", "already present"]
        assert outcomes[0].run_id == outcomes[2].run_id == "m0008-r00000-default"
        assert outcome_text(outcomes[1]).startswith("invalid bundle: ")
        assert re.fullmatch(r"stored as run m0008-r00000-default: \d+ cases, \d+ new arrays \([\d.]+\u00a0(B|KiB|MiB)\)",
                            outcome_text(outcomes[0]))
        assert store.stats().runs == before.runs + 1  # the refused file left nothing behind
        assert store.stats().arrays >= before.arrays
        [bug] = push_files(_Exploding(), [("x", b"")])  # not a DriftboardError: reported, not raised
        assert bug.status == "refused" and "driftboard bug" in bug.error and not bug.retry


class _Exploding:
    def ingest(self, *args, **kwargs):
        raise RuntimeError("boom")


def test_team_commands_hide_passwords():
    commands = team_commands("postgresql+psycopg://me:s3cret@db.example.com/driftboard", None)
    assert "s3cret" not in commands.push_db and "***" in commands.push_db
    assert commands.capture.startswith("driftboard capture") and commands.push_server is None


def test_team_commands_push_over_http_to_the_page_s_server():
    commands = team_commands("sqlite:////srv/team.sqlite", "https://drift.example.com/board")
    assert commands.push_server == ("driftboard push driftboard-runs/*.driftboard --server "
                                    "https://drift.example.com/board --token-file ~/.config/driftboard/token")
    assert commands.push_db.endswith("--db sqlite:////srv/team.sqlite")


@pytest.mark.parametrize(("page", "base", "expected"), [
    ("http://localhost:8501/upload", "", "http://localhost:8501"),
    ("https://drift.example.com/board/upload?x=1", "/board/", "https://drift.example.com/board"),
    ("https://[::1]:8443/", "", "https://[::1]:8443"),
    (None, "", None),
    ("", "", None),
    ("file:///etc/passwd", "", None),
    ("https://user:pw@drift.example.com/", "", None),  # never repeat credentials into a command
])
def test_server_address_from_the_page_url(page, base, expected):
    assert server_address(page, base) == expected


# ---------------------------------------------------------------- compare


def test_compare_defaults_to_the_golden_and_shows_verdicts_env_and_charts(db_url):
    at = open_page("compare", candidate=UPGRADED)
    assert at.selectbox(key="compare_baseline").value == GOLDEN
    assert at.multiselect(key="compare_candidates").value == [UPGRADED]
    verdicts = frame_with(at, "max ULP")
    assert {"verdict", "case", "device", "dtype", "mismatched", "max ULP", "max abs", "max rel"} <= set(verdicts.columns)
    assert verdicts["verdict"].iloc[0] in ("✗ drift", "≈ within tolerance")  # most severe first, with its word
    env = frame_with(at, "can change numbers")
    assert any("2.5.1" in v and "2.6.0" in w for v, w in zip(env["baseline"], env["candidate"]))
    assert charts(at), "the drifting case selected by default has charts"
    assert at.get("download_button")
    assert at.query_params == {"baseline": GOLDEN, "candidate": UPGRADED}


def test_compare_reads_query_params_and_charts_the_asked_case(db_url):
    at = open_page("compare", baseline=GOLDEN, candidate=[LAPTOP, UPGRADED], case="lstm_2layer/cpu/float32")
    assert at.multiselect(key="compare_candidates").value == [LAPTOP, UPGRADED]
    assert at.selectbox(key="compare_case_0").value == "lstm_2layer/cpu/float32"
    assert len(at.tabs) == 2
    # ULP histogram, scatter, heatmap (3-D output seen as timesteps × rest), error by timestep, per candidate
    assert len(charts(at)) >= 8
    at.selectbox(key="compare_case_0").set_value("linear_10_5/cpu/float32").run()
    assert not at.exception
    assert said(at, "same bits on both machines")


def test_compare_explains_one_sided_and_failed_cases(db_url):
    at = open_page("compare", baseline=GOLDEN, candidate=GPU_NODE, case="lstm_2layer/cuda/float16")
    assert said(at, "only the candidate ran this case")
    assert not charts(at)
    at = open_page("compare", baseline=GOLDEN, candidate=BROKEN, case="linear_10_5/cpu/float32")
    assert said(at, "cannot be compared element by element")
    assert "‼ error" in frame_with(at, "max ULP")["verdict"].tolist()


def test_compare_an_environment_only_run_shows_the_environment_only(db_url):
    at = open_page("compare", baseline=GOLDEN, candidate=IMPORTED)
    assert said(at, "environment-only run")
    assert not charts(at)
    assert not [f for f in frames(at) if "max ULP" in f.columns]
    assert at.get("expander") or [f for f in frames(at) if "can change numbers" in f.columns]


def test_compare_unknown_run_in_the_address_is_reported(db_url):
    at = open_page("compare", baseline="no-such-run", candidate=LAPTOP)
    assert said(at, "Not in the database")
    assert at.selectbox(key="compare_baseline").value == GOLDEN


def test_compare_a_bad_policy_is_one_error_line(db_url):
    at = open_page("compare", candidate=LAPTOP)
    at.text_input(key="compare_policy").input("ulp:many").run()
    assert not at.exception
    assert len(at.error) == 1


# ---------------------------------------------------------------- drift matrix


def test_matrix_shows_runs_by_cases_and_a_click_opens_compare(db_url):
    at = open_page("matrix")
    assert at.selectbox(key="matrix_baseline").value == GOLDEN
    assert len(charts(at)) == 1
    at.session_state["drift_matrix"] = {"selection": {"points": [
        {"x": 3, "y": 1, "customdata": [LAPTOP, "lstm_2layer/cpu/float32"], "curve_number": 1}]}}
    at.run()
    assert not at.exception
    assert at.title[0].value == "Compare runs"
    assert at.query_params == {"baseline": GOLDEN, "candidate": LAPTOP}
    assert at.selectbox(key="compare_case_0").value == "lstm_2layer/cpu/float32"


def test_matrix_filters_by_machine(db_url):
    at = open_page("matrix")
    at.text_input(key="matrix_machine").input("host-0001").run()
    assert not at.exception and len(charts(at)) == 1
    at.text_input(key="matrix_machine").input("nobody").run()
    assert not at.exception and not charts(at)
    assert said(at, "No other runs")


# ---------------------------------------------------------------- machines


def test_machines_page_marks_environment_changes_with_drift_before_and_after(db_url):
    at = open_page("machines", machine="host-0001")
    assert at.selectbox(key="machine_pick").value.endswith(fingerprint(1)["identity"]["machine_id"][-12:])
    assert len(charts(at)) == 1
    events = frame_with(at, "what changed")
    assert len(events) == 1
    assert "2.5.1 → 2.6.0" in events["what changed"].iloc[0]
    assert events["run before"].iloc[0] == LAPTOP and events["run after"].iloc[0] == UPGRADED
    assert "cases differ" in events["before"].iloc[0] and "cases differ" in events["after"].iloc[0]
    runs = frame_with(at, "cases differing")
    assert runs["run id"].tolist() == [UPGRADED, LAPTOP]
    assert at.get("download_button")


def test_machines_page_of_an_environment_only_machine_has_no_empty_chart(db_url):
    at = open_page("machines", machine="host-0003")
    assert not charts(at)
    assert said(at, "no drift to chart")


# ---------------------------------------------------------------- hostile text and empty databases


def test_hostile_user_text_is_shown_as_text_never_rendered(db_url):
    pages = [open_page(), open_page("compare", baseline=GOLDEN, candidate=HOSTILE_RUN),
             open_page("machines", machine=HOSTILE_HOST), open_page("matrix")]
    runs = frame_with(pages[0], "verdict").set_index("run id")
    assert runs.loc[HOSTILE_RUN, "label"] == HOSTILE  # st.dataframe draws cells as plain text
    assert runs.loc[HOSTILE_RUN, "machine"] == HOSTILE_HOST
    assert runs.loc[HOSTILE_RUN, "tags"] == "<b>x</b>, **t**"
    compare_runs = frame_with(pages[1], "candidate").set_index("")
    assert compare_runs.loc["label", "candidate"] == HOSTILE
    for at in pages:
        for text in texts(at):
            assert not re.search(r"(?<!\\)</?(script|img|b>)", text), text  # every "<" escaped as "\<"
            for raw in ("**bold**", "**host**", "**t**", "**note**"):
                assert raw not in text, (raw, text)
    # the Compare heading shows the label escaped, so Markdown prints it as typed
    assert any("\\<script\\>" in t for t in texts(pages[1]))
    tick(pages[0], HOSTILE_RUN)
    assert any("\\<script\\>alert" in t for t in texts(pages[0]))  # the ticked run is named, escaped
    assert "Note: **note** <img src=x onerror=alert(1)>" in [t.value for t in pages[0].text]


@pytest.mark.parametrize("page", PAGES)
def test_an_empty_database_explains_what_to_do(tmp_path, monkeypatch, page):
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{tmp_path / 'empty.sqlite'}")
    at = open_page(page)
    assert not at.error
    if page != "upload":
        assert at.info, "an empty page says what to do"


def test_an_out_of_date_database_is_one_error_line(tmp_path, monkeypatch):
    import sqlite3

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{path}")
    at = open_page()
    assert len(at.error) == 1 and "driftboard db upgrade" in at.error[0].value


# ---------------------------------------------------------------- no torch in the dashboard process


_NO_TORCH = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.run()
errors = [e.value for e in at.exception]
for page, params in [("upload", {}), ("compare", {"case": "lstm_2layer/cpu/float32"}), ("matrix", {}),
                     ("machines", {"machine": "host-0001"}), ("runs", {})]:
    at.query_params.update(params)
    at.switch_page(f"app_pages/{page}.py").run()
    errors += [e.value for e in at.exception]
print(json.dumps({"torch": "torch" in sys.modules, "errors": errors,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "core"))}))
"""


def test_the_dashboard_never_imports_torch(db_url):
    out = subprocess.run([sys.executable, "-c", _NO_TORCH, str(APP)], capture_output=True, text=True, timeout=300,
                         cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["torch"] is False, [m for m in result["loaded"] if m.startswith("torch")]
    assert "driftboard.core.capture" not in result["loaded"] and "driftboard.core.suite" not in result["loaded"]
