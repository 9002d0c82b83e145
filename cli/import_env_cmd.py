"""``driftboard import-env``: a ``collect_env`` report pasted in a bug report becomes an environment-only run."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from driftboard.cli.options import server_options, tags_option, team_server


@click.command("import-env")
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False, path_type=Path))
@click.option("--label", default="", help="Label for the imported environment (default: what the report "
              "names: GPU or CPU, OS and torch, e.g. 'collect_env: NVIDIA A100 · Ubuntu 22.04 · torch 2.5.1').")
@click.option("--note", default="", help="Where the report came from, e.g. an issue URL.")
@tags_option
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Bundle file to write (default: ./driftboard-runs/<run id>.driftboard).")
@click.option("--push", "push", is_flag=True, help="Also store it in the database (see --db).")
@click.option("--db", "db_url", default=None, help="Database URL for --push (default: DRIFTBOARD_DATABASE_URL or the local SQLite file).")
@server_options
def import_env(source: Path, label: str, note: str, tags: tuple[str, ...], output: Path | None, push: bool,
               db_url: str | None, server_url: str | None, token_file: str | None) -> None:
    """Import the output of `python -m torch.utils.collect_env` as an environment-only run.

    SOURCE is a file, or - for standard input. Text around the report (a whole
    issue body, Markdown fences, <details> blocks) is fine. The run has no
    model outputs: compare it with a captured run to see the environment diff
    and the likely causes.

    \b
    Examples:
      driftboard import-env issue-1234.txt --note https://github.com/org/repo/issues/1234 --push
      pbpaste | driftboard import-env - --label "reporter's laptop"
      driftboard import-env issue-1234.txt --push --server https://drift.example.com
    """
    if server_url or token_file:
        if not push:
            from driftboard.core.errors import DriftboardError

            raise DriftboardError("--server goes with --push: add --push, or push the bundle later")
        team_server(server_url, token_file, db_url)  # --db with it, or an unreadable token file: before any work
    from driftboard.cli.terminal import gpu_names
    from driftboard.core.bundle import SUFFIX, write_bundle
    from driftboard.core.collect_env import MAX_CHARS
    from driftboard.core.errors import ReportParseError
    from driftboard.core.imported import run_from_report
    from driftboard.core.run import MemoryArrays
    from driftboard.core.units import fmt_bytes

    max_input = 4 * MAX_CHARS  # bytes read at most: a character is 1 to 4 bytes of UTF-8; the parser counts characters
    if str(source) == "-":
        text = sys.stdin.buffer.read(max_input + 1)
    else:
        try:
            with source.open("rb") as f:
                text = f.read(max_input + 1)
        except OSError as exc:
            raise ReportParseError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(text) > max_input:
        raise ReportParseError(f"input is larger than {fmt_bytes(max_input)}: not a collect_env report")
    run, parsed = run_from_report(text, label=label, note=note, tags=tags)
    path = write_bundle(output or Path("driftboard-runs") / f"{run.run_id}{SUFFIX}", run, MemoryArrays())
    fp = run.fingerprint
    click.echo(f"imported {run.run_id}: torch {(fp.get('torch') or {}).get('version')}, "
               f"{(fp.get('os') or {}).get('distro')}, {gpu_names(fp)}")
    click.echo(f"{parsed.mapped_lines} of {parsed.total_lines} report lines mapped to fingerprint fields; "
               f"{len(parsed.unknown_lines)} unrecognised lines kept")
    if parsed.missing:
        click.echo(f"missing from this report: {', '.join(parsed.missing)}")
    click.echo(f"bundle {path}")
    if push:
        from driftboard.cli.db_cmd import push_paths

        push_paths([path], db_url, server_url=server_url, token_file=token_file)
