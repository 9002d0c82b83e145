"""The Runs page's ticked rows and their actions, and the run page, under AppTest on a seeded SQLite database.

The seed is ``test_dashboard_pages``'s (a golden and its rerun, a laptop that drifts then upgrades torch, a
hostile run, an environment-only run, a run with a failed case, a GPU node) plus a GPU node whose cuDNN is
91002 (9.10.2). Each test works on its own copy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from apptest_factory import private_copy
from db_factory import fingerprint, make_bundle
from runs_table import TABLE, runs_table, shown, tick
from streamlit.testing.v1 import AppTest
from test_dashboard_pages import (
    BROKEN,
    GOLDEN,
    GPU_NODE,
    HOSTILE_RUN,
    IMPORTED,
    LAPTOP,
    UPGRADED,
    frame_with,
    open_page,
    said,
    seed_bundles,
    texts,
)

from driftboard.core.errors import NotFoundError
from driftboard.dashboard import auth, state, ui
from driftboard.dashboard.auth import hash_token
from driftboard.dashboard.fingerprint_groups import GROUPS, fingerprint_groups
from driftboard.dashboard.format import plural
from driftboard.db.session import ENV_VAR
from driftboard.db.store import Store

CUDNN_NODE = "m0006-r00000-default"
RERUN = "m0000-r00001-default"


def _cudnn_fp() -> dict:
    fp = fingerprint(6, cuda="12.8", driver="570.86.10", gpu="NVIDIA H100 80GB HBM3")
    fp["gpu"]["cudnn"] = 91002
    fp["numerics"]["deterministic_algorithms"] = True
    fp["env"]["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    return fp


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "seed.sqlite"
    with Store(f"sqlite:///{path}") as store:
        for data in seed_bundles():
            store.ingest(data, uploader="seed")
        store.ingest(make_bundle(6, 0, label="cudnn node", devices=("cpu", "cuda"), fp=_cudnn_fp()), uploader="seed")
        store.set_golden(GOLDEN, set_by="seed", reason="reference box")
    return path


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    yield from private_copy(seeded_file, tmp_path, monkeypatch)


def keys(at: AppTest) -> set[str]:
    kinds = ("button", "text_input", "checkbox", "selectbox", "number_input")
    return {e.key for kind in kinds for e in at.get(kind) if e.key}


def links(at: AppTest) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """Each page link's label (as shown: Markdown escapes removed) -> (target page, query parameters)."""
    return {link.proto.label.replace("\\", ""): (link.proto.page, parse_qs(link.proto.query_string))
            for link in at.get("page_link")}


def fingerprint_tab(at: AppTest, title: str):
    """The run page's fingerprint table of one group, indexed by dotted key."""
    [tab] = [t for t in at.tabs if t.label == title]
    return tab.dataframe[0].value.set_index("key")


def ticked_rows(at: AppTest) -> list[int]:
    return list(at.session_state[TABLE]["selection"]["rows"])


def stored_ids(url: str) -> set[str]:
    with Store(url) as store:
        return {r.run_id for r in store.runs(per_page=100).runs}


# ---------------------------------------------------------------- 1. a deletion acts on what was confirmed


def test_after_a_deletion_nothing_is_ticked_and_a_second_click_deletes_nothing(db_url):
    before = stored_ids(db_url)
    at = tick(open_page(), BROKEN)
    assert said(at, "Deletes 1 run:") and said(at, BROKEN)
    at.checkbox(key="delete_confirm").check().run()
    assert at.session_state["_runs_delete_ids"] == (BROKEN,)
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert said(at, f"Deleted run {BROKEN}")
    assert stored_ids(db_url) == before - {BROKEN}
    # nothing is shown as picked: no ticked row, no note, no links or buttons acting on "the" run
    assert ticked_rows(at) == [] and BROKEN not in list(runs_table(at)["run id"])
    assert said(at, "Tick runs to act on them")
    assert not {"delete_run", "delete_confirm", "make_golden", "clear_golden"} & keys(at)
    assert not [label for label in links(at) if label != "Upload runs"]
    # a second Delete cannot land on another run: the next run ticked is not confirmed, and its name is shown
    tick(at, LAPTOP)
    assert at.checkbox(key="delete_confirm").value is False and at.button(key="delete_run").disabled
    assert "_runs_delete_ids" not in at.session_state and said(at, "Deletes 1 run:")
    assert stored_ids(db_url) == before - {BROKEN}


