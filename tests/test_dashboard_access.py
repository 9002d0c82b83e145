"""Access control in the dashboard (AppTest), the collect_env paste box, and serve's exposure warning.

A small seeded database (a golden and one other run) and an access file with
one token per role. Each test gets a fresh limiter of wrong tokens (the
server's is one per process), so one test's wrong tokens never lock another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from apptest_factory import APP, private_copy, seed_sqlite
from click.testing import CliRunner
from db_factory import make_bundle
from runs_table import shown, tick
from streamlit.testing.v1 import AppTest

from driftboard.cli import main, serve_cmd
from driftboard.dashboard import auth, state, ui, uploads
from driftboard.dashboard.access_file import policy_from_dict
from driftboard.dashboard.auth import AccessPolicy, Role, hash_token
from driftboard.dashboard.throttle import AttemptLimiter
from driftboard.db.session import ENV_VAR
from driftboard.db.store import Store

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "tests" / "data" / "collect_env"
GOLDEN = "m0000-r00000-default"
OTHER = "m0001-r00000-default"
TOKENS = {"admin": "admin-token-7f3a", "uploader": "uploader-token-91c2", "viewer": "viewer-token-55d0"}
CONTROLS = ("make_golden", "golden_reason", "delete_run", "delete_confirm")


@pytest.fixture(scope="module")
def seeded_file(tmp_path_factory) -> Path:
    bundles = (make_bundle(0, 0, label="golden box"), make_bundle(1, 0, label="laptop", drift={"lstm_2layer": 1}))
    return seed_sqlite(tmp_path_factory.mktemp("access"), bundles, GOLDEN)


@pytest.fixture
def db_url(seeded_file, tmp_path, monkeypatch) -> Iterator[str]:
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    yield from private_copy(seeded_file, tmp_path, monkeypatch)  # then clears the cached access policy too


@pytest.fixture(scope="module")
def token_lines() -> str:
    return "\n".join(f'{role}-member = {{ role = "{role}", hash = "{hash_token(token)}" }}'
                     for role, token in TOKENS.items())


@pytest.fixture(autouse=True)
def attempts(monkeypatch) -> AttemptLimiter:
    """A fresh limiter of wrong tokens for this test, with the default limits."""
    limiter = AttemptLimiter()
    monkeypatch.setattr(state, "UNLOCK_ATTEMPTS", limiter)
    return limiter


@pytest.fixture
def access(db_url, tmp_path, monkeypatch, token_lines) -> Callable[..., Path]:
    """Write an access file (tokens mode unless told) and point the dashboard at it."""
    def write(mode: str = "tokens", **settings: str) -> Path:
        lines = [f'mode = "{mode}"', *(f'{k} = "{v}"' for k, v in settings.items())]
        if mode == "tokens":
            lines += ["[tokens]", token_lines]
        else:
            lines += ["[oidc]", 'default_role = "viewer"',
                      'roles = { "boss@example.com" = "admin", "ci@example.com" = "uploader" }']
        path = tmp_path / "team-auth.toml"
        path.write_text("\n".join(lines) + "\n")
        monkeypatch.setenv(auth.ENV_VAR, str(path))
        return path
    return write


def open_app() -> AppTest:
    """The app on its Runs page (a session that may view lands on the team status board first)."""
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if at.title and at.title[0].value == "Team status":
        goto(at, "runs")
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def title(at: AppTest) -> str:
    return at.title[0].value


def keys(at: AppTest) -> set[str]:
    """Keys of every widget on the page, sidebar included."""
    kinds = ("button", "text_input", "checkbox", "text_area", "selectbox", "file_uploader")
    return {e.key for kind in kinds for e in at.get(kind) if e.key}


def unlock(at: AppTest, token: str) -> AppTest:
    at.text_input(key=ui.TOKEN_KEY).input(token)
    at.button(key="unlock").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def unlocked_as(at: AppTest) -> str | None:
    """The sidebar's "Unlocked as …" line, without its Markdown."""
    return next((plain(c.value).replace("**", "") for c in at.sidebar.caption if "Unlocked as" in c.value), None)


def plain(markdown: str) -> str:
    """Markdown text with the escapes ``markdown_text`` adds removed: what a reader sees."""
    return markdown.replace("\\", "")


