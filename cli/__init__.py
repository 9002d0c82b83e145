"""The ``driftboard`` command: a thin shell over ``core``, ``db`` and ``dashboard``.

Each command lives in its own module and imports what it needs inside the
command, so ``driftboard --help`` and ``driftboard compare`` never load torch.
A ``DriftboardError`` becomes one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import importlib
import sys

import click

from driftboard.core.errors import DriftboardError
from driftboard.core.version import __version__

# command name -> "module:function"; loaded only when the command runs or help lists it.
COMMANDS: dict[str, str] = {
    "fingerprint": "driftboard.cli.fingerprint_cmd:fingerprint",
    "capture": "driftboard.cli.capture_cmd:capture",
    "show": "driftboard.cli.show_cmd:show",
    "compare": "driftboard.cli.compare_cmd:compare",
    "explain": "driftboard.cli.explain_cmd:explain",
    "report": "driftboard.cli.report_cmd:report",
    "db": "driftboard.cli.db_cmd:db",
    "push": "driftboard.cli.db_cmd:push",
    "runs": "driftboard.cli.db_cmd:runs",
    "serve": "driftboard.cli.serve_cmd:serve",
    "import-env": "driftboard.cli.import_env_cmd:import_env",
    "auth": "driftboard.cli.auth_cmd:auth",
    "golden": "driftboard.cli.golden_cmd:golden",
    "audit": "driftboard.cli.audit_cmd:audit",
    "status": "driftboard.cli.status_cmd:status",
    "log": "driftboard.cli.log_cmd:log",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="driftboard")
def cli() -> None:
    """driftboard: do your machines compute the same numbers?

    Capture an environment fingerprint and the golden outputs of reference
    PyTorch models on each machine, then compare runs: as bundle files, or
    stored in a database. The database is a SQLite file in your user data
    directory (~/.local/share/driftboard/driftboard.sqlite on Linux) unless
    --db or DRIFTBOARD_DATABASE_URL names another (PostgreSQL for a team).

    \b
    Example:
      driftboard capture -o laptop.driftboard
      driftboard compare golden.driftboard laptop.driftboard
      driftboard capture --sweep --push --golden && driftboard serve
    """


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="driftboard", standalone_mode=False)
        # Without standalone mode click returns ctx.exit(n)'s code instead of exiting.
        if isinstance(code, int) and code:
            sys.exit(code)
    except DriftboardError as exc:
        click.echo(f"driftboard: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("driftboard: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