def test_a_deletion_removes_the_runs_confirmed_not_the_runs_ticked_when_the_click_arrives(db_url):
    at = tick(open_page(), BROKEN)
    at.checkbox(key="delete_confirm").check().run()
    # the click comes with other rows ticked (a message the page has not drawn yet): the confirmation counts
    at.session_state[TABLE] = {"selection": {"rows": [list(runs_table(at)["run id"]).index(LAPTOP)], "columns": [],
                                             "cells": []}}
    at.button(key="delete_run").click().run()
    assert not at.exception
    ids = stored_ids(db_url)
    assert BROKEN not in ids and LAPTOP in ids
    assert ticked_rows(at) == []


def test_ticking_other_runs_after_confirming_asks_again(db_url):
    at = tick(open_page(), BROKEN)
    at.checkbox(key="delete_confirm").check().run()
    tick(at, BROKEN, LAPTOP)
    assert at.checkbox(key="delete_confirm").value is False and at.button(key="delete_run").disabled
    assert "_runs_delete_ids" not in at.session_state
    assert said(at, "Deletes 2 runs:")
    assert stored_ids(db_url) >= {BROKEN, LAPTOP}


def test_ticks_follow_their_runs_when_rows_move(db_url):
    at = tick(open_page(), LAPTOP, BROKEN)
    with Store(db_url) as store:  # someone uploads a newer run: every row moves down one
        store.ingest(make_bundle(9, 9, label="newest"))
    at.run()
    table = list(runs_table(at)["run id"])
    assert table[0] == "m0009-r00009-default"
    assert sorted(table[i] for i in ticked_rows(at)) == sorted([LAPTOP, BROKEN])
    assert said(at, "2 runs ticked")


# ---------------------------------------------------------------- 2. compare, golden, delete from the table


def test_compare_ticked_runs_takes_the_ticked_golden_as_baseline(db_url):
    at = tick(open_page(), UPGRADED, GOLDEN, LAPTOP)
    page, params = links(at)["Compare these 3 runs"]
    assert page == "compare"
    assert params == {"baseline": [GOLDEN], "candidate": [UPGRADED, LAPTOP]}
    assert said(at, "(the ticked golden)")
    compare = open_page("compare", baseline=params["baseline"][0], candidate=params["candidate"])
    assert compare.selectbox(key="compare_baseline").value == GOLDEN
    assert compare.multiselect(key="compare_candidates").value == [UPGRADED, LAPTOP]


def test_compare_ticked_runs_without_a_golden_takes_the_oldest(db_url):
    at = tick(open_page(), UPGRADED, LAPTOP, GPU_NODE)
    _, params = links(at)["Compare these 3 runs"]
    assert params == {"baseline": [LAPTOP], "candidate": [UPGRADED, GPU_NODE]}
    assert said(at, "the oldest ticked run, as no golden is ticked")


def test_one_ticked_run_links_to_its_page_and_to_the_golden(db_url):
    at = tick(open_page(), LAPTOP)
    found = links(at)
    assert found["Open the run page"] == ("run", {"run": [LAPTOP]})
    assert found["Compare with the golden"] == ("compare", {"baseline": [GOLDEN], "candidate": [LAPTOP]})
    assert found["Open in Compare"] == ("compare", {"candidate": [LAPTOP]})


def test_marking_a_golden_needs_exactly_one_ticked_run(db_url):
    at = tick(open_page(), LAPTOP, UPGRADED)
    assert not {"make_golden", "golden_reason"} & keys(at)
    assert said(at, "Tick exactly one run to make it the golden")
    tick(at, UPGRADED)
    at.text_input(key="golden_reason").input("after the upgrade")
    at.button(key="make_golden").click().run()
    assert said(at, f"Run {UPGRADED} is now the golden")
    with Store(db_url) as store:
        assert store.golden_for(LAPTOP).run_id == UPGRADED
    assert runs_table(at).set_index("run id").loc[UPGRADED, "verdict"] == "★ golden"
    assert "clear_golden" in keys(at)  # the run stays ticked: it can be cleared at once


