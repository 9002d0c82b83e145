"""``driftboard explain``: which setting of this machine reproduces the other run?

Thin: resolve both runs, call ``core.explain.rerun.explain_runs`` with a
progress bar, print the finding (or the ``driftboard.explanation`` JSON), write
it with ``-o``, and keep it in the database when both runs are stored there
(with ``--server``: the runs come from the team server, and it is kept there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import policy_option, server_options, team_server
from driftboard.core.errors import DriftboardError

EPILOG = """\b
Examples:
  driftboard explain golden.driftboard laptop.driftboard
  driftboard explain 20261130T1901 20261130T1915 --budget 120 -o explanation.json
  driftboard explain golden.driftboard ci.driftboard --this-machine candidate --json
  driftboard explain --server https://drift.example.com 20261130T1901 20261130T1915
  driftboard explain golden.driftboard gpu3.driftboard --model models/encoder.py:build
"""


@click.command(epilog=EPILOG)
@click.argument("baseline")
@click.argument("candidate")
@policy_option
@click.option("--this-machine", "this_side", type=click.Choice(["auto", "baseline", "candidate"]), default="auto",
              show_default=True, help="Which run this machine recorded (auto: by the machine id in the fingerprints).")
@click.option("--budget", type=click.FloatRange(min=1), default=600, show_default=True, metavar="SECONDS",
              help="Wall time allowed: settings that do not fit are not run, and the report says which.")
@click.option("--model", "models", multiple=True, metavar="FILE.py:FACTORY|MODULE:FACTORY",
              help="Declares an own-model case to re-run, as capture takes it (repeatable); differing own cases "
                   "are matched by name.")
@click.option("--cases", "cases_file", type=click.Path(dir_okay=False),
              help="The cases file declaring the own-model cases (default: the one capture finds by itself: "
                   "[tool.driftboard] cases in pyproject.toml, else driftboard_cases.py here or at the repository "
                   "root).")
@click.option("--json", "as_json", is_flag=True, help="Print the driftboard.explanation JSON document.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the JSON document to this file.")
@db_option
@server_options
def explain(baseline: str, candidate: str, policy: str, this_side: str, budget: float, models: tuple[str, ...],
            cases_file: str | None, as_json: bool, output: str | None, db_url: str | None,
            server_url: str | None, token_file: str | None) -> None:
    """Re-run the cases that differ between BASELINE and CANDIDATE on this machine, once per numerics knob.

    Threads, oneDNN, TF32, cuDNN deterministic/benchmark, deterministic
    algorithms, float32 matmul precision and each other ATEN_CPU_CAPABILITY are
    toggled one at a time, each in a fresh process (then pairs of the knobs
    that moved something), and each re-run is matched with the other run's
    recorded outputs: which setting reproduces it bit for bit, or within
    tolerance? BASELINE and CANDIDATE are bundle files or stored run ids.

    Differing cases of the team's own models are re-run too, in the same
    processes, when this machine declares them as capture would find them
    (--model, --cases, else the cases file found by itself); one declared
    nowhere here is skipped, and the report says which option declares it.
    """
    from driftboard.cli.compare_cmd import resolve_run
    from driftboard.core.compare import parse_policy
    from driftboard.core.explain.rerun import OwnCases, check_pair, explain_runs, this_machine

    rule = parse_policy(policy)
    server = team_server(server_url, token_file, db_url)
    base_run, base_arrays = resolve_run(baseline, db_url, server)
    cand_run, cand_arrays = resolve_run(candidate, db_url, server)
    check_pair(base_run, cand_run)
    side = this_machine(base_run, cand_run) if this_side == "auto" else this_side
    if output:
        _check_writable(Path(output))
    if cases_file and not Path(cases_file).is_file():  # refused before the runs are read, not after
        raise DriftboardError(f"no cases file {cases_file}")
    with _Bar(as_json) as bar:
        found = explain_runs(base_run, base_arrays, cand_run, cand_arrays, this_side=side, policy=rule,
                             budget=budget, progress=bar.update, own=OwnCases(models, cases_file))
    document = found.to_json()
    if output:
        Path(output).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
    stored = _store(found, db_url) if server is None else _keep_on_server(found, server)
    if as_json:
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        click.echo(stored, err=True)
        return
    click.echo(f"{found.baseline} (baseline) vs {found.candidate} (candidate), this machine: the {found.this_side}")
    for line in found.lines():
        click.echo(line)
    if found.remaining:
        click.echo("remaining environment differences: " + "; ".join(found.remaining))
    tested = sum(t.status == "done" for t in found.trials)
    click.echo(f"{tested} of {len(found.trials)} settings ran in {found.seconds:.0f} s (budget {budget:g} s)"
               + ("" if found.complete else ": stopped by the budget"))
    click.echo(stored)


def _check_writable(path: Path) -> None:
    if not path.parent.is_dir():
        raise DriftboardError(f"cannot write {path}: no such directory {path.parent}")


def _store(found: Any, db_url: str | None) -> str:
    """Keep the explanation with the pair when both runs are in the database; say what happened."""
    from sqlalchemy.engine import make_url

    from driftboard.cli.db_cmd import _default_uploader
    from driftboard.core.errors import NotFoundError, StoreError
    from driftboard.db.session import database_url
    from driftboard.db.store import shared_store

    url = database_url(db_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        return f"not stored in the database: there is none at {parsed.database}"  # explain creates no database
    try:
        store = shared_store(url)
        store.save_explanation(found, actor=_default_uploader() if store.dialect == "sqlite" else "")
    except NotFoundError as exc:
        return f"not stored in the database ({exc}): push both runs, then explain again to keep it with them"
    except StoreError as exc:
        hint = "; a member keeps it through the team server: --server URL" if "permission denied" in str(exc) else ""
        return f"not stored in the database: {exc}{hint}"
    return "stored with the pair of runs in the database"


def _keep_on_server(found: Any, server: Any) -> str:
    """Keep the explanation with the pair on the team server (``--server``); say where, or why not."""
    try:
        server.save_explanation(found)
    except DriftboardError as exc:  # the server's one line: a run not stored there, a viewer's token, unreachable
        return f"not kept on {server.url}: {exc}"
    return f"kept with the pair of runs on {server.url}"


class _Bar:
    """click's progress bar on stderr, one step per setting; silent with --json or off a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __enter__(self) -> _Bar:
        if not self.quiet and click.get_text_stream("stderr").isatty():
            self.bar = click.progressbar(length=1, label="explaining", file=click.get_text_stream("stderr"),
                                         show_pos=True, item_show_func=lambda item: item)
            self.bar.__enter__()
        return self

    def update(self, done: int, total: int, label: str) -> None:
        if self.bar is None:
            return
        self.bar.length = max(total, 1)
        self.bar.update(done - self.bar.pos, label)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