def everything_shown(at: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "success", "warning", "error", "text", "code")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def upload_page_reachable(at: AppTest) -> bool:
    """Whether the Upload page is in this session's menu (AppTest knows the pages st.navigation registered)."""
    try:
        at.switch_page("app_pages/upload.py")
    except ValueError as exc:
        assert "Could not find a navigation page" in str(exc)
        return False
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    reachable = title(at) == "Upload runs"
    goto(at, "runs")
    return reachable


# ---------------------------------------------------------------- open mode


def test_open_mode_shows_everything_and_no_lock(db_url):
    at = open_app()
    assert title(at) == "Runs"
    tick(at, OTHER)
    assert set(CONTROLS) <= keys(at)
    assert ui.TOKEN_KEY not in keys(at) and "login" not in keys(at)
    assert upload_page_reachable(at)


# ---------------------------------------------------------------- tokens mode


def test_anonymous_sees_no_upload_page_and_no_golden_or_delete_controls(access):
    access()
    at = open_app()
    assert title(at) == "Runs" and at.dataframe, "viewing stays open"
    tick(at, OTHER)
    assert not set(CONTROLS) & keys(at)
    assert {ui.TOKEN_KEY, "unlock"} <= keys(at)
    assert at.text_input(key=ui.TOKEN_KEY).proto.type == at.text_input(key=ui.TOKEN_KEY).proto.PASSWORD
    assert not upload_page_reachable(at)
    assert not [link for link in at.get("page_link") if link.proto.page == "upload"]


@pytest.mark.parametrize("page", ["compare", "matrix", "machines"])
def test_the_other_pages_work_for_an_anonymous_viewer(access, page):
    access()
    at = goto(open_app(), page)
    assert not at.error, [e.value for e in at.error]
    assert {ui.TOKEN_KEY, "unlock"} <= keys(at)


@pytest.mark.parametrize("page", ["runs", "compare", "matrix", "machines"])
def test_an_empty_database_links_to_upload_only_for_uploaders(access, tmp_path, monkeypatch, page):
    access()
    monkeypatch.setenv(ENV_VAR, f"sqlite:///{tmp_path / 'empty.sqlite'}")
    at = goto(open_app(), page)  # a link to a page not in the menu would be an exception
    assert at.info and not at.get("page_link")
    goto(unlock(at, TOKENS["uploader"]), page)
    assert [(link.proto.page, link.proto.label) for link in at.get("page_link")] == [("upload", "Upload runs")]


def test_a_wrong_token_is_refused_with_a_message_counted_and_never_shown(access, attempts, caplog):
    access()
    caplog.set_level(logging.DEBUG)
    at = unlock(open_app(), "not-a-real-token-0000")
    assert any("not valid" in e.value for e in at.error)
    assert attempts.failures("loopback") == 1
    assert "unlock attempt from loopback refused: unknown token" in caplog.text
    assert at.text_input(key=ui.TOKEN_KEY).value == ""  # emptied: not kept, not sent back
    assert state.ACCESS_KEY not in at.session_state
    assert "not-a-real-token-0000" not in repr(at.session_state.to_dict())
    assert not upload_page_reachable(at)
    assert "not-a-real-token-0000" not in everything_shown(at)
    assert "not-a-real-token-0000" not in caplog.text


def test_an_uploader_token_unlocks_the_upload_page_but_not_delete(access, attempts, caplog):
    access()
    caplog.set_level(logging.DEBUG)
    at = unlock(open_app(), TOKENS["uploader"])
    assert attempts.failures() == 0
    assert unlocked_as(at) == "Unlocked as uploader-member (uploader)."
    assert not at.sidebar.info and not at.sidebar.error  # the click after the box's own unlock says nothing
    assert TOKENS["uploader"] not in repr(at.session_state.to_dict())  # the session keeps who, not the token
    assert upload_page_reachable(at)
    tick(at, OTHER)
    assert not set(CONTROLS) & keys(at)
    assert TOKENS["uploader"] not in everything_shown(at) and TOKENS["uploader"] not in caplog.text