def test_deleting_several_ticked_runs_names_them_first(db_url):
    at = tick(open_page(), BROKEN, HOSTILE_RUN)
    caption = next(t.replace("\\", "") for t in texts(at) if "Deletes 2 runs" in t)
    assert caption == f"Deletes 2 runs: {BROKEN}, {HOSTILE_RUN}."
    assert at.button(key="delete_run").label == "Delete 2 runs"
    at.checkbox(key="delete_confirm").check().run()
    at.button(key="delete_run").click().run()
    assert said(at, "Deleted 2 runs")
    assert not {BROKEN, HOSTILE_RUN} & stored_ids(db_url)


def test_a_refused_deletion_among_several_says_which_and_why(db_url):
    at = tick(open_page(), BROKEN, GOLDEN)
    at.checkbox(key="delete_confirm").check().run()
    at.button(key="delete_run").click().run()
    assert [w.value for w in at.warning]
    assert said(at, f"Deleted run {BROKEN}") and said(at, "clear that golden before deleting")
    ids = stored_ids(db_url)
    assert GOLDEN in ids and BROKEN not in ids


def test_find_a_run_by_id_prefix(db_url):
    at = open_page()
    at.text_input(key="runs_find").input("m0001-r00001").run()
    assert links(at)[f"Open run {UPGRADED}"] == ("run", {"run": [UPGRADED]})
    at.text_input(key="runs_find").input("m000").run()
    assert not at.exception and said(at, "m000")
    assert not [label for label in links(at) if label.startswith("Open run")]
    at.text_input(key="runs_find").input("nothing-like-it").run()
    assert not at.exception and not at.error


# ---------------------------------------------------------------- 2. each action needs its role


TOKENS = {"admin": "runs-admin-token", "uploader": "runs-uploader-token", "viewer": "runs-viewer-token"}


@pytest.fixture
def tokens(db_url, tmp_path, monkeypatch) -> None:
    lines = ['mode = "tokens"', "[tokens]"] + [f'{r}-member = {{ role = "{r}", hash = "{hash_token(t)}" }}'
                                                for r, t in TOKENS.items()]
    path = tmp_path / "auth.toml"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv(auth.ENV_VAR, str(path))


def unlock(at: AppTest, role: str) -> AppTest:
    at.text_input(key=ui.TOKEN_KEY).input(TOKENS[role])
    at.button(key="unlock").click().run()
    return at


@pytest.mark.parametrize("role", [None, "viewer", "uploader"])
def test_ticked_runs_offer_golden_and_delete_only_to_roles_that_may(tokens, role):
    at = open_page()
    if role:
        unlock(at, role)
    tick(at, LAPTOP)
    assert not {"make_golden", "golden_reason", "delete_run", "delete_confirm", "clear_golden"} & keys(at)
    assert "Open the run page" in links(at)
    assert said(at, "To mark or clear goldens or delete runs, unlock with a role that may")


def test_making_a_golden_is_refused_when_the_role_went_after_the_page_drew(tokens, db_url):
    at = tick(unlock(open_page(), "admin"), LAPTOP)
    at.session_state[state.ACCESS_KEY] = state.Unlocked("viewer-member")
    at.button(key="make_golden").click().run()
    assert any("may not mark or clear goldens" in e.value for e in at.error)
    with Store(db_url) as store:
        assert store.golden_for(LAPTOP).run_id == GOLDEN


# ---------------------------------------------------------------- 3. the run page


def test_run_page_shows_cases_against_the_golden_history_and_links(db_url):
    at = open_page("run", run=UPGRADED)
    assert at.title[0].value == "Run"
    assert said(at, UPGRADED) and said(at, "against the golden: ")
    cases = frame_with(at, "against the golden")
    assert list(cases.columns[:4]) == ["verdict", "case", "device", "dtype"]
    assert cases["verdict"].iloc[0] in ("✗ drift", "≈ within tolerance")  # most severe first
    assert "lstm_2layer" in set(cases.loc[cases["verdict"] != "= identical", "case"])
    history = shown(frame_with(at, "position"))
    assert list(history["run id"]) == [LAPTOP, UPGRADED]
    assert list(history["position"]) == ["1 run before", "this run"]
    assert list(history["environment vs the run before"]) == ["first run", "changed"]
    found = links(at)
    assert found["Compare with the golden"] == ("compare", {"baseline": [GOLDEN], "candidate": [UPGRADED]})
    assert found["Compare with the previous run"] == ("compare", {"baseline": [LAPTOP],
                                                                            "candidate": [UPGRADED]})
    assert found["This machine's history"][0] == "machines"
    assert [p for label, (p, q) in found.items() if label.startswith("Previous run")] == ["run"]


