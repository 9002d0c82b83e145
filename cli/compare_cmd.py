"""``driftboard compare``: a baseline against one or more candidates, as a table, JSON or JUnit.

Thin: resolve each run, call ``core.compare.compare_runs``, format. Heavy
imports (numpy via core.compare, rich) happen inside the command, and rich
only when a table is printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import policy_option, server_options, team_server
from driftboard.core.errors import DriftboardError, NotFoundError

if TYPE_CHECKING:
    from driftboard.core.compare import CaseComparison, RunComparison
    from driftboard.core.run import ArraySource, Run
    from driftboard.db.remote import TeamServer

EPILOG = """\b
Examples:
  driftboard compare golden.driftboard laptop.driftboard
  driftboard compare golden.driftboard ci.driftboard --policy ulp:4 --junit drift.xml
  driftboard compare golden.driftboard a.driftboard b.driftboard --json > result.json
  driftboard compare golden.driftboard laptop.driftboard --case lstm_2layer
  driftboard compare --server https://drift.example.com golden new.driftboard --junit drift.xml

\b
Exit status:
  0  no case crosses --fail-on (always, with --fail-on never)
  1  a case crosses --fail-on; or, with drift or any-change, no case
     was compared at all (an environment-only run: fails closed)
  2  bad usage or an unreadable run
"""


GOLDEN = "golden"  # as BASELINE: the golden that applies to the (first) candidate


def resolve_runs(baseline: str, candidates: tuple[str, ...], db_url: str | None = None,
                 server: TeamServer | None = None) -> tuple[tuple[Run, ArraySource], list[tuple[Run, ArraySource]]]:
    """The baseline and the candidates; ``golden`` (when no such file exists) is the first candidate's golden."""
    resolved = [resolve_run(spec, db_url, server) for spec in candidates]
    if baseline == GOLDEN and not Path(baseline).exists():
        from driftboard.db.baseline import golden_baseline

        return golden_baseline(resolved[0][0], db_url=db_url, server=server), resolved
    return resolve_run(baseline, db_url, server), resolved


def resolve_run(spec: str, db_url: str | None = None, server: TeamServer | None = None) -> tuple[Run, ArraySource]:
    """The run a command-line argument names, with where its arrays live.

    A bundle file, or else a stored run id (or an unambiguous prefix of one) in
    the database, or on the team server (``server``: its bundle is fetched);
    something that looks like a path is never looked up as an id.
    """
    from driftboard.core.bundle import SUFFIX, read_bundle

    path = Path(spec)
    if path.is_file():
        bundle = read_bundle(path)
        return bundle.run, bundle.arrays
    if path.exists():
        raise NotFoundError(f"not a bundle file: {spec}")
    if "/" in spec or "\\" in spec or spec.endswith(SUFFIX):
        raise NotFoundError(f"no such file: {spec}")
    if server is not None:
        return server.load_run(spec)
    from driftboard.db.store import load_stored_run

    return load_stored_run(spec, db_url)