def test_repeated_wrong_tokens_are_refused_unchecked_per_address_and_logged(access, monkeypatch, caplog):
    access()
    caplog.set_level(logging.INFO)
    limiter = AttemptLimiter(per_client=3, overall=10, window_seconds=600)
    monkeypatch.setattr(state, "UNLOCK_ATTEMPTS", limiter)
    client = {"address": "203.0.113.7"}
    monkeypatch.setattr(state, "client_address", lambda: client["address"])
    checked: list[str] = []
    real_matches = auth._matches
    monkeypatch.setattr(auth, "_matches", lambda token, stored: checked.append(stored) or real_matches(token, stored))
    long_sleeps = sleeps_of_at_least(monkeypatch, 0.5)
    at = open_app()
    for i in range(3):
        unlock(at, f"wrong-token-{i}")
        assert any("not valid" in e.value for e in at.error)
    assert len(checked) == 3 * len(TOKENS)  # each wrong token was checked against every member's hash
    checked.clear()
    unlock(at, "wrong-token-3")
    unlock(at, TOKENS["admin"])  # the right token too: while the address is held back nothing is checked
    assert checked == [] and unlocked_as(at) is None
    assert any("Too many wrong tokens" in e.value and "not checked" in e.value for e in at.error)
    assert caplog.text.count("unlock attempt from 203.0.113.7 refused") == 5
    assert limiter.failures("203.0.113.7") == 3  # refusals without a check are not counted
    assert long_sleeps == []  # no server thread was held for a refusal

    client["address"] = "198.51.100.9"  # another address is not held back
    unlock(at, TOKENS["admin"])
    assert unlocked_as(at) == "Unlocked as admin-member (admin)."
    assert "admin-member unlocked from 198.51.100.9" in caplog.text


def sleeps_of_at_least(monkeypatch, seconds: float) -> list[float]:
    """Every ``time.sleep`` of ``seconds`` or more, recorded (and still slept)."""
    import time

    long: list[float] = []
    real_sleep = time.sleep

    def sleep(duration: float) -> None:
        if duration >= seconds:
            long.append(duration)
        real_sleep(duration)

    monkeypatch.setattr(time, "sleep", sleep)
    return long


def test_enter_in_the_token_box_unlocks_and_an_empty_click_asks_for_a_token(access, attempts):
    access()
    at = open_app()
    at.button(key="unlock").click().run()
    assert any("Enter your access token" in plain(e.value) for e in at.info) and attempts.failures() == 0
    at.text_input(key=ui.TOKEN_KEY).input(TOKENS["admin"]).run()  # no click: the box's own change
    assert unlocked_as(at) == "Unlocked as admin-member (admin)."
    assert "lock" in keys(at) and ui.TOKEN_KEY not in keys(at)


def test_an_admin_token_shows_golden_and_delete_and_lock_ends_it(access, db_url):
    access()
    at = unlock(open_app(), TOKENS["admin"])
    tick(at, OTHER)
    assert set(CONTROLS) <= keys(at)
    at.text_input(key="golden_reason").input("new reference")
    at.button(key="make_golden").click().run()
    with Store(db_url) as store:
        golden = store.golden_for(OTHER)
        assert golden.run_id == OTHER and golden.set_by == "dashboard (admin-member)"
    at.button(key="lock").click().run()
    assert not set(CONTROLS) & keys(at) and "unlock" in keys(at)
    assert not upload_page_reachable(at)


def test_the_server_checks_the_role_again_before_acting(access, db_url):
    """A delete button rendered for an admin, clicked after the session lost the role: refused."""
    access()
    at = unlock(open_app(), TOKENS["admin"])
    tick(at, OTHER)
    at.checkbox(key="delete_confirm").check().run()
    at.session_state[state.ACCESS_KEY] = state.Unlocked("viewer-member")
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert any("may not delete runs" in e.value for e in at.error)
    with Store(db_url) as store:
        assert store.run(OTHER).run_id == OTHER


@st.cache_data(show_spinner=False)
def cached_probe(x: int) -> int:
    """A cached function of this test's own: whether it runs again shows whether the caches were emptied."""
    PROBE_CALLS.append(x)
    return x


PROBE_CALLS: list[int] = []


