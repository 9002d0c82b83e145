"""Options more than one command shares, checked before any work starts."""

from __future__ import annotations

from typing import Any

import click


def _checked_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from driftboard.core.bundle import tags_problem

    problem = tags_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def tags_option(command: Any) -> Any:
    """``--tag`` (repeatable), refused at once when the bundle reader would refuse it later."""
    return click.option("--tag", "tags", multiple=True, callback=_checked_tags,
                        help="Tag (repeatable; at most 64, each at most 64 characters).")(command)


def policy_option(command: Any) -> Any:
    """``--policy``: the tolerance every comparing command takes, with one help text."""
    return click.option("--policy", default="default", show_default=True,
                        help="Tolerance: bitwise, ulp:N, rtol=R,atol=A (both), default (torch.testing's "
                             "per-dtype rtol/atol), or learned per case: repeats[:factor=F] (the baseline's "
                             "run-to-run spread x F) or fleet[:factor=F,runs=N] (the largest error of the golden's "
                             "accepted runs x F, from the database; default factor 2, runs 3).")(command)


def server_options(command: Any) -> Any:
    """``--server URL`` and ``--token-file PATH``: a team server instead of a database (``db.remote``).

    The token is never an option's value: process lists are readable by every user of the machine.
    """
    command = click.option(
        "--token-file", type=click.Path(dir_okay=False), default=None, metavar="PATH",
        help="With --server: read the token from this file's first line (default: $DRIFTBOARD_TOKEN).")(command)
    return click.option(
        "--server", "server_url", metavar="URL", default=None,
        help="A team server (driftboard serve) instead of --db, e.g. https://drift.example.com; the token comes "
             "from $DRIFTBOARD_TOKEN or --token-file.")(command)


def team_server(server_url: str | None, token_file: str | None, db_url: str | None = None) -> Any:
    """The ``TeamServer`` of ``--server`` (None without it); ``--db`` with it is one line, exit status 2."""
    from driftboard.core.errors import DriftboardError

    if server_url and db_url:
        raise DriftboardError("--db and --server are alternatives: give one of them")
    if token_file and not server_url:
        raise DriftboardError("--token-file goes with --server (a database has no tokens)")
    if not server_url:
        return None
    from driftboard.db.remote import TeamServer, read_token

    return TeamServer(server_url, read_token(token_file))
