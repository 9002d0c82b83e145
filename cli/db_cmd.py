"""``driftboard db``, ``driftboard push`` and ``driftboard runs``: the database from the command line.

Each command resolves the database with ``db.session.database_url`` (``--db``,
else ``$DRIFTBOARD_DATABASE_URL``, else a SQLite file in the user's data
directory), calls one ``db`` function and prints the result.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from driftboard.cli.options import server_options, team_server
from driftboard.core.errors import DriftboardError
from driftboard.core.units import fmt_bytes

if TYPE_CHECKING:
    from driftboard.db.push import PushOutcome
    from driftboard.db.remote import TeamServer
    from driftboard.db.store import ArrayRepair, IngestResult, RunSummary


def _db_help() -> str:
    from driftboard.db.location import ENV_VAR, default_database_path

    # "\b" keeps click from re-wrapping the path's paragraph: a long home directory must not be cut mid-word.
    return (f"Database: an SQLAlchemy URL (postgresql://user@host/db) or a SQLite file path. "
            f"Default: ${ENV_VAR}, else the SQLite file\n\n\b\n{default_database_path()}")


def db_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db_url", metavar="URL", default=None, help=_db_help())(command)


# ---------------------------------------------------------------- driftboard db


@click.group()
def db() -> None:
    """Manage the driftboard database: create it, migrate its schema, check and repair its arrays.

    Runs are kept in a SQLite file in your user data directory unless --db or
    DRIFTBOARD_DATABASE_URL names another database (any SQLAlchemy URL; a team
    uses PostgreSQL, through psycopg 3).

    \b
    Examples:
      driftboard db upgrade
      driftboard db upgrade --db postgresql://driftboard@db.example.com/driftboard
      driftboard db status
      driftboard db repair ~/driftboard-runs/
    """


@db.command("upgrade")
@db_option
def upgrade(db_url: str | None) -> None:
    """Create the schema, or migrate it to this driftboard's version.

    driftboard refuses a database whose schema is older (or newer) than its own
    and prints this command. A new SQLite database is created on first use; a
    PostgreSQL database (even an empty one) changes schema only through this
    command, so a team database is never migrated as a side effect.

    \b
    Examples:
      driftboard db upgrade
      driftboard db upgrade --db ./team.sqlite
      DRIFTBOARD_DATABASE_URL=postgresql://ci@db/driftboard driftboard db upgrade
    """
    from driftboard.db.migrate import upgrade as run_upgrade
    from driftboard.db.session import database_url, make_engine, redacted

    url = database_url(db_url)
    engine = make_engine(url)
    try:
        before, after = run_upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"database {redacted(url)} is up to date (schema revision {', '.join(after)})")
    else:
        click.echo(f"database {redacted(url)} upgraded: schema revision {', '.join(before) or 'none'} "
                   f"-> {', '.join(after)}")


@db.command("status")
@db_option
def status(db_url: str | None) -> None:
    """Show which database is used, its schema revision and what it holds.

    Exits with status 2 when the schema is not this driftboard's (the message
    names the command that upgrades it).

    \b
    Example:
      driftboard db status --db ./team.sqlite
    """
    from driftboard.db.migrate import head_revision
    from driftboard.db.session import redacted
    from driftboard.db.store import Store

    with Store(db_url, create_if_empty=False) as store:
        stats = store.stats()
        click.echo(f"database {redacted(store.url)}: schema revision {head_revision()} (current)")
        click.echo(f"{stats.runs} runs from {stats.machines} machines, {stats.environments} environments, "
                   f"{stats.arrays} distinct arrays ({fmt_bytes(stats.stored_bytes)} stored, "
                   f"{fmt_bytes(stats.array_bytes)} raw)")


@db.command("repair")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@db_option
def repair(sources: tuple[Path, ...], db_url: str | None) -> None:
    """Find stored arrays whose stored bytes are not exactly the array, and rewrite them.

    Every stored array is inflated and checked against its sha256; bytes after
    the end of its stream count as damage too. A bad array whose stored bytes
    still begin with the array is rewritten from them; any other is taken from
    the SOURCES, bundle files or directories searched for *.driftboard files.
    One line per bad array (and per source that cannot be read). The exit
    status is 1 when an array is left unrepaired: its line names the runs that
    need it, and a bundle of any of them repairs it.

    \b
    Examples:
      driftboard db repair
      driftboard db repair --db postgresql://admin@db.example.com/driftboard ~/driftboard-runs/
    """
    import sys

    from driftboard.db.store import Store

    with Store(db_url, create_if_empty=False) as store:
        report = store.repair_arrays(sources)
    for line in report.skipped_sources:
        click.echo(f"source {line} (skipped)", err=True)
    for array in report.arrays:
        click.echo(_repair_line(array))
    unrepaired = len(report.unrepaired)
    click.echo(f"checked {report.checked:,} array{'s' if report.checked != 1 else ''}: "
               + (f"{len(report.arrays) - unrepaired} repaired, {unrepaired} not repaired" if report.arrays
                  else "every one is whole"))
    if unrepaired:
        sys.exit(1)  # not ctx.exit: cli.main runs click with standalone_mode=False, which drops its code


def _repair_line(array: ArrayRepair) -> str:
    name = f"array {array.sha256[:12]}…"
    if array.repaired:
        return f"{name}: repaired from {array.source} ({array.problem})"
    runs = ", ".join(array.runs[:3]) + (f" and {len(array.runs) - 3} more" if len(array.runs) > 3 else "")
    if not array.runs:
        return f"{name}: not repaired ({array.problem}); no run needs it"
    return (f"{name}: not repaired ({array.problem}); needed by run{'s' if len(array.runs) != 1 else ''} {runs}: "
            "give a bundle of one of them as a SOURCE")


# ---------------------------------------------------------------- driftboard push


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@db_option
@server_options
@click.option("--uploader", default=None,
              help="Who is uploading, for SQLite, which knows no users (default: $DRIFTBOARD_UPLOADER, else your "
                   "login). PostgreSQL records your database login; a pusher cannot name anyone else.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors.")
def push(files: tuple[Path, ...], db_url: str | None, server_url: str | None, token_file: str | None,
         uploader: str | None, quiet: bool) -> None:
    """Store run bundles in the database, or on a team server (--server).

    Each bundle is validated in full, then stored in one transaction: all of it
    or nothing. Pushing a bundle already stored changes nothing and says so. A
    bad bundle is reported and the others are still stored; the exit status is
    2 if any was not. A SQLite database locked by another writer is waited for
    (30 s, or $DRIFTBOARD_SQLITE_BUSY_TIMEOUT seconds), then the push stops and
    names each bundle it did not try: push them again later.

    With --server the bundles go to a team server over HTTP(S) with a token
    ($DRIFTBOARD_TOKEN or --token-file), which validates and stores them the
    same way and records the token's member as the uploader. Failed connections
    and server errors are retried with backoff; a retried push never stores a
    run twice (the server knows it by its id and content).

    \b
    Examples:
      driftboard push laptop.driftboard
      driftboard push runs/*.driftboard --db postgresql://me@db.example.com/driftboard
      DRIFTBOARD_TOKEN=… driftboard push runs/*.driftboard --server https://drift.example.com
    """
    push_paths(files, db_url, uploader=uploader, quiet=quiet, server_url=server_url, token_file=token_file)


def push_paths(paths: Sequence[str | Path], db_url: str | None, *, uploader: str | None = None,
               quiet: bool = False, server_url: str | None = None,
               token_file: str | None = None) -> list[Any]:
    """Push bundle files with ``db.push.push_files``, printing one line each; raises after all if any failed.

    ``driftboard capture --push`` and ``import-env --push`` call this too. With ``server_url`` the files go
    to that team server: the results are then ``db.remote.PushReply`` (run id, stored, verdict), not
    ``IngestResult``; both have ``run_id``.
    """
    server = team_server(server_url, token_file, db_url)
    if server is not None:
        if uploader is not None:
            raise DriftboardError("--uploader does not go with --server: the server records the member whose "
                                  "token pushes")
        return _push_to_server(server, paths, quiet=quiet)
    from driftboard.db.push import push_files
    from driftboard.db.store import Store

    def show(outcome: PushOutcome) -> None:
        if outcome.result is None:
            detail = outcome.error if outcome.status == "not attempted" else f"not stored: {outcome.error}"
            click.echo(f"{outcome.name}: {detail}", err=True)
        elif not quiet:
            click.echo(_pushed_line(outcome.name, outcome.result))

    with Store(db_url) as store:
        # PostgreSQL knows who logged in, and records that name unless told another: only SQLite needs a default
        default = _default_uploader() if store.dialect == "sqlite" else ""
        who = uploader if uploader is not None else default
        outcomes = push_files(store, list(paths), uploader=who, report=show)
    failed = sum(1 for outcome in outcomes if outcome.result is None)
    if failed:
        raise DriftboardError(f"{failed} of {len(paths)} bundle{'s' if len(paths) > 1 else ''} not stored")
    return [outcome.result for outcome in outcomes if outcome.result is not None]


def _push_to_server(server: TeamServer, paths: Sequence[str | Path], *, quiet: bool) -> list[Any]:
    """``push_paths`` to a team server: one line per file, the server's verdict when it judged the run."""
    from driftboard.db.remote import RemoteOutcome, push_many

    def show(outcome: RemoteOutcome) -> None:
        reply = outcome.reply
        if reply is None:
            click.echo(f"{outcome.name}: {outcome.error}", err=True)
        elif not quiet:
            judged = f"verdict {reply.verdict} against golden {reply.golden}" if reply.verdict and reply.golden \
                else "no golden applies"
            click.echo(f"{outcome.name}: stored run {reply.run_id} on {server.url} ({judged})" if reply.stored
                       else f"{outcome.name}: already stored as run {reply.run_id} on {server.url}, nothing written")

    outcomes = push_many(server, paths, report=show)
    failed = sum(1 for outcome in outcomes if outcome.reply is None)
    if failed:
        raise DriftboardError(f"{failed} of {len(paths)} bundle{'s' if len(paths) > 1 else ''} not stored")
    return [outcome.reply for outcome in outcomes]


def _pushed_line(path: str | Path, result: IngestResult) -> str:
    if not result.created:
        return f"{path}: already stored as run {result.run_id} (same bundle {result.bundle_digest[:12]}), nothing written"
    return (f"{path}: stored run {result.run_id} ({result.case_count} cases, {result.new_arrays} new arrays, "
            f"{fmt_bytes(result.new_bytes)})")


def _default_uploader() -> str:
    try:
        return os.environ.get("DRIFTBOARD_UPLOADER") or getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return ""


# ---------------------------------------------------------------- driftboard runs


class _When(click.ParamType):
    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date | datetime:
        if isinstance(value, (date, datetime)):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            when = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command()
@db_option
@server_options
@click.option("--machine", help="Only this machine (hostname or machine key).")
@click.option("--label", help="Label contains this text (case-insensitive).")
@click.option("--tag", "tags", multiple=True, help="Has this tag (repeatable: every one).")
@click.option("--since", type=_When(), help="Captured on or after this date/time (UTC unless given).")
@click.option("--until", type=_When(), help="Captured before this time, or up to the end of this date.")
@click.option("--torch", help="torch version: 2.5 matches 2.5.x.")
@click.option("--cuda", help="CUDA version: 12 matches 12.x.")
@click.option("--cudnn", help="cuDNN version.")
@click.option("--driver", help="NVIDIA driver version: 535 matches 535.x.")
@click.option("--gpu", help="GPU model contains this text, e.g. A100.")
@click.option("--cpu-capability", help="ATen CPU capability, e.g. AVX512.")
@click.option("--variant", help="Settings variant, e.g. default, threads-1.")
@click.option("--verdict", help="Worst verdict against the golden, e.g. drift, identical, 'within tolerance'.")
@click.option("--golden", default="default", show_default=True, help="Name of the golden to judge against.")
@click.option("--policy", default="default", show_default=True, help="Tolerance policy of the verdicts.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(1), help="Page number.")
@click.option("--per-page", default=50, show_default=True, type=click.IntRange(1, 1000), help="Runs per page.")
@click.option("--json", "as_json", is_flag=True, help="Print the page as JSON.")
def runs(db_url: str | None, server_url: str | None, token_file: str | None, machine: str | None,
         label: str | None, tags: tuple[str, ...],
         since: date | datetime | None, until: date | datetime | None, torch: str | None, cuda: str | None,
         cudnn: str | None, driver: str | None, gpu: str | None, cpu_capability: str | None,
         variant: str | None, verdict: str | None, golden: str, policy: str, page: int, per_page: int,
         as_json: bool) -> None:
    """List stored runs, newest first, with their verdict against the golden.

    Verdicts are computed once per (golden, run) pair and kept; with --verdict,
    every run not judged yet is judged first. Wherever a command takes a run
    id (compare, report, golden set, audit's runs), a unique prefix of it works
    too.

    \b
    Examples:
      driftboard runs
      driftboard runs --machine gpu-node-3 --since 2025-01-01
      driftboard runs --torch 2.5 --gpu A100 --verdict drift --json
      driftboard runs --server https://drift.example.com --machine gpu-node-3
    """
    server = team_server(server_url, token_file, db_url)
    if server is not None:
        wanted = {"machine": machine, "label": label, "tag": tags, "since": since, "until": until, "torch": torch,
                  "cuda": cuda, "cudnn": cudnn, "driver": driver, "gpu": gpu, "cpu_capability": cpu_capability,
                  "variant": variant, "verdict": verdict, "golden": golden if golden != "default" else None,
                  "policy": policy if policy != "default" else None, "page": page, "per_page": per_page}
        _print_runs(server.runs(wanted), as_json=as_json, page=page)
        return
    from driftboard.db.documents import runs_document, runs_page
    from driftboard.db.store import RunFilter, Store

    filters = RunFilter(machine=machine, label=label, tags=tags, since=since, until=until, torch=torch, cuda=cuda,
                        cudnn=cudnn, driver=driver, gpu=gpu, cpu_capability=cpu_capability, variant=variant,
                        verdict=verdict, golden=golden, policy=policy)
    with Store(db_url) as store:
        result = runs_page(store, filters, page=page, per_page=per_page)
    _print_runs(runs_document(result), as_json=as_json, page=page)


def _print_runs(doc: dict[str, Any], *, as_json: bool, page: int) -> None:
    """A ``driftboard.runs`` document (from the database or a team server) as JSON, or as the table."""
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    from driftboard.db.remote import run_page

    result = run_page(doc)
    if not result.runs:
        click.echo("no runs" if result.total == 0 else f"no runs on page {page} (of {result.pages})")
        return
    click.echo(_table(result.runs))
    click.echo(f"page {result.page} of {result.pages}, {result.total} run{'s' if result.total != 1 else ''}")


# (title, widest cell before it is cut with "…", value). Run ids are never cut: they are typed back.
_COLUMNS: tuple[tuple[str, int, Callable[[RunSummary], str]], ...] = (
    ("RUN", 200, lambda r: r.run_id),
    ("CAPTURED (UTC)", 16, lambda r: r.captured_at.strftime("%Y-%m-%d %H:%M")),
    ("MACHINE", 18, lambda r: r.hostname or r.machine_key[:12]),
    ("LABEL", 20, lambda r: r.label),
    ("VARIANT", 16, lambda r: r.variant),
    ("TORCH", 14, lambda r: r.environment.torch_version or "-"),
    ("CUDA", 6, lambda r: r.environment.cuda or "-"),
    ("GPU / CPU", 24, lambda r: r.environment.gpu_model or r.environment.cpu_capability or "-"),
    ("VERDICT", 16, lambda r: r.verdict or ("imported" if r.imported else "-")),
)


def _table(rows: Sequence[RunSummary]) -> str:
    """Fixed columns; a verdict in its colour (click drops colours when the output is not a terminal)."""
    from driftboard.cli.verdicts import ansi
    from driftboard.core.compare.verdict import Verdict

    words = {v.value for v in Verdict}

    def cell(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    def padded(title: str, text: str, width: int, w: int) -> str:
        shown = cell(text, width)
        coloured = ansi(text, shown) if title == "VERDICT" and text in words else shown
        return coloured + " " * (w - len(shown))  # padded outside the colour codes, which have no width

    widths = [max(len(title), *(len(cell(get(r), width)) for r in rows)) for title, width, get in _COLUMNS]
    lines = ["  ".join(title.ljust(w) for (title, _, _), w in zip(_COLUMNS, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("  ".join(padded(title, get(r), width, w)
                               for (title, width, get), w in zip(_COLUMNS, widths, strict=True)).rstrip())
    return "\n".join(lines)