def test_clearing_the_caches_is_an_admin_action(access):
    access()
    at = open_app()
    assert "clear_caches" not in keys(at)
    unlock(at, TOKENS["uploader"])
    assert "clear_caches" not in keys(at)
    at.button(key="lock").click().run()
    unlock(at, TOKENS["admin"])
    assert "clear_caches" in keys(at)

    PROBE_CALLS.clear()
    cached_probe(1)
    cached_probe(1)
    assert PROBE_CALLS == [1]
    at.session_state[state.ACCESS_KEY] = state.Unlocked("viewer-member")  # the role went after the page drew
    at.button(key="clear_caches").click().run()
    assert any("Only an admin" in e.value for e in at.error)
    cached_probe(1)
    assert PROBE_CALLS == [1], "a non-admin emptied the caches"

    at.session_state[state.ACCESS_KEY] = state.Unlocked("admin-member")
    at.run()
    at.button(key="clear_caches").click().run()
    assert any("Cleared the cached comparisons" in plain(e.value) for e in at.success)
    cached_probe(1)
    assert PROBE_CALLS == [1, 1]
    assert unlocked_as(at) == "Unlocked as admin-member (admin)."  # the Store and the policy stayed


def test_session_state_cannot_be_forged_with_plain_data():
    tokens = policy_from_dict({"mode": "tokens", "tokens": {"a": {"role": "admin", "hash": hash_token("x")}}})
    assert state.member_role(tokens, state.Unlocked("a")) is Role.ADMIN
    assert state.member_role(tokens, "a") is Role.ANONYMOUS  # what a browser could send: a string
    assert state.member_role(tokens, {"name": "a"}) is Role.ANONYMOUS
    assert state.member_role(tokens, state.Unlocked("someone-removed")) is Role.ANONYMOUS


def test_restricted_viewing_shows_only_the_unlock_form(access):
    access(view="viewer")
    at = open_app()
    assert title(at) == "driftboard is locked"
    assert not at.dataframe and not at.get("plotly_chart") and not at.selectbox
    assert keys(at) == {ui.TOKEN_KEY, "unlock"}
    assert not upload_page_reachable(at)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/runs.py")  # the locked page is the only one there is
    unlock(at, "wrong")
    assert title(at) == "driftboard is locked" and any("not valid" in e.value for e in at.error)
    unlock(at, TOKENS["viewer"])
    assert title(at) == "Team status" and at.dataframe  # unlocked: the default page
    assert not upload_page_reachable(at)


def test_a_broken_access_file_stops_every_page_with_one_line(db_url, tmp_path, monkeypatch):
    path = tmp_path / "bad.toml"
    path.write_text('mode = "tokens"\n')
    monkeypatch.setenv(auth.ENV_VAR, str(path))
    at = open_app()
    assert len(at.error) == 1 and "at least one entry" in at.error[0].value
    assert not at.dataframe


# ---------------------------------------------------------------- OIDC


@pytest.mark.parametrize(("user", "role"), [
    ({"is_logged_in": True, "email": "Boss@Example.com", "email_verified": True}, Role.ADMIN),
    ({"is_logged_in": True, "email": "ci@example.com", "email_verified": True}, Role.UPLOADER),
    ({"is_logged_in": True, "email": "ci@example.com"}, Role.VIEWER),  # no claim: the e-mail is not vouched for
    ({"is_logged_in": True, "email": "ci@example.com", "email_verified": "true"}, Role.VIEWER),
    ({"is_logged_in": True, "email": "someone@example.com"}, Role.VIEWER),
    ({"is_logged_in": True, "email": "boss@example.com", "email_verified": False}, Role.VIEWER),
    ({"is_logged_in": True}, Role.ANONYMOUS),
    ({"is_logged_in": False, "email": "boss@example.com"}, Role.ANONYMOUS),
    ({}, Role.ANONYMOUS),
])
def test_oidc_role_from_the_user(user, role):
    policy: AccessPolicy = policy_from_dict({"mode": "oidc", "oidc": {
        "default_role": "viewer", "roles": {"boss@example.com": "admin", "ci@example.com": "uploader"}}})
    assert state.oidc_user_role(policy, user) is role