def test_run_page_groups_the_fingerprint_as_the_readme_does(db_url):
    at = open_page("run", run=CUDNN_NODE)
    assert [t.label for t in at.tabs] == ["OS", "Python", "torch and its build", "numpy and packages", "CPU", "GPU",
                                         "Numerics settings", "Environment variables", "Identity"]
    gpu = fingerprint_tab(at, "GPU")
    assert gpu.loc["gpu.cudnn", "value"] == "9.10.2" and gpu.loc["gpu.cudnn", "field"] == "cuDNN"
    assert gpu.loc["gpu.devices[0].name", "field"] == "GPU model (device 0)"
    assert gpu.loc["gpu.mps", "value"] == "no" and gpu.loc["gpu.rocm", "value"] == "–"
    assert gpu.loc["gpu.driver", "can change numbers"] == "yes"
    numerics = fingerprint_tab(at, "Numerics settings")
    assert numerics.loc["numerics.deterministic_algorithms", "value"] == "yes"
    env = fingerprint_tab(at, "Environment variables")
    assert env.loc["env.CUBLAS_WORKSPACE_CONFIG", "value"] == ":4096:8"
    assert env.loc["env.OMP_NUM_THREADS", "value"] == "not set"
    assert [e.label for e in at.expander] == ["torch.__config__.show()", "torch.__config__.parallel_info()"]
    assert "PyTorch built with" in at.code[0].value


def test_fingerprint_groups_cover_every_field_once():
    fp = _cudnn_fp()
    groups = fingerprint_groups(fp)
    assert [g.title for g in groups] == [title for title, _ in GROUPS[:-1]]
    keys_shown = [k for g in groups for k in g.frame["key"]] + [w for g in groups for w, _ in g.raw]
    assert len(keys_shown) == len(set(keys_shown))
    torch = next(g for g in groups if g.title == "torch and its build").frame.set_index("key")
    assert torch.loc["torch.debug", "value"] == "no" and torch.loc["torch.hip", "value"] == "–"
    assert torch.loc["torch.build_settings.USE_CUDNN", "field"] == "torch build setting USE_CUDNN"
    broken = fingerprint_groups({"gpu": {"error": "NVML: driver not loaded"}, "mystery": {"x": 1}})
    assert [(g.title, list(g.frame["field"]), list(g.frame["value"])) for g in broken] == [
        ("GPU", ["gpu: could not be read"], ["NVML: driver not loaded"]), ("Other", ["mystery.x"], ["1"])]


def test_run_page_of_an_environment_only_run_shows_its_fingerprint_and_no_cases(db_url):
    at = open_page("run", run=IMPORTED)
    assert said(at, "This run has no cases")
    assert not [df for df in at.dataframe if "against the golden" in df.value.columns]
    assert fingerprint_tab(at, "OS").loc["os.system", "value"] == "Linux"
    assert links(at)["Compare with the golden"] == ("compare", {"baseline": [GOLDEN], "candidate": [IMPORTED]})


def test_run_page_of_the_golden_says_so(db_url):
    at = open_page("run", run=GOLDEN)
    assert said(at, "This run is the golden")
    assert set(frame_with(at, "against the golden")["verdict"]) == {"★ golden"}
    assert "Compare with the golden" not in links(at)
    history = shown(frame_with(at, "position"))
    assert list(history["run id"]) == [GOLDEN, RERUN] and list(history["verdict"])[0] == "★ golden"
    assert [label for label in links(at) if label.startswith("Next run")]


def test_run_page_takes_a_prefix_and_refuses_unknown_runs_in_one_line(db_url):
    at = open_page("run", run="m0004")
    assert said(at, BROKEN) and at.query_params["run"] == BROKEN
    at = open_page("run", run="no-such-run")
    assert len(at.error) == 1 and "no-such-run" in at.error[0].value
    with pytest.raises(NotFoundError):
        Store(db_url).run("no-such-run")


