"""``driftboard serve``: the Streamlit command it becomes, the database it prepares, the warnings it gives."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from click.testing import CliRunner

from driftboard.cli import main, serve_cmd
from driftboard.dashboard import guards
from driftboard.dashboard.guards import HostRule
from driftboard.db.session import ENV_VAR
from driftboard.db.store import Store


@pytest.fixture
def execs(monkeypatch) -> list[tuple[str, list[str], dict[str, str]]]:
    """Record the exec into Streamlit instead of doing it."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(serve_cmd.os, "execve", lambda path, args, env: calls.append((path, list(args), dict(env))))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return calls


def test_serve_runs_the_app_on_loopback_with_the_database_in_the_environment(tmp_path, execs):
    db = tmp_path / "new" / "team.sqlite"
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(db), "--port", "8642"])
    assert result.exit_code == 0, result.output
    [(path, args, env)] = execs
    assert args[:5] == [path, "-P", "-m", "streamlit", "run"]
    assert args[5] == str(serve_cmd.served_path()) and serve_cmd.app_path().is_file()
    for flag in ("--server.headless=true", "--server.address=127.0.0.1", "--server.port=8642",
                 "--browser.gatherUsageStats=false"):
        assert flag in args
    assert HostRule.from_env(env[guards.ENV_VAR]) == HostRule(frozenset({"localhost", "127.0.0.1", "::1"}))
    assert env[ENV_VAR] == f"sqlite:///{db}"
    assert "http://127.0.0.1:8642" in result.output
    assert "warning" not in result.output
    with Store(env[ENV_VAR], create_if_empty=False) as store:  # the empty file got its schema
        assert store.stats().runs == 0


def test_serve_warns_when_the_host_opens_it_to_the_network(tmp_path, execs):
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                                  "--allow-open-writes"])
    assert result.exit_code == 0, result.output
    assert "--server.address=0.0.0.0" in execs[0][1]
    assert "opens the dashboard to the network" in result.stderr
    assert "no access control" in result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_hosts_give_no_warning(host):
    assert serve_cmd.is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "dashboard.example.com"])
def test_other_hosts_are_not_loopback(host):
    assert not serve_cmd.is_loopback(host)


def test_serve_refuses_a_database_it_cannot_use_in_one_line(tmp_path, execs, capsys):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x)")
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", str(path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("driftboard: error: ") and "driftboard db upgrade" in err and "\n" not in err
    assert execs == []


def test_serve_uses_the_environment_database_by_default(tmp_path, execs, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv(ENV_VAR, url)
    result = CliRunner().invoke(serve_cmd.serve, [])
    assert result.exit_code == 0, result.output
    assert execs[0][2][ENV_VAR] == url


def test_serve_has_help_with_examples():
    result = CliRunner().invoke(serve_cmd.serve, ["--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "driftboard serve --port" in result.output


def test_served_is_the_dashboard_behind_the_guards():
    """``streamlit run`` must find the st.App in served.py (it reads the file's source), around app.py."""
    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(serve_cmd.served_path())
    assert found.is_asgi_app and found.import_string == "served:app"
    source = serve_cmd.served_path().read_text()
    assert 'st.App("app.py"' in source and "HostGuard" in source and "ClearCacheGuard" in source


def test_serve_hides_streamlits_menu_and_keeps_its_origin_checks(tmp_path, execs):
    """No "Clear cache" in a menu (the message is refused server-side too), CORS and XSRF checks pinned on."""
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 0, result.output
    args = execs[0][1]
    for flag in ("--client.toolbarMode=minimal", "--server.enableCORS=true", "--server.enableXsrfProtection=true"):
        assert flag in args


def test_public_names_are_added_to_the_hosts_the_dashboard_answers(tmp_path, execs):
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--public-name",
                                                  "Driftboard.Example.com", "--public-name", "drift.internal"])
    assert result.exit_code == 0, result.output
    rule = HostRule.from_env(execs[0][2][guards.ENV_VAR])
    assert rule.names == {"localhost", "127.0.0.1", "::1", "driftboard.example.com", "drift.internal"}
    assert not rule.any_ip


def test_a_network_bind_answers_this_machines_names_and_addresses(tmp_path, execs):
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                                  "--allow-open-writes"])
    assert result.exit_code == 0, result.output
    rule = HostRule.from_env(execs[0][2][guards.ENV_VAR])
    assert rule.any_ip and socket.gethostname().lower() in rule.names
    assert rule.allows(f"{socket.gethostname()}:8501") and rule.allows("192.0.2.10:8501")
    assert not rule.allows("evil.example:8501")


@pytest.mark.parametrize("name", ["https://driftboard.example.com", "driftboard.example.com:443", "a/b", "-x", ""])
def test_a_public_name_that_is_not_a_host_name_is_refused(tmp_path, execs, name):
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--public-name", name])
    assert result.exit_code == 2 and "--public-name" in result.output and "is not a host name" in result.output
    assert execs == []



def test_serve_refuses_a_network_address_with_writes_open_to_everyone(tmp_path, execs, capsys):
    """No access file means anyone could push, mark goldens and delete, through the page and /api/v1/."""
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0"])
    assert exit_info.value.code == 2 and execs == []
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--allow-open-writes" in err and "--auth FILE" in err
    assert "push runs, mark goldens and delete runs" in err and "/api/v1/" in err


def test_a_file_that_opens_uploads_to_everyone_is_refused_on_the_network_too(tmp_path, execs, capsys):
    from driftboard.dashboard.auth import hash_token

    path = tmp_path / "auth.toml"
    path.write_text(f'mode = "tokens"\nupload = "open"\n[tokens.a]\nrole = "admin"\nhash = "{hash_token("x")}"\n')
    with pytest.raises(SystemExit):
        main(["serve", "--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0", "--auth", str(path)])
    assert "push runs" in capsys.readouterr().err and execs == []
    result = CliRunner().invoke(serve_cmd.serve, ["--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                                  "--auth", str(path), "--allow-open-writes"])
    assert result.exit_code == 0 and "without a token or login" in result.stderr and len(execs) == 1
    assert serve_cmd.open_writes_refusal("127.0.0.1", auth_open()) is None  # loopback: this machine only


def auth_open():
    from driftboard.dashboard.auth import OPEN

    return OPEN
