"""``driftboard report``: a baseline against one or more candidates as a self-contained HTML file.

Thin: resolve each run the way ``driftboard compare`` does, compare, hand the
results to ``driftboard.dashboard.html_report``. numpy and Plotly are imported inside the
command; torch never is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import server_options, team_server
from driftboard.core.errors import DriftboardError

EPILOG = """\b
Examples:
  driftboard report golden.driftboard laptop.driftboard -o report.html
  driftboard report golden.driftboard a.driftboard b.driftboard -o drift.html --json drift.json
  driftboard report golden.driftboard ci.driftboard -o report.html --policy ulp:4 --title "CI vs golden"

\b
The HTML opens without a network (plotly.js is inlined). Exit status: 0 when
the report was written, whatever it found; 2 for bad usage or an unreadable run.
Use `driftboard compare --fail-on` to gate a pipeline.
"""


@click.command(epilog=EPILOG)
@click.argument("baseline")
@click.argument("candidates", nargs=-1, required=True)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Write the HTML report here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the data behind it as JSON.")
@click.option(
    "--policy",
    default="default",
    show_default=True,
    help="Tolerance: bitwise, ulp:N, rtol=R,atol=A (both), or default (torch.testing's per-dtype rtol/atol).",
)
@click.option("--title", default=None, help="Report title (default: the runs compared).")
@click.option("--max-charts", default=20, show_default=True, type=click.IntRange(min=0),
              help="Chart at most this many changed cases per candidate, worst first.")
@db_option
@server_options
def report(
    baseline: str,
    candidates: tuple[str, ...],
    output: str,
    json_path: str | None,
    policy: str,
    title: str | None,
    max_charts: int,
    db_url: str | None,
    server_url: str | None,
    token_file: str | None,
) -> None:
    """Compare BASELINE with each CANDIDATE run and write a self-contained HTML report.

    Runs are found as by driftboard compare: files, stored run ids (--db, or
    --server for a team server), and golden as BASELINE.
    """
    from driftboard.cli.compare_cmd import evidence_store, resolve_runs
    from driftboard.core.compare import compare_runs, parse_policy
    from driftboard.dashboard.html_report import comparison_report_html, comparison_report_json

    rule = parse_policy(policy)
    server = team_server(server_url, token_file, db_url)
    (base_run, base_arrays), resolved = resolve_runs(baseline, candidates, db_url, server)
    sources = {base_run.run_id: (base_run, base_arrays)}
    results = []
    store = evidence_store(db_url, (baseline, *candidates), rule.kind == "fleet") if server is None else None
    evidence = store.tier_evidence(base_run.suite_id, base_run.suite_version) if store else None
    for run, arrays in resolved:
        sources.setdefault(run.run_id, (run, arrays))
        fleet = store.fleet_for(base_run, run) if store and rule.kind == "fleet" else None
        results.append(compare_runs(base_run, base_arrays, run, arrays, rule, fleet=fleet, tier_evidence=evidence))
    html = comparison_report_html(results, sources, title=title, max_charted_cases=max_charts,
                                  explanations=_explanations(store, results))
    _write(Path(output), html, "HTML report")
    if json_path:
        data = comparison_report_json(results, title=title)
        _write(Path(json_path), json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n", "JSON")
    worst = max((r.worst for r in results), key=lambda v: v.severity)
    cases = sum(len(r.cases) for r in results)
    extra = f" and {json_path}" if json_path else ""
    click.echo(f"wrote {output}{extra}: {len(results)} comparison(s), {cases} cases, worst verdict {worst.value}")


def _explanations(store: Any, results: list[Any]) -> dict[tuple[str, str], Any]:
    """What ``driftboard explain`` stored for each compared pair (a pair not stored has none)."""
    from driftboard.core.errors import NotFoundError

    found = {}
    for result in results if store is not None else ():
        pair = (result.baseline.run_id, result.candidate.run_id)
        try:
            explanation = store.explanation(*pair)
        except NotFoundError:
            continue
        if explanation is not None:
            found[pair] = explanation
    return found


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DriftboardError(f"cannot write {what} to {path}: {exc.strerror or exc}") from None