def test_oidc_login_gives_the_role_of_the_email(access, monkeypatch):
    access("oidc", view="viewer")
    monkeypatch.setattr(state, "oidc_ready", lambda: True)  # no identity provider is reachable here
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()
    assert title(at) == "driftboard is locked" and "login" in keys(at)

    at.user = {"is_logged_in": True, "email": "boss@example.com", "email_verified": True}
    at.run()
    assert title(at) == "Team status" and "logout" in keys(at)  # logged in: the default page
    goto(at, "runs")
    assert any("boss@example.com" in plain(c.value) and "admin" in c.value for c in at.caption)
    tick(at, OTHER)
    assert set(CONTROLS) <= keys(at)

    at.user = {"is_logged_in": True, "email": "someone@example.com"}
    goto(at, "runs")
    assert not set(CONTROLS) & keys(at)
    assert not upload_page_reachable(at)


def test_oidc_without_its_secrets_lets_nobody_in_and_says_why(access):
    access("oidc")  # view open, but no [auth] in secrets.toml and no Authlib here
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.user = {"is_logged_in": True, "email": "boss@example.com"}
    at.run()
    assert any("Login is not configured" in e.value for e in at.error)
    assert "login" not in keys(at) and not upload_page_reachable(at)


# ---------------------------------------------------------------- the collect_env paste box


def paste(at: AppTest, text: str, label: str = "", note: str = "") -> AppTest:
    at.text_area(key="paste_text").input(text)
    at.text_input(key="paste_label").input(label)
    at.text_input(key="paste_note").input(note)
    at.button(key="paste_import").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_pasted_report_is_stored_once_as_an_environment_only_run(db_url):
    report = (REPORTS / "issue_body.md").read_text()
    at = paste(goto(open_app(), "upload"), report, label="reporter's <b>box</b>", note="issue #1")
    [stored] = [plain(e.value) for e in at.success]
    assert "stored as run import-" in stored and "an environment-only run" in stored
    run_id = stored.split("stored as run ", 1)[1].split(":", 1)[0]
    with Store(db_url) as store:
        run = store.run(run_id)
        assert run.imported and run.case_count == 0 and run.label == "reporter's <b>box</b>"
        assert run.note == "issue #1" and run.uploader == uploads.UPLOADER
        count = store.stats().runs

    paste(at, report)  # the same text again
    assert not at.success and any(f"already stored as run {run_id}" in plain(i.value) for i in at.info)
    with Store(db_url) as store:
        assert store.stats().runs == count

    goto(at, "runs")
    table = shown(next(df.value for df in at.dataframe if "verdict" in df.value.columns)).set_index("run id")
    assert table.loc[run_id, "verdict"] == "environment only" and table.loc[run_id, "label"] == "reporter's <b>box</b>"

    at.query_params.update({"baseline": GOLDEN, "candidate": run_id})
    goto(at, "compare")  # the environment diff only: no charts, no verdict table
    assert any("environment-only run" in plain(t.value) for t in (*at.info, *at.caption, *at.markdown))
    assert not at.get("plotly_chart")
    assert not [df for df in at.dataframe if "max ULP" in df.value.columns]

    at.query_params.update({"machine": "unknown"})
    goto(at, "machines")
    assert not at.get("plotly_chart")


def test_text_that_is_not_a_report_is_refused_in_one_line_and_nothing_is_stored(db_url):
    with Store(db_url) as store:
        before = store.stats()
    at = paste(goto(open_app(), "upload"), "Hello, my model gives different numbers on my laptop.\n")
    [error] = [plain(e.value) for e in at.error]
    assert error.startswith("not a collect_env report") and "\n" not in error
    assert not at.success and not at.warning
    with Store(db_url) as store:
        assert store.stats() == before


def test_a_partial_report_is_imported_and_says_what_was_missing(db_url):
    partial = "PyTorch version: 2.1.0+cu121\nIs debug build: False\nCUDA used to build PyTorch: 12.1\n"
    at = paste(goto(open_app(), "upload"), partial)
    assert len(at.success) == 1
    [missing] = at.warning
    assert missing.value.startswith("Missing from this report")


def test_the_paste_box_needs_the_upload_role(access, db_url):
    access()
    at = goto(unlock(open_app(), TOKENS["uploader"]), "upload")
    with Store(db_url) as store:
        before = store.stats()
    at.session_state[state.ACCESS_KEY] = state.Unlocked("viewer-member")  # the role went after the page drew
    paste(at, (REPORTS / "rocm.txt").read_text())
    assert title(at) == "Runs"  # the page left the menu, and the callback refused the import
    assert at.session_state["paste_result"].status == "refused"
    with Store(db_url) as store:
        assert store.stats() == before