def _checked_fail_on(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from driftboard.core.compare.tiers import parse_fail_on
    from driftboard.core.errors import PolicyError

    try:
        return ",".join(parse_fail_on(value))
    except PolicyError as exc:
        raise click.BadParameter(str(exc)) from None


def _checked_truth_ratio(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    from driftboard.core.compare.truth import parse_truth_ratio
    from driftboard.core.errors import PolicyError

    try:
        return parse_truth_ratio(value) if value is not None else None
    except PolicyError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(epilog=EPILOG)
@click.argument("baseline")
@click.argument("candidates", nargs=-1, required=True)
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON instead of tables.")
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write JUnit XML (one testcase per case) here.")
@click.option(
    "--fail-on",
    default="drift",
    show_default=True,
    callback=_checked_fail_on,
    help="Exit 1 when a case reaches this level: drift (or missing/error/shape), any-change, or never; or breaks "
         "a determinism tier: tier:run-to-run, tier:processes, tier:machines, tier:device-classes (an unknown "
         "tier does not fail). Several gates: comma-separated, e.g. drift,tier:processes.",
)
@click.option("--case", "case_ids", multiple=True, metavar="CASE_ID", help="Also show the full report of this case.")
@click.option("--truth-ratio", default=None, metavar="SAME,SLIGHTLY", callback=_checked_truth_ratio,
              help="When the candidate is further from the float64 truth: its error over the baseline's up to SAME "
                   "is as close, up to SLIGHTLY slightly further, above further. [default: 1,2]")
@db_option
@server_options
def compare(
    baseline: str,
    candidates: tuple[str, ...],
    policy: str,
    as_json: bool,
    junit: str | None,
    fail_on: str,
    case_ids: tuple[str, ...],
    truth_ratio: Any,
    db_url: str | None,
    server_url: str | None,
    token_file: str | None,
) -> None:
    """Compare BASELINE with each CANDIDATE run: per-case verdicts, environment diff, likely causes.

    Each run is a bundle file or a stored run id (in the database, or on the
    team server with --server, whose bundles are fetched and compared here).
    BASELINE may be the word golden: the golden baseline of the first
    candidate's suite version and device class, which is how a CI runner
    gates a fresh capture against the team's golden.
    """
    from driftboard.core.compare import compare_runs, parse_policy
    rule = parse_policy(policy)
    server = team_server(server_url, token_file, db_url)
    (base_run, base_arrays), runs = resolve_runs(baseline, candidates, db_url, server)
    resolved = [(spec, *run) for spec, run in zip(candidates, runs, strict=True)]
    # a team server's runs come as bundles: compared on their own evidence, never this machine's database
    store = evidence_store(db_url, (baseline, *candidates), rule.kind == "fleet") if server is None else None
    evidence = store.tier_evidence(base_run.suite_id, base_run.suite_version) if store else None
    results = [compare_runs(base_run, base_arrays, run, arrays, rule, tier_evidence=evidence, truth_ratio=truth_ratio,
                            fleet=store.fleet_for(base_run, run) if store and rule.kind == "fleet" else None)
               for _, run, arrays in resolved]
    reports = [
        _case_reports(result, base_arrays, run, arrays, base_run, case_ids)
        for result, (_, run, arrays) in zip(results, resolved, strict=True)
    ]
    if case_ids and not any(reports):
        raise DriftboardError(f"no case named {', '.join(case_ids)} in either run")
    if junit:
        _write_junit(Path(junit), results, fail_on)
    failed = any(result.fails(fail_on) for result in results)
    if as_json:
        from driftboard.core.compare.document import compare_document

        click.echo(json.dumps(compare_document(results, rule, fail_on, reports), indent=2, allow_nan=False))
    else:
        _print_results(results, reports, fail_on, failed)
    if failed:
        # SystemExit, not ctx.exit: core.cli.main runs click with standalone_mode=False,
        # where ctx.exit's code is returned and dropped.
        sys.exit(1)


def evidence_store(db_url: str | None, specs: tuple[str, ...], fleet: bool) -> Any:
    """The database that adds stored runs' evidence (tiers, the fleet): when --db is given, a run came from it, or
    the policy is fleet; bundles alone, without --db, are compared on their own evidence."""
    if not (db_url or fleet or any(not Path(spec).is_file() for spec in specs)):
        return None
    from driftboard.db.store import shared_store

    return shared_store(db_url)


def _case_reports(
    result: RunComparison,
    base_arrays: ArraySource,
    run: Run,
    arrays: ArraySource,
    base_run: Run,
    case_ids: tuple[str, ...],
) -> list[tuple[CaseComparison, str, list[dict[str, Any]]]]:
    """(case, report text, worst elements) for each case asked for with --case."""
    from driftboard.core.compare import case_report, worst_elements

    out = []
    for case in result.cases:
        if case.case_id not in case_ids:
            continue
        worst = ()
        old = base_run.case(*case.key).output if case.verdict.changed else None
        new = run.case(*case.key).output if case.verdict.changed else None
        # An own case kept as statistics has no elements to list.
        if old is not None and new is not None and (old.shape, old.dtype) == (new.shape, new.dtype):
            worst = worst_elements(base_arrays.load(old), arrays.load(new), old.dtype, k=10)
        out.append((case, case_report(case, worst), [w.to_json() for w in worst]))
    return out


def _write_junit(path: Path, results: list[RunComparison], fail_on: str) -> None:
    from driftboard.core.compare import junit_xml

    try:
        path.write_bytes(junit_xml(results, fail_on))
    except OSError as exc:
        raise DriftboardError(f"cannot write JUnit XML to {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- tables (rich, imported only here)

def _print_results(results: list[RunComparison], reports: list[Any], fail_on: str, failed: bool) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a pipe or CI log: no reason to squeeze the table into 80 columns
        console = Console(highlight=False, soft_wrap=False, width=160)
    for result, report in zip(results, reports, strict=True):
        _print_one(console, result, fail_on)
        for _, text, _ in report:
            console.print()
            console.print(text, markup=False)
        console.print()
    crossing = sum(len(r.failing(fail_on)) for r in results)
    empty = sum(not r.cases for r in results)
    if failed and not crossing:
        console.print(f"[bold red]FAIL[/]: no case was compared in {empty} comparison(s), so --fail-on {fail_on} "
                      "cannot pass (use --fail-on never for the environment diff alone)")
    elif failed:
        console.print(f"[bold red]FAIL[/]: {crossing} case(s) reach --fail-on {fail_on}")
    else:
        console.print(f"[green]OK[/]: no case reaches --fail-on {fail_on}")


def _print_one(console: Any, result: RunComparison, fail_on: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from driftboard.cli.verdicts import rich_markup

    counts = ", ".join(f"{n} {v.value}" for v, n in reversed(result.counts().items()) if n)
    judged = f"worst {rich_markup(result.worst)} ({counts})" if result.cases else "no cases compared"
    console.print(
        f"[bold]{escape(result.baseline.name)}[/] (baseline) vs [bold]{escape(result.candidate.name)}[/] "
        f"(candidate) under policy {escape(str(result.policy))}: {judged}"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name in ("case", "device", "dtype", "verdict"):
        table.add_column(name, no_wrap=True)
    for name in ("max ULP", "p99 ULP", "max abs", "mismatched"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("bitwise", no_wrap=True)
    # Where each tolerance came from, when not every case takes it from the policy as given (learned, declared).
    sources = any(c.tolerance_source not in (None, f"policy {result.policy}") for c in result.cases)
    if sources:
        table.add_column("tolerance from")
    table.add_column("vs truth", no_wrap=True)
    table.add_column("notes")
    # Worst first, so a reader sees what matters without scrolling.
    for case in sorted(result.cases, key=lambda c: -c.verdict.severity):
        m = case.metrics
        figures = ["", "", "", ""]
        if m is not None and case.verdict.changed:
            figures = [str(m.ulp_max), str(m.ulp_p99), f"{m.max_abs:.3g}", f"{m.mismatched}/{m.n}"]
        elif m is not None:
            figures = ["0", "0", "0", f"0/{m.n}"]
        notes = _row_notes(case)
        mark = " !" if case.fails(fail_on) else ""
        verdict = rich_markup(case.verdict, case.verdict.value + mark)
        tiers = [case.tiers.marks if case.tiers else ""] + ([escape(case.tolerance_source or "")] if sources else [])
        table.add_row(escape(case.case_id), case.device, case.dtype, verdict, *figures, *tiers,
                      case.truth.short if case.truth else "", notes)
    console.print(table)
    console.print("[dim]bitwise, in order: run to run (one process), processes (one machine and environment), "
                  "machines (one device class), device classes; ✓ held, ✗ broken, ? unknown (no evidence at hand)[/]")
    for gate, count in _unknown_tiers(result, fail_on):
        console.print(f"[yellow]note:[/] --fail-on {gate}: {count} case(s) unknown, not judged (no evidence at hand)")
    if result.cases:
        console.print(f"Float64 truth: {escape(result.truth.words)}")
    _print_training(console, result)
    _print_env(console, result)
    _print_causes(console, result)


def _print_training(console: Any, result: RunComparison) -> None:
    """One line per training case: where the steps part, where it matters, how fast it grows, the final verdict."""
    from rich.markup import escape

    from driftboard.cli.verdicts import rich_markup

    trained = [c for c in result.cases if c.training is not None]
    if not trained:
        return
    console.print("[bold]Training[/] (step by step; the verdict is on the final parameters):")
    for case in trained:
        assert case.training is not None
        console.print(f"  {escape('/'.join(case.key))}: {rich_markup(case.verdict)}; {escape(case.training.text)}")


def _unknown_tiers(result: RunComparison, fail_on: str) -> list[tuple[str, int]]:
    from driftboard.core.compare.tiers import TIER_GATES

    found = []
    for gate in fail_on.split(","):
        tier = TIER_GATES.get(gate)
        if tier is not None:
            count = sum(1 for c in result.cases if c.tiers is None or getattr(c.tiers, tier) is None)
            if count:
                found.append((gate, count))
    return found


def _row_notes(case: CaseComparison) -> str:
    from rich.markup import escape

    return escape("; ".join(case.notes()))


def _print_env(console: Any, result: RunComparison) -> None:
    from rich.markup import escape
    from rich.table import Table

    from driftboard.core.compare.envdiff import shown_pair

    env = result.env
    console.print()
    if not env.changes:
        console.print("Environment: identical fingerprints")
        return
    for title, changes, style in (("can change numbers", env.numerics, ""),
                                  ("informational, cannot change numbers", env.informational, "dim")):
        if not changes:
            continue
        console.print(f"Environment: {len(changes)} change(s), {title}")
        table = Table(show_edge=False, pad_edge=False, header_style="bold")
        for name in ("field", "key", "baseline", "candidate"):
            table.add_column(name, overflow="fold")
        for change in changes:
            table.add_row(escape(change.label), escape(change.key), *map(escape, shown_pair(change, 80)), style=style)
        console.print(table)


def _print_causes(console: Any, result: RunComparison) -> None:
    from rich.markup import escape

    if not result.causes:
        return
    console.print()
    console.print("Likely causes:")
    for i, cause in enumerate(result.causes, 1):
        console.print(f"  {i}. [bold]{escape(cause.title)}[/] [dim]({cause.confidence} confidence)[/]")
        console.print(f"     {escape(cause.evidence)}")
