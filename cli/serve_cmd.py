"""``driftboard serve``: the dashboard (``dashboard/app.py``) under Streamlit, on one database.

The database is opened here first, so a bad URL or an out-of-date schema is
one line on the terminal rather than a page of errors in the browser, and an
empty embedded SQLite file gets its schema. The dashboard reads the URL from
``$DRIFTBOARD_DATABASE_URL``; the process then becomes Streamlit (``exec``),
so Ctrl+C and ``kill`` reach the server itself.

The access configuration (``--auth``, else ``$DRIFTBOARD_AUTH_FILE``) is read
here too, so a broken file is one line on the terminal, and its path is handed
to the dashboard in ``$DRIFTBOARD_AUTH_FILE``. ``exposure_warnings`` says
what is wrong with the combination of address and policy.

Streamlit runs ``dashboard/served.py``: the app behind driftboard's guards
(``dashboard.guards``), which answer only the Host names computed here
(handed over in ``$DRIFTBOARD_ALLOWED_HOSTS``: loopback names on loopback,
``--public-name`` values, this machine's names on a network) and refuse
Streamlit's "Clear cache" message; Streamlit's menu, which offers it, is
hidden (``client.toolbarMode=minimal``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftboard.cli.db_cmd import db_option
from driftboard.core.processes import python_command
from driftboard.dashboard.guards import is_host_name, is_loopback

if TYPE_CHECKING:
    from driftboard.dashboard.auth import AccessPolicy
    from driftboard.dashboard.guards import HostRule

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"


def app_path() -> Path:
    """The Streamlit entry script of the installed ``driftboard.dashboard``."""
    import driftboard.dashboard

    return Path(driftboard.dashboard.__file__).with_name("app.py")


def served_path() -> Path:
    """What ``streamlit run`` is given: the ``st.App`` around ``app.py`` with driftboard's guards."""
    return app_path().with_name("served.py")


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line (configuration in flags, so no config file can loosen it)."""
    from driftboard.core.bundle import DEFAULT_LIMITS

    return [
        *python_command("-m", "streamlit", "run", str(served_path())),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        f"--server.maxUploadSize={DEFAULT_LIMITS.upload_mb}",
        "--server.enableCORS=true",
        "--server.enableXsrfProtection=true",
        "--client.toolbarMode=minimal",  # no menu, so no "Clear cache" entry (refused server-side too)
        "--browser.gatherUsageStats=false",
        "--client.disableDataExport=true",  # its CSV writes formulas as they are: pages offer tables.csv_bytes
        "--global.showWarningOnDirectExecution=false",
    ]


def allowed_hosts(host: str, public_names: tuple[str, ...]) -> HostRule:
    """The Host names the dashboard answers to (``dashboard.guards.host_rule`` with this machine's names)."""
    from driftboard.dashboard.guards import host_rule

    return host_rule(host, public_names, (socket.gethostname(), socket.getfqdn()))


def _public_name(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not is_host_name(value):
            raise click.BadParameter(f"{value!r} is not a host name (no scheme, port or path: "
                                     "dashboard.example.com)", ctx, param)
    return values


def exposure_warnings(host: str, port: int, policy: AccessPolicy, secrets_dirs: tuple[Path, ...] | None = None,
                      authlib: bool | None = None) -> list[str]:
    """What to warn about before serving: an open dashboard on the network, an OIDC login that cannot work."""
    from driftboard.dashboard.auth import open_writes

    warnings = []
    if not policy.restricted and not is_loopback(host):
        warnings.append(
            f"--host {host} opens the dashboard to the network with no access control: anyone who can reach "
            f"port {port} can read, upload and delete runs and mark goldens. Give it an access configuration with "
            "--auth FILE (mode tokens or oidc; see `driftboard auth hash-token --help` and docs/DEPLOY.md), or "
            "serve on 127.0.0.1 behind a proxy that authenticates.")
    elif (writes := open_writes(policy)) and not is_loopback(host):
        warnings.append(f"--host {host}: the access configuration lets anyone who can reach port {port} "
                        f"{_write_words(writes)} without a token or login")
    if policy.mode == "oidc":
        dirs = secrets_dirs if secrets_dirs is not None else (Path.cwd() / ".streamlit", Path.home() / ".streamlit")
        if not any(_has_auth_section(d / "secrets.toml") for d in dirs):
            warnings.append("mode oidc: no [auth] section in " + " or ".join(str(d / "secrets.toml") for d in dirs)
                            + ": nobody can log in (see docs/DEPLOY.md)")
        if not (authlib if authlib is not None else importlib.util.find_spec("authlib") is not None):
            warnings.append("mode oidc needs Authlib for st.login: pip install 'streamlit[auth]'")
    return warnings


def open_writes_refusal(host: str, policy: AccessPolicy, allowed: bool = False) -> str | None:
    """Why ``serve`` will not start: writes open to everyone on a network address, unless ``allowed`` explicitly.

    The dashboard and its API (``/api/v1/``) answer on the same port: with no
    access file, anyone who reaches it can push, mark goldens and delete.
    """
    from driftboard.dashboard.auth import open_writes

    writes = open_writes(policy)
    if not writes or allowed or is_loopback(host):
        return None
    return (f"--host {host} would let anyone who can reach this server {_write_words(writes)} (the dashboard and "
            "its API /api/v1/) with no token: give an access file with --auth FILE (see `driftboard auth "
            "hash-token --help` and docs/DEPLOY.md), serve on 127.0.0.1 behind an authenticating proxy, or add "
            "--allow-open-writes to mean it")


def _write_words(actions: tuple[str, ...]) -> str:
    from driftboard.dashboard.auth import ACTION_WORDS

    named = [ACTION_WORDS[action] for action in actions]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]


def _has_auth_section(path: Path) -> bool:
    import tomllib

    try:
        return isinstance(tomllib.loads(path.read_text(encoding="utf-8")).get("auth"), dict)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def browse_url(host: str, port: int) -> str:
    shown = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


@click.command()
@db_option
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port to listen on.")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on. The default answers this machine only; 0.0.0.0 opens the dashboard "
                   "to the network (give it --auth then).")