def test_run_page_without_a_run_asks_for_one(db_url):
    at = open_page("run")
    assert at.info and "run_find" in keys(at)
    at.text_input(key="run_find").input(LAPTOP).run()
    assert not at.exception and said(at, LAPTOP)
    assert frame_with(at, "against the golden") is not None


def test_run_page_shows_hostile_text_as_text(db_url):
    at = open_page("run", run=HOSTILE_RUN)
    assert "Note: **note** <img src=x onerror=alert(1)>" in [t.value for t in at.text]
    for text in texts(at):
        assert "<script>" not in text and "**bold**" not in text, text
    assert any("\\<script\\>" in t for t in texts(at))
    identity = fingerprint_tab(at, "Identity")
    assert identity.loc["identity.hostname", "value"] == "<img src=x onerror=alert(1)>**host**"


def _link_columns(at: AppTest, column: str) -> dict[str, str]:
    """Column name -> the display regex of each link column of the one table that has ``column``."""
    [table] = [df for df in at.dataframe if column in df.value.columns]
    config = json.loads(table.proto.columns)
    return {name: c["type_config"]["display_text"] for name, c in config.items()
            if c.get("type_config", {}).get("type") == "link"}


def test_run_ids_link_to_the_run_page_wherever_tables_show_them(db_url):
    at = open_page()
    assert _link_columns(at, "CPU capability") == {"run id": r"run=([^&]+)"}
    raw = next(df.value for df in at.dataframe if df.key == TABLE)
    assert f"run?run={LAPTOP}" in list(raw["run id"])
    assert _link_columns(at, "reason") == {"run id": r"run=([^&]+)"}
    machines = open_page("machines", machine="host-0001")
    assert _link_columns(machines, "cases differing") == {"run id": r"run=([^&]+)"}
    assert _link_columns(machines, "what changed") == {"run before": r"run=([^&]+)", "run after": r"run=([^&]+)"}
    run = open_page("run", run=UPGRADED)
    assert _link_columns(run, "position") == {"run id": r"run=([^&]+)"}
    compare = open_page("compare", baseline=GOLDEN, candidate=LAPTOP)
    found = links(compare)
    assert found["Baseline's run page"] == ("run", {"run": [GOLDEN]})
    assert found["Candidate's run page"] == ("run", {"run": [LAPTOP]})


# ---------------------------------------------------------------- 5 and 6: wording, column order, Upload's address


def test_one_run_is_one_run(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'one.sqlite'}"
    with Store(url) as store:
        store.ingest(make_bundle(0, 0, label="alone"))
    monkeypatch.setenv(ENV_VAR, url)
    at = open_page()
    assert said(at, "1 run · page 1 of 1")
    assert not [t for t in texts(at) if "1 runs" in t]
    tick(at, "m0000-r00000-default")
    assert said(at, "1 run ticked") and said(at, "Deletes 1 run:")
    assert at.button(key="delete_run").label == "Delete 1 run"
    assert plural(0, "run") == "0 runs" and plural(1, "case") == "1 case" and plural(2_000, "run") == "2,000 runs"


def test_the_delete_confirmation_is_short_with_its_help(db_url):
    at = tick(open_page(), BROKEN)
    box = at.checkbox(key="delete_confirm")
    assert len(box.label) <= 20, box.label
    assert "no undo" in box.help


def test_the_verdict_comes_first_then_the_whole_run_id(db_url):
    table = runs_table(open_page())
    assert list(table.columns[:3]) == ["verdict", "run id", "captured"]
    assert all(not i.endswith("…") for i in table["run id"])


def test_upload_address_sends_a_visitor_who_may_not_upload_to_runs_saying_why(tokens):
    at = open_page()
    at.switch_page("app_pages/upload_locked.py").run()
    assert not at.exception
    assert at.title[0].value == "Runs"
    [info] = [i.value for i in at.info if "Upload" in i.value]
    assert "Upload is locked for this session" in info and "uploader" in info and "\n" not in info
    unlock(at, "uploader")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/upload_locked.py")  # an uploader gets the real page at that address
    at.switch_page("app_pages/upload.py").run()
    assert at.title[0].value == "Upload runs"
