"""``driftboard status``: the team status board on the terminal, or as JSON.

Thin: ``db.status.team_status`` does the work; this module only prints its
``core.status.TeamStatus`` (a rich table) or its JSON document
(``core.status.status_json``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from driftboard.cli.db_cmd import db_option
from driftboard.cli.options import policy_option

if TYPE_CHECKING:
    from driftboard.core.status import TeamStatus

EPILOG = """\b
Examples:
  driftboard status
  driftboard status --policy ulp:4 --json > status.json

\b
One row per stored machine, worst first: its latest run (of a settings
sweep, the default variant), that run's verdict against the golden that
applies to it, when it was captured, and the numerics-relevant environment
changes since the machine's previous capture. Environment-only (imported)
runs are listed, not judged. Exit status: 0 whatever the board shows; 2 for
bad usage (a bad policy, an unreadable database).
"""


@click.command(epilog=EPILOG)
@click.option("--golden", "golden_name", default="default", show_default=True,
              help="Name of the golden baseline the machines are judged against.")
@policy_option
@click.option("--json", "as_json", is_flag=True, help="Print the board as a JSON document (format driftboard.status).")
@db_option
def status(golden_name: str, policy: str, as_json: bool, db_url: str | None) -> None:
    """Do all our machines agree? Each machine's latest run against the golden, worst first."""
    from driftboard.db.status import team_status
    from driftboard.db.store import Store

    with Store(db_url) as store:
        board = team_status(store, golden_name, policy)
    if as_json:
        from driftboard.core.status import status_json

        click.echo(json.dumps(status_json(board), indent=2, allow_nan=False, ensure_ascii=False))
    else:
        _print_board(board)


def _print_board(board: TeamStatus) -> None:
    from rich.console import Console
    from rich.table import Table

    from driftboard.cli.audit_cmd import _plain
    from driftboard.cli.verdicts import rich_markup
    from driftboard.dashboard.format import MISSING, fmt_count, fmt_time, fmt_ulp

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a pipe or CI log: no reason to squeeze the table into 80 columns
        console = Console(highlight=False, soft_wrap=False, width=160)
    console.print(_plain(board.summary, 200))
    if not board.machines:
        return
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for name in ("machine", "status", "latest run", "captured"):
        table.add_column(name, overflow="fold")
    table.add_column("cases differing", justify="right", no_wrap=True)
    table.add_column("max ULP", justify="right", no_wrap=True)
    table.add_column("changed since the previous run", overflow="fold")
    for m in board.machines:
        state = rich_markup(m.worst) if m.worst is not None else _plain(m.state)
        judged = m.worst is not None
        table.add_row(_plain(m.machine, 60), state, _plain(m.run_id), fmt_time(m.captured_at),
                      fmt_count(m.drifted, m.compared) if judged else MISSING,
                      fmt_ulp(m.ulp_max) if judged else MISSING, _plain(m.changes_text, 400))
    console.print(table)
