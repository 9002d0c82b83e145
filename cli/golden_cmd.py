"""``driftboard golden``: mark, list and clear golden baselines in the database or on a team server."""

from __future__ import annotations

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import server_options, team_server


@click.group()
def golden() -> None:
    """Golden baselines: the run every other run of its suite and device class is judged against.

    \b
    Examples:
      driftboard golden set 20261124T220758Z-2ea8 --reason "A100 node before the driver upgrade"
      driftboard golden list
    """


@golden.command("set")
@click.argument("run_id")
@click.option("--name", default="default", show_default=True, help="Baseline name (several may coexist).")
@click.option("--reason", default="", help="Why this run is the baseline.")
@click.option("--by", "set_by", default=None,
              help="Who sets it (default: $DRIFTBOARD_UPLOADER, else your login; with --server, the token's member).")
@db_option
@server_options
def set_golden(run_id: str, name: str, reason: str, set_by: str | None, db_url: str | None, server_url: str | None,
               token_file: str | None) -> None:
    """Make RUN_ID (or an unambiguous prefix) the golden for its suite version and device class.

    \b
    Example:
      driftboard golden set 20261124T220758Z --reason "first run of the new cluster"
      driftboard golden set 20261124T220758Z --server https://drift.example.com   (an admin's token)
    """
    mark_golden(run_id, name=name, reason=reason, set_by=set_by, db_url=db_url, server_url=server_url,
                token_file=token_file)


def mark_golden(run_id: str, *, name: str = "default", reason: str = "", set_by: str | None = None,
                db_url: str | None = None, server_url: str | None = None, token_file: str | None = None) -> None:
    """Set the golden and say so; ``driftboard capture --push --golden`` calls this too."""
    from driftboard.cli.db_cmd import _default_uploader
    from driftboard.db.store import Store

    server = team_server(server_url, token_file, db_url)
    if server is not None:
        from driftboard.core.errors import DriftboardError
        from driftboard.db.remote import golden_marks

        if set_by:
            raise DriftboardError("--by does not go with --server: the server records the member whose token it is")
        mark = golden_marks({"goldens": [server.set_golden(run_id, name=name, reason=reason)]})[0]
    else:
        with Store(db_url) as store:
            mark = store.set_golden(run_id, name=name, set_by=set_by or _default_uploader(), reason=reason)
    key = mark.key
    click.echo(f"{mark.run_id} is now golden {key.name!r} for {key.suite_id} v{key.suite_version} on {key.device_class}")


@golden.command("list")
@db_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="Print the goldens as JSON (format driftboard.goldens).")
def list_goldens(db_url: str | None, server_url: str | None, token_file: str | None, as_json: bool) -> None:
    """List the goldens with who set them, when and why.

    \b
    Example:
      driftboard golden list --db ./team.sqlite
      driftboard golden list --json
      driftboard golden list --server https://drift.example.com
    """
    import json

    server = team_server(server_url, token_file, db_url)
    if server is not None:
        from driftboard.db.remote import golden_marks

        doc = server.goldens()
        marks = golden_marks(doc)
    else:
        from driftboard.db.documents import goldens_document
        from driftboard.db.store import Store

        with Store(db_url) as store:
            marks = store.goldens()
        doc = goldens_document(marks)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    if not marks:
        click.echo("no golden baseline set: driftboard golden set RUN_ID")
    for mark in marks:
        key = mark.key
        click.echo(f"{key.name}\t{key.suite_id} v{key.suite_version}\t{key.device_class}\t{mark.run_id}\t"
                   f"{mark.set_at:%Y-%m-%d %H:%M}\t{mark.set_by}\t{mark.reason}")


@golden.command("clear")
@click.argument("run_id")
@click.option("--name", default="default", show_default=True, help="Baseline name.")
@db_option
@server_options
def clear_golden(run_id: str, name: str, db_url: str | None, server_url: str | None, token_file: str | None) -> None:
    """Remove the golden that applies to RUN_ID's suite version and device class.

    \b
    Example:
      driftboard golden clear 20261124T220758Z
      driftboard golden clear 20261124T220758Z --server https://drift.example.com   (an admin's token)
    """
    from driftboard.cli.db_cmd import _default_uploader
    from driftboard.core.errors import NotFoundError
    from driftboard.db.store import Store
    from driftboard.db.store.goldens import no_golden_text

    server = team_server(server_url, token_file, db_url)
    if server is not None:
        from driftboard.db.remote import golden_marks

        mark = golden_marks({"goldens": [server.clear_golden(run_id, name=name)["cleared"]]})[0]
    else:
        with Store(db_url) as store:
            mark = store.golden_for(run_id, name=name)
            if mark is None or not store.clear_golden(mark.key, actor=_default_uploader()):
                run = store.run(run_id)
                raise NotFoundError(no_golden_text(run.run_id, case_count=run.case_count, imported=run.imported,
                                                   name=name))
    click.echo(f"cleared golden {name!r} ({mark.run_id}) for {mark.key.suite_id} v{mark.key.suite_version} "
               f"on {mark.key.device_class}")
