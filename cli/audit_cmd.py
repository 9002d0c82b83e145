"""``driftboard audit``: one machine's hardware-upgrade audit, as a terminal table, JSON or HTML.

Thin: ``db.audit.audit_machine`` does the work; this module only prints its
``core.audit.MachineAudit`` (rich tables), its JSON document
(``core.audit.audit_json``) or its HTML page (``dashboard.html_report``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import policy_option
from driftboard.core.errors import DriftboardError

if TYPE_CHECKING:
    from driftboard.core.audit import AuditEvent, MachineAudit, TimelinePoint

EPILOG = """\b
Examples:
  driftboard audit gpu-node-3
  driftboard audit 4f1c2a --policy ulp:4 --json > audit.json
  driftboard audit gpu-node-3 --golden a100-baseline -o audit.html

\b
MACHINE is a hostname, a machine key or a unique prefix of one (see
`driftboard runs`). Each environment change between consecutive runs is
listed with what changed and the verdicts against the golden just before and
just after it. Exit status: 0 when the audit was shown or written, whatever
it found; 2 for an unknown or ambiguous machine or bad usage.
"""


@click.command(epilog=EPILOG)
@click.argument("machine")
@click.option("--golden", "golden_name", default="default", show_default=True,
              help="Name of the golden baseline the runs are judged against.")
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the audit as a JSON document (format driftboard.audit).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the audit as a self-contained HTML page here.")
@db_option
def audit(machine: str, golden_name: str, policy: str, as_json: bool, output: str | None, db_url: str | None) -> None:
    """Audit MACHINE's runs over time: environment changes and the drift against the golden around each."""
    from driftboard.db.audit import audit_machine
    from driftboard.db.store import Store

    with Store(db_url) as store:
        result = audit_machine(store, machine, golden=golden_name, policy=policy)
    if output:
        from driftboard.dashboard.html_report import machine_report_html

        _write(Path(output), machine_report_html(result))
        click.echo(f"wrote {output}: {len(result.points)} runs, {len(result.events)} environment change(s)",
                   err=as_json)
    if as_json:
        from driftboard.core.audit import audit_json

        click.echo(json.dumps(audit_json(result), indent=2, allow_nan=False, ensure_ascii=False))
    elif not output:
        _print_audit(result)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DriftboardError(f"cannot write the HTML audit to {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- tables (rich, imported only here)


def _print_audit(result: MachineAudit) -> None:
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a pipe or CI log: no reason to squeeze the tables into 80 columns
        console = Console(highlight=False, soft_wrap=False, width=160)
    _print_header(console, result)
    console.print()
    _print_events(console, result)
    console.print()
    _print_runs(console, result.points)


def _print_header(console: Any, result: MachineAudit) -> None:
    from driftboard.dashboard.format import fmt_time

    key = f" (machine {result.machine_key[:12]})" if result.machine_key else ""
    runs = f"{len(result.points)} run{'s' if len(result.points) != 1 else ''}"
    if result.points:
        runs += f" from {fmt_time(result.points[0].captured_at)} to {fmt_time(result.points[-1].captured_at)}"
    changes = f"{len(result.events)} environment change{'s' if len(result.events) != 1 else ''}"
    console.print(f"Audit of [bold]{_plain(result.machine, 80)}[/]{key}: {runs}; {changes}")
    golden = result.golden
    if golden is None:
        console.print("Golden: none applies to this machine's runs (driftboard golden set RUN), "
                      "so no verdicts: only the environment changes are listed")
    else:
        host = f" on {_plain(golden.hostname, 60)}" if golden.hostname else ""
        console.print(f"Golden: {_plain(golden.name, 100)}{host}, captured {fmt_time(golden.created_at)}; "
                      f"policy {_plain(str(result.policy))}")


def _print_events(console: Any, result: MachineAudit) -> None:
    from rich.table import Table

    if not result.events:
        console.print("Environment changes: none (no field that can change numbers changed between "
                      "consecutive runs)")
        return
    console.print("Environment changes:")
    table = Table(show_edge=False, pad_edge=False, header_style="bold", show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("between runs", overflow="fold")
    table.add_column("what changed", overflow="fold")
    table.add_column("vs golden: before → after", overflow="fold")
    table.add_column("conclusion", overflow="fold")
    for i, event in enumerate(result.events, 1):
        table.add_row(str(i), _between(event), "\n".join(_plain(c, 200) for c in event.event.changes),
                      f"{_point(event.before)}\n→ {_point(event.after)}",
                      _plain(event.conclusion(), 400) + (f"\nFloat64 truth: {_plain(t[1], 200)}" if (t := event.truth()) else ""))
    console.print(table)
    _print_verdict_changes(console, result.events)


def _between(event: AuditEvent) -> str:
    from driftboard.dashboard.format import fmt_time

    e = event.event
    return (f"{_plain(e.before_run_id)}\n{fmt_time(e.before_at)}\n→ {_plain(e.after_run_id)}\n"
            f"{fmt_time(e.after_at)}")


def _print_verdict_changes(console: Any, events: tuple[AuditEvent, ...]) -> None:
    """Each case whose verdict against the golden moved across an event: ``1  lstm_2layer/cpu/float32
    identical → drift``."""
    from rich.table import Table

    if not any(e.verdict_changes for e in events):
        return
    console.print()
    console.print("Verdicts against the golden that changed across an environment change:")
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("#", justify="right", no_wrap=True)
    for name in ("case", "before", "", "after"):
        table.add_column(name, no_wrap=True)
    for i, event in enumerate(events, 1):
        for v in event.verdict_changes:
            table.add_row(str(i), _plain("/".join(v.key)), _word(v.before), "→", _word(v.after))
    console.print(table)


def _word(verdict: Any) -> str:
    return verdict.value if verdict is not None else "not compared"


def _point(point: TimelinePoint) -> str:
    from driftboard.dashboard.format import fmt_count

    if point.is_golden:
        return "the golden itself"
    if point.worst is None:
        return "not compared"
    return f"{point.worst.value}: {fmt_count(point.drifted, point.compared)} differ"


def _print_runs(console: Any, points: tuple[TimelinePoint, ...]) -> None:
    from rich.table import Table

    from driftboard.dashboard.format import MISSING, fmt_count, fmt_time, fmt_ulp

    console.print("Runs, newest first:")
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name in ("captured", "run", "label", "vs golden"):
        table.add_column(name, overflow="fold")
    for name in ("cases differing", "beyond tolerance", "max ULP"):
        table.add_column(name, justify="right", no_wrap=True)
    for p in reversed(points):
        compared = p.worst is not None
        verdict = "golden" if p.is_golden else (p.worst.value if p.worst is not None else "not compared")
        table.add_row(fmt_time(p.captured_at), _plain(p.run_id), _plain(p.label, 60), verdict,
                      fmt_count(p.drifted, p.compared) if compared else MISSING,
                      str(p.failing) if compared else MISSING, fmt_ulp(p.ulp_max))
    console.print(table)


def _plain(value: Any, limit: int = 120) -> str:
    """User text (labels, hostnames, run ids) for a rich table: one line, no control characters, no markup."""
    from rich.markup import escape

    from driftboard.dashboard.format import safe_text

    return escape(safe_text(value, limit))
