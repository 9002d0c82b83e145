"""The team-server client (``db/remote.py``) and the ``--server`` options, over real HTTP to a stub server.

The stub (``team_server_stub.py``) answers as the API contract says, on a real
SQLite store, and fails on demand: 503s, a 429 with Retry-After, an answer
lost after the push was stored, a 413, a refused token, a server that echoes
the Authorization header into its error lines. ``driftboard serve``'s own API
is tested against real HTTP in its own tests.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run_driftboard as cli
from db_factory import write_bundle_file
from team_server_stub import team_server_stub

from driftboard.core.errors import DriftboardError
from driftboard.db.remote import TOKEN_ENV, Retry, ServerError, TeamServer, read_token
from driftboard.db.store import Store

TOKEN = "s3cret-token-of-alice"
TOKENS = {TOKEN: "alice"}
GOLDEN = "m0001-r00000-default"


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'team.sqlite'}"


@pytest.fixture
def stub(db):
    with team_server_stub(db, TOKENS) as running:
        yield running


@pytest.fixture
def bundle(tmp_path) -> Path:
    return write_bundle_file(tmp_path, 2, 0, label="ci runner", drift={"linear_1024": 1})


def client(url: str, token: str | None = TOKEN, **retry: Any) -> tuple[TeamServer, list[float]]:
    waits: list[float] = []
    return TeamServer(url, token, retry=Retry(**retry), sleep=waits.append), waits


def run_ids(db: str) -> list[str]:
    with Store(db) as store:
        return [run.run_id for run in store.runs().runs]


# ---------------------------------------------------------------- pushing, retries


def test_a_push_is_streamed_with_the_token_and_stored_once(stub, bundle, db):
    url, state = stub
    server, waits = client(url)
    reply = server.push(bundle)
    assert reply.stored and reply.run_id == "m0002-r00000-default" and waits == []
    (seen,) = state.seen
    assert (seen.method, seen.path, seen.authorization) == ("POST", "/api/v1/runs", f"Bearer {TOKEN}")
    assert seen.body_bytes == bundle.stat().st_size
    assert run_ids(db) == [reply.run_id]
    again = server.push(bundle)
    assert not again.stored and again.run_id == reply.run_id and run_ids(db) == [reply.run_id]
    with Store(db) as store:
        (entry, *_) = store.write_log()
        assert (entry.action, entry.actor, entry.channel, entry.run_id) == ("push", "alice", "api", reply.run_id)


def test_two_503s_then_success_store_one_run_after_backoff(stub, bundle, db):
    url, state = stub
    state.script = [(503, {"error": "database busy"}, {}), (503, {"error": "database busy"}, {})]
    server, waits = client(url, backoff=0.5)
    reply = server.push(bundle)
    assert reply.stored and [s.method for s in state.seen] == ["POST"] * 3
    assert all(s.body_bytes == bundle.stat().st_size for s in state.seen)  # the file is sent whole each time
    assert len(waits) == 2 and 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0  # exponential, jittered
    assert run_ids(db) == [reply.run_id]


def test_a_push_whose_answer_was_lost_is_retried_without_a_duplicate(stub, bundle, db):
    url, state = stub
    state.drop_after_store = 1  # stored, then the connection closes without an answer
    server, waits = client(url)
    reply = server.push(bundle)
    assert not reply.stored and reply.run_id == "m0002-r00000-default"  # the retry finds it stored
    assert len(state.seen) == 2 and len(waits) == 1
    assert run_ids(db) == [reply.run_id]
    with Store(db) as store:
        assert [e.action for e in store.write_log()] == ["push"]  # logged once: the retry wrote nothing


def test_429_waits_as_long_as_retry_after_says(stub, bundle):
    url, state = stub
    state.script = [(429, {"error": "too many wrong tokens"}, {"Retry-After": "7"})]
    server, waits = client(url, max_wait=30)
    assert server.push(bundle).stored and waits == [7.0]
    state.script = [(429, {"error": "slow down"}, {"Retry-After": "3600"})]
    server, waits = client(url, max_wait=30)
    server.health()
    assert waits == [30.0]  # bounded


def test_5xx_every_time_gives_up_with_the_servers_line_and_the_count(stub, bundle, db):
    url, state = stub
    state.script = [(500, {"error": "internal error, see the server log"}, {})] * 3
    server, waits = client(url, attempts=3)
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert str(info.value) == (f"internal error, see the server log (HTTP 500 from {url}) (tried 3 times)")
    assert len(state.seen) == 3 and len(waits) == 2 and run_ids(db) == []


@pytest.mark.parametrize("status,line", [(400, "invalid bundle: manifest.json: missing"), (403, "your role (viewer) "
                                         "may not upload runs"), (408, "the body stalled"), (413, "the bundle is "
                                         "70 MiB, over the 64 MiB limit of a push")])
def test_a_4xx_is_never_retried(stub, bundle, status, line):
    url, state = stub
    state.script = [(status, {"error": line}, {})]
    server, waits = client(url)
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert str(info.value) == f"{line} (HTTP {status} from {url})" and info.value.status == status
    assert len(state.seen) == 1 and waits == []


def test_an_unreachable_server_is_retried_then_one_line(bundle):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, waits = client(f"http://127.0.0.1:{port}", attempts=3)
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert str(info.value).startswith(f"cannot reach http://127.0.0.1:{port}: ") and "(tried 3 times)" in str(info.value)
    assert "\n" not in str(info.value) and len(waits) == 2


def test_a_proxys_html_error_page_becomes_its_status_line(stub, bundle):
    url, state = stub
    state.script = [(413, {}, {})]  # no "error" key: as an nginx page would be
    server, _ = client(url)
    with pytest.raises(ServerError, match=rf"^Request Entity Too Large \(HTTP 413 from {url}\)$"):
        server.push(bundle)


def test_a_redirect_names_the_address_to_use_instead(stub, bundle):
    url, state = stub
    state.script = [(301, {}, {"Location": "https://drift.example.com/api/v1/runs"})]
    server, waits = client(url)
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert str(info.value) == (f"Moved Permanently (HTTP 301 from {url}; it redirects to "
                               "https://drift.example.com/api/v1/runs: give --server that address)")
    assert waits == []


# ---------------------------------------------------------------- tokens


def test_wrong_and_missing_tokens_are_refused_once_and_said_so(stub, bundle, db):
    url, state = stub
    with pytest.raises(ServerError, match=r"missing or wrong token \(HTTP 401"):
        client(url, token="not-it")[0].push(bundle)
    with pytest.raises(ServerError, match=f"no token was given: set \\${TOKEN_ENV} or use --token-file PATH"):
        client(url, token=None)[0].push(bundle)
    assert len(state.seen) == 2 and state.seen[1].authorization is None and run_ids(db) == []


def test_the_token_never_appears_in_a_message_even_when_the_server_echoes_it(stub, bundle):
    url, state = stub
    state.echo_authorization = True
    state.script = [(400, {"error": "bad request"}, {})]
    server, _ = client(url)
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert TOKEN not in str(info.value) and "Bearer ***" in str(info.value)
    assert TOKEN not in repr(server)
    state.script = [(503, {"error": "busy"}, {})] * 4
    with pytest.raises(ServerError) as info:
        server.push(bundle)
    assert TOKEN not in str(info.value)


def test_read_token_from_the_environment_or_a_file(tmp_path):
    assert read_token(None, {TOKEN_ENV: f"  {TOKEN}\n"}) == TOKEN
    assert read_token(None, {}) is None
    file = tmp_path / "token"
    file.write_text(f"{TOKEN}\n# a comment line is not read\n")
    assert read_token(file, {TOKEN_ENV: "from-env"}) == TOKEN  # the file wins
    for content, problem in (("", "is empty"), ("\n\n", "is empty"), ("two words\n", "holds characters")):
        file.write_text(content)
        with pytest.raises(DriftboardError, match=problem) as info:
            read_token(file)
        assert "\n" not in str(info.value)
    file.write_text("x" * 5000)
    with pytest.raises(DriftboardError, match="larger than 4096 bytes"):
        read_token(file)
    with pytest.raises(DriftboardError, match=f"^cannot read token file {tmp_path / 'nope'}: No such file"):
        read_token(tmp_path / "nope")
    with pytest.raises(DriftboardError, match="holds characters"):
        read_token(None, {TOKEN_ENV: "a b"})


def test_server_urls_with_credentials_or_junk_are_refused_without_echoing_the_password():
    with pytest.raises(DriftboardError) as info:
        TeamServer("https://alice:hunter2@drift.example.com")
    assert "hunter2" not in str(info.value) and "***@drift.example.com" in str(info.value)
    for bad in ("drift.example.com", "ftp://drift.example.com", "http://host:port", "http://host/?x=1"):
        with pytest.raises(DriftboardError):
            TeamServer(bad)
    assert TeamServer("https://drift.example.com/team/").url == "https://drift.example.com/team"


# ---------------------------------------------------------------- the commands


@pytest.fixture
def team(stub, db, tmp_path) -> tuple[str, Any]:
    """The stub with a golden and a drifted run stored, and the token in the environment."""
    url, state = stub
    with Store(db) as store:
        store.ingest(write_bundle_file(tmp_path, 1, 0, label="golden box"))
        store.ingest(write_bundle_file(tmp_path, 1, 1, label="laptop", drift={"lstm_2layer": 2}))
        store.set_golden(GOLDEN, set_by="admin")
    return url, state


def test_push_server_prints_each_file_and_sends_the_env_token(team, bundle, capsys, monkeypatch, db):
    url, state = team
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    code, out, err = cli(capsys, "push", str(bundle), "--server", url)
    assert (code, err) == (0, "")
    assert out == f"{bundle}: stored run m0002-r00000-default on {url} (verdict within tolerance against golden {GOLDEN})\n"
    code, out, err = cli(capsys, "push", str(bundle), "--server", url)
    assert out == f"{bundle}: already stored as run m0002-r00000-default on {url}, nothing written\n"
    assert all(s.authorization == f"Bearer {TOKEN}" for s in state.seen)


def test_push_server_with_a_token_file_and_a_bad_file_among_good_ones(team, bundle, tmp_path, capsys, monkeypatch):
    url, state = team
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    junk = tmp_path / "junk.driftboard"
    junk.write_bytes(b"not a zip")
    state.script = [(400, {"error": "invalid bundle: file: not a driftboard bundle"}, {})]
    code, out, err = cli(capsys, "push", str(junk), str(bundle), "--server", url, "--token-file", str(token_file))
    assert code == 2 and ": stored run m0002-r00000-default" in out
    assert err.splitlines() == [f"{junk}: not stored: invalid bundle: file: not a driftboard bundle (HTTP 400 from {url})",
                                "driftboard: error: 1 of 2 bundles not stored"]
    assert TOKEN not in out + err


def test_a_refused_token_stops_the_batch(team, bundle, tmp_path, capsys, monkeypatch, db):
    url, state = team
    monkeypatch.setenv(TOKEN_ENV, "wrong")
    other = write_bundle_file(tmp_path, 3, 0)
    code, out, err = cli(capsys, "push", str(bundle), str(other), "--server", url)
    assert code == 2 and out == ""
    assert err.splitlines()[1] == f"{other}: not tried: the server refused the token"
    assert len(state.seen) == 1 and "wrong" not in err


@pytest.mark.parametrize("argv", [["push", "x.driftboard"], ["runs"], ["golden", "list"],
                                  ["compare", "golden", "x.driftboard"], ["report", "a", "b", "-o", "r.html"],
                                  ["import-env", "x.txt", "--push"]])
def test_db_and_server_together_are_one_line(argv, capsys, tmp_path):
    code, out, err = cli(capsys, *argv, "--db", str(tmp_path / "x.sqlite"), "--server", "http://127.0.0.1:9")
    assert (code, out) == (2, "") and err == "driftboard: error: --db and --server are alternatives: give one of them\n"
    assert not (tmp_path / "x.sqlite").exists()


def test_a_missing_token_file_is_one_line_before_any_request(team, bundle, capsys, tmp_path):
    url, state = team
    code, out, err = cli(capsys, "push", str(bundle), "--server", url, "--token-file", str(tmp_path / "nope"))
    assert (code, out) == (2, "")
    assert err == f"driftboard: error: cannot read token file {tmp_path / 'nope'}: No such file or directory\n"
    assert state.seen == []


def test_no_command_takes_the_token_as_an_argument(capsys):
    import click

    from driftboard.cli import COMMANDS
    from driftboard.cli import cli as group

    ctx = click.Context(group)
    for name in COMMANDS:
        command = group.get_command(ctx, name)
        commands = list(command.commands.values()) if isinstance(command, click.Group) else [command]
        for one in commands:
            options = {opt for param in one.params for opt in getattr(param, "opts", ())}
            assert not {opt for opt in options if "token" in opt} - {"--token-file"}, (name, one.name)
    code, _, err = cli(capsys, "push", "x.driftboard", "--server", "http://127.0.0.1:9", "--token", TOKEN)
    assert code == 2 and "No such option '--token'" in err and TOKEN not in err


def test_capture_refuses_server_options_it_cannot_use_before_capturing(capsys, tmp_path):
    code, _, err = cli(capsys, "capture", "-o", str(tmp_path / "x.driftboard"), "--server", "http://127.0.0.1:9")
    assert code == 2 and err == "driftboard: error: --server goes with --push: add --push, or push the bundle later\n"
    missing = tmp_path / "no-token"
    code, _, err = cli(capsys, "capture", "--push", "--golden", "--server", "http://127.0.0.1:9",
                       "--token-file", str(missing))
    assert code == 2 and f"cannot read token file {missing}" in err
    assert not (tmp_path / "x.driftboard").exists()


def test_runs_and_golden_list_from_the_server_print_as_from_the_database(team, capsys, monkeypatch, db):
    url, _ = team
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    for argv in (["runs"], ["runs", "--json"], ["runs", "--machine", "host-0001", "--per-page", "1"],
                 ["golden", "list"], ["golden", "list", "--json"]):
        remote = cli(capsys, *argv, "--server", url)
        local = cli(capsys, *argv, "--db", db)
        assert remote == local and remote[0] == 0, argv
    code, out, _ = cli(capsys, "runs", "--server", url, "--json")
    assert json.loads(out)["total"] == 2


def failing_cases(junit: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    return [case.get("name", "") for case in ET.parse(junit).iter("testcase") if case.find("failure") is not None]


def verdicts(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["case_id"], c["device"], c["dtype"], c["verdict"]) for c in doc["comparisons"][0]["cases"]]


def test_compare_server_golden_gates_a_local_bundle_with_junit(team, bundle, tmp_path, capsys, monkeypatch, db):
    """The CI gate: the golden's bundle is fetched, the comparison runs here, as with --db."""
    url, state = team
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    junit = tmp_path / "drift.xml"
    code, out, err = cli(capsys, "compare", "--server", url, "golden", str(bundle), "--junit", str(junit),
                         "--policy", "bitwise")
    assert code == 1 and "FAIL" in out and junit.read_text().count("<failure") >= 1
    assert [s.path for s in state.seen] == ["/api/v1/golden", f"/api/v1/runs/{GOLDEN}/bundle"]
    local_junit = tmp_path / "local.xml"
    assert cli(capsys, "compare", "--db", db, "golden", str(bundle), "--junit", str(local_junit),
               "--policy", "bitwise")[0] == 1
    # The same cases fail; the database adds its determinism evidence (other runs it holds), the bundles alone not.
    assert failing_cases(junit) == failing_cases(local_junit) and failing_cases(junit)
    remote_json = json.loads(cli(capsys, "compare", "--server", url, "golden", str(bundle), "--json",
                                 "--policy", "bitwise")[1])
    local_json = json.loads(cli(capsys, "compare", "--db", db, "golden", str(bundle), "--json",
                                "--policy", "bitwise")[1])
    assert verdicts(remote_json) == verdicts(local_json) and remote_json["failed"] is local_json["failed"] is True
    assert remote_json["comparisons"][0]["baseline"]["run_id"] == GOLDEN
    # a stored run id as the candidate, fetched too
    code, out, _ = cli(capsys, "compare", "--server", url, "golden", "m0001-r00001-default", "--fail-on", "never")
    assert code == 0 and "OK" in out


