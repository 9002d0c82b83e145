"""``driftboard log``: the write log, newest first (pushes, deletes, goldens set or cleared, explanations kept: who, when, where)."""

from __future__ import annotations

import json

import click

from driftboard.cli.db_cmd import db_option

ACTIONS = ("push", "delete", "golden-set", "golden-clear", "explain")  # db.store.write_log.ACTIONS (not imported for --help)


@click.command()
@db_option
@click.option("--limit", "-n", default=50, show_default=True, type=click.IntRange(1, 10_000),
              help="Show at most this many entries.")
@click.option("--action", type=click.Choice(ACTIONS), default=None, help="Only this kind of write.")
@click.option("--actor", default=None, help="Only the writes of this uploader, member or login (exactly).")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON (format driftboard.write_log).")
def log(db_url: str | None, limit: int, action: str | None, actor: str | None, as_json: bool) -> None:
    """Show the newest writes to the database: pushes, deletes, golden set and clear, explanations kept.

    Each write is logged in the same transaction as the write itself, with
    who made it (the uploader, the dashboard member or token, else the
    database login), when, the run, from which address, and through which
    channel: cli (a command or the Python API), page (the dashboard) or api
    (the team server's HTTP API). A refused or duplicate push writes nothing
    and logs nothing.

    \b
    Examples:
      driftboard log
      driftboard log --action golden-set --limit 10
      driftboard log --db postgresql://admin@db.example.com/driftboard --json
    """
    from driftboard.db.store import Store
    from driftboard.db.store.write_log import write_log_document

    with Store(db_url) as store:
        entries = store.write_log(limit=limit, action=action, actor=actor)
    if as_json:
        click.echo(json.dumps(write_log_document(entries), indent=2))
        return
    if not entries:
        click.echo("no writes logged" + (" matching the filters" if action or actor else ""))
        return
    for entry in entries:
        click.echo("\t".join((f"{entry.at:%Y-%m-%d %H:%M:%S}", entry.action, entry.channel, entry.actor or "-",
                              entry.address or "-", entry.run_id or "-", entry.detail)))