def test_import_report_outcomes(db_url):
    with Store(db_url) as store:
        text = (REPORTS / "rocm.txt").read_text()
        first = uploads.import_report(store, text, note="from a bug report")
        again = uploads.import_report(store, text, label="other label")
        bad = uploads.import_report(store, "")
        huge = uploads.import_report(store, "PyTorch version: 2.0\n" * (uploads.MAX_REPORT_CHARS // 10))
        assert (first.status, again.status, bad.status, huge.status) == ("stored", "already present", "refused",
                                                                          "refused")
        assert first.run_id == again.run_id and store.run(first.run_id).note == "from a bug report"
        assert bad.run_id is None and "\n" not in bad.message


# ---------------------------------------------------------------- driftboard serve: the exposure warning


@pytest.fixture
def execs(monkeypatch) -> list[tuple[str, list[str], dict[str, str]]]:
    """Record the exec into Streamlit instead of doing it: nothing listens on any interface."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(serve_cmd.os, "execve", lambda path, args, env: calls.append((path, list(args), dict(env))))
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    return calls


def test_exposure_warning_decision():
    tokens = policy_from_dict({"mode": "tokens", "tokens": {"a": {"role": "admin", "hash": hash_token("x")}}})
    [warning] = serve_cmd.exposure_warnings("0.0.0.0", 8501, auth.OPEN)
    assert "anyone who can reach port 8501" in warning and "upload" in warning and "delete" in warning
    assert "goldens" in warning and "--auth FILE" in warning
    assert serve_cmd.exposure_warnings("0.0.0.0", 8501, tokens) == []
    assert serve_cmd.exposure_warnings("127.0.0.1", 8501, auth.OPEN) == []
    assert serve_cmd.exposure_warnings("::1", 8501, auth.OPEN) == []


def test_oidc_without_secrets_or_authlib_is_warned(tmp_path):
    oidc = policy_from_dict({"mode": "oidc"})
    warnings = serve_cmd.exposure_warnings("0.0.0.0", 80, oidc, secrets_dirs=(tmp_path,), authlib=False)
    assert len(warnings) == 2 and "[auth]" in warnings[0] and "streamlit[auth]" in warnings[1]
    (tmp_path / "secrets.toml").write_text('[auth]\nredirect_uri = "https://x/oauth2callback"\n')
    assert serve_cmd.exposure_warnings("0.0.0.0", 80, oidc, secrets_dirs=(tmp_path,), authlib=True) == []


def test_serve_on_all_interfaces_without_auth_warns(tmp_path, execs):
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                                  "--allow-open-writes"])
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "no access control" in result.stderr and "--auth FILE" in result.stderr
    assert auth.ENV_VAR not in execs[0][2]
    assert "access open" in result.stdout


def test_serve_with_auth_gives_no_warning_and_hands_the_file_over(tmp_path, execs, token_lines):
    path = tmp_path / "team-auth.toml"
    path.write_text(f'mode = "tokens"\n[tokens]\n{token_lines}\n')
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                                  "--auth", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    assert execs[0][2][auth.ENV_VAR] == str(path.absolute())
    assert "access tokens" in result.stdout
    assert all(token not in result.output for token in TOKENS.values())


def test_serve_refuses_a_broken_access_file_in_one_line(tmp_path, execs, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('mode = "tokens"\n[tokens]\nalice = { role = "admin", hash = "plaintext-password" }\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", str(tmp_path / "db.sqlite"), "--auth", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("driftboard: error: ") and "hash-token" in err and "\n" not in err
    assert "plaintext-password" not in err
    assert execs == []


def test_the_app_grants_uploads_only_to_sessions_whose_role_may_upload(access) -> None:
    from driftboard.dashboard import upload_permits

    def last_grant() -> bool:
        return next(reversed(upload_permits._granted.values()))

    access("tokens", view="anonymous")
    open_app()
    assert last_grant() is False  # an anonymous viewer: Streamlit's upload endpoint is closed to this session
    unlock(open_app(), TOKENS["viewer"])
    assert last_grant() is False
    unlock(open_app(), TOKENS["uploader"])
    assert last_grant() is True