@click.option("--auth", "auth_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Access configuration (TOML: mode tokens or oidc, roles per action) [default: "
                   "DRIFTBOARD_AUTH_FILE, else open: everyone may do everything].")
@click.option("--public-name", "public_names", multiple=True, callback=_public_name, metavar="NAME",
              help="A host name people reach the dashboard by (a DNS name, a reverse proxy's name); repeatable. "
                   "Requests naming any other host are refused (DNS rebinding). Default: the loopback names on "
                   "loopback; this machine's names and IP addresses on a network.")
@click.option("--allow-open-writes", is_flag=True,
              help="Start on a network address even though anyone could push, mark goldens or delete without a "
                   "token (no --auth file). Refused without this flag.")
def serve(db_url: str | None, port: int, host: str, auth_file: Path | None, public_names: tuple[str, ...],
          allow_open_writes: bool) -> None:
    """Start the dashboard in the browser on the database.

    Runs the Streamlit app on this machine's loopback address by default and
    prints its URL. The database is the one every other command uses (--db,
    else DRIFTBOARD_DATABASE_URL, else the local SQLite file, created on first
    use); a database at an older schema is refused with the command that
    upgrades it. Without --auth everyone who reaches the page may upload,
    mark goldens and delete (serve warns when that is beyond this machine);
    with it, those actions need a role (tokens or OIDC login): see
    docs/DEPLOY.md. Without it serve refuses a network address unless given
    --allow-open-writes. The same port serves the team API under /api/v1/
    (bearer tokens from the same file; docs/DEPLOY.md). The dashboard answers
    only requests that name it (--public-name NAME for a name other than this
    machine's).

    \b
    Examples:
      driftboard serve
      driftboard serve --port 8600 --db ./team.sqlite
      driftboard serve --host 0.0.0.0 --db postgresql://driftboard@db.example.com/driftboard --auth team-auth.toml
      driftboard serve --public-name driftboard.example.com --auth team-auth.toml   # behind a TLS proxy
    """
    from driftboard.dashboard import access_file, auth, guards
    from driftboard.db.session import ENV_VAR, database_url, redacted
    from driftboard.db.store import Store

    auth_path = auth_file or os.environ.get(auth.ENV_VAR) or None
    policy = access_file.load_policy(auth_path) if auth_path else auth.OPEN  # AuthConfigError: one line, exit 2
    refusal = open_writes_refusal(host, policy, allow_open_writes)
    if refusal is not None:
        from driftboard.core.errors import DriftboardError

        raise DriftboardError(refusal)
    url = database_url(db_url)
    with Store(url) as store:  # creates an empty SQLite file's schema; refuses an out-of-date one
        runs = store.stats().runs
    for warning in exposure_warnings(host, port, policy):
        click.echo(f"driftboard: warning: {warning}", err=True)
    command = streamlit_command(host, port)
    click.echo(f"driftboard dashboard: {browse_url(host, port)}  (database {redacted(url)}, {runs} runs, access "
               f"{policy.mode}; Ctrl+C stops it)")
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, ENV_VAR: url, guards.ENV_VAR: allowed_hosts(host, public_names).to_env()}
    env.pop(auth.ENV_VAR, None)
    if auth_path:
        env[auth.ENV_VAR] = str(Path(auth_path).absolute())
    os.execve(command[0], command, env)