def test_compare_server_without_a_matching_golden_says_so(team, tmp_path, capsys, monkeypatch):
    url, _ = team
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gpu = write_bundle_file(tmp_path, 5, 0, devices=("cpu", "cuda"), cuda="12.4")
    code, out, err = cli(capsys, "compare", "--server", url, "golden", str(gpu))
    assert code == 2 and err.startswith(f"driftboard: error: no golden 'default' on {url} for ") and "cuda" in err


def test_report_server_writes_the_html_from_fetched_runs(team, bundle, tmp_path, capsys, monkeypatch):
    url, _ = team
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    html = tmp_path / "r.html"
    code, out, err = cli(capsys, "report", "--server", url, "golden", str(bundle), "-o", str(html),
                         "--policy", "bitwise")
    assert (code, err) == (0, "") and "worst verdict drift" in out and html.stat().st_size > 10_000


def test_pushing_to_a_server_never_imports_torch_numpy_or_sqlalchemy(team, bundle, monkeypatch):
    url, _ = team
    code = ("import sys\nfrom driftboard.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nheavy = [m for m in ('torch', 'numpy', 'sqlalchemy', 'streamlit') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-P", "-c", code, "push", str(bundle), "--server", url],
                          env={"PATH": "/usr/bin:/bin", TOKEN_ENV: TOKEN}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stored run m0002-r00000-default" in done.stdout


def test_an_oversize_file_is_refused_before_a_byte_is_sent(stub, tmp_path):
    from driftboard.core.bundle import DEFAULT_LIMITS
    from driftboard.db import remote

    assert DEFAULT_LIMITS.file_bytes == remote.MAX_BUNDLE_BYTES  # the copy that keeps numpy out of a push
    url, state = stub
    big = tmp_path / "big.driftboard"
    with big.open("wb") as handle:
        handle.truncate(DEFAULT_LIMITS.file_bytes + 1)  # sparse: no disk used
    with pytest.raises(DriftboardError, match=f"exceeds the limit of {DEFAULT_LIMITS.file_bytes}"):
        client(url)[0].push(big)
    assert state.seen == []
