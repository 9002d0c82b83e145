"""``driftboard serve``: the dashboard (``dashboard/app.py``) under Streamlit, on one database.

The database is opened here first, so a bad URL or an out-of-date schema is
one line on the terminal rather than a page of errors in the browser, and an
empty embedded SQLite file gets its schema. The dashboard reads the URL from
``$DRIFTBOARD_DATABASE_URL``; the process then becomes Streamlit (``exec``),
so Ctrl+C and ``kill`` reach the server itself.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import sys
from pathlib import Path

import click

from core.cli.db_cmd import db_option

DEFAULT_PORT = 8501
DEFAULT_HOST = "127.0.0.1"


def app_path() -> Path:
    """``dashboard/app.py`` of the installed package."""
    spec = importlib.util.find_spec("dashboard")
    if spec is None or not spec.submodule_search_locations:
        raise click.ClickException("the dashboard package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def streamlit_command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line (configuration in flags, so no config file can loosen it)."""
    from dashboard.uploads import MAX_UPLOAD_MB

    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.headless=true",
        f"--server.address={host}",
        f"--server.port={port}",
        "--server.fileWatcherType=none",
        f"--server.maxUploadSize={MAX_UPLOAD_MB}",
        "--browser.gatherUsageStats=false",
        "--global.showWarningOnDirectExecution=false",
    ]


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
                   "to the network (it has no access control yet).")
def serve(db_url: str | None, port: int, host: str) -> None:
    """Start the dashboard in the browser on the database.

    Runs the Streamlit app on this machine's loopback address by default and
    prints its URL. The database is the one every other command uses (--db,
    else DRIFTBOARD_DATABASE_URL, else the local SQLite file, created on first
    use); a database at an older schema is refused with the command that
    upgrades it.

    \b
    Examples:
      driftboard serve
      driftboard serve --port 8600 --db ./team.sqlite
      driftboard serve --host 0.0.0.0 --db postgresql://driftboard@db.example.com/driftboard
    """
    from db.session import ENV_VAR, database_url, redacted
    from db.store import Store

    url = database_url(db_url)
    with Store(url) as store:  # creates an empty SQLite file's schema; refuses an out-of-date one
        runs = store.stats().runs
    if not is_loopback(host):
        click.echo(f"driftboard: warning: --host {host} opens the dashboard to the network, and it has no access "
                   f"control yet: anyone who can reach port {port} can read, upload and delete runs.", err=True)
    command = streamlit_command(host, port)
    click.echo(f"driftboard dashboard: {browse_url(host, port)}  (database {redacted(url)}, {runs} runs; "
               "Ctrl+C stops it)")
    sys.stdout.flush()
    sys.stderr.flush()
    env = {**os.environ, ENV_VAR: url}
    os.execve(command[0], command, env)
