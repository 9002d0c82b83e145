"""Every command explains itself: `--help` works and shows an example, without importing torch."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from driftboard.cli import COMMANDS, cli
from driftboard.core.processes import driftboard_command


def _commands() -> list[tuple[str, ...]]:
    found = []
    for name in COMMANDS:
        command = cli.get_command(click.Context(cli), name)
        found.append((name,))
        if isinstance(command, click.Group):
            found += [(name, sub) for sub in command.list_commands(click.Context(command))]
    return found


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`driftboard {' '.join(path)} --help` shows no example"


def test_top_level_help_names_the_default_database() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "DRIFTBOARD_DATABASE_URL" in result.output and "SQLite" in result.output
    assert all(name in result.output for name in COMMANDS)


def test_help_and_compare_do_not_import_torch() -> None:
    code = ("import sys; from driftboard.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_unknown_command_is_a_usage_error() -> None:
    done = subprocess.run([*driftboard_command(), "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "No such command" in done.stderr and "Traceback" not in done.stderr


def test_compare_command_loads_neither_torch_nor_the_database_layer() -> None:
    """Comparing two bundle files stays within its time budget: no torch, no SQLAlchemy at import."""
    code = ("import sys, driftboard.cli.compare_cmd, driftboard.cli.report_cmd\n"
            "loaded = [m for m in ('torch', 'sqlalchemy') if m in sys.modules]\n"
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_the_default_database_path_is_printed_unbroken_under_a_long_home(tmp_path) -> None:
    home = tmp_path / ("a-very-long-home-directory-name-" * 4)
    home.mkdir()
    path = f"{home}/.local/share/driftboard/driftboard.sqlite"
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "80"}
    with_db = [p for p in _commands()
               if any(o.name == "db_url" and "else the SQLite file" in (o.help or "") for o in _command(p).params)]
    assert ("db", "upgrade") in with_db and ("runs",) in with_db
    for command in with_db:
        done = subprocess.run(driftboard_command(*command, "--help"), env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert path in done.stdout, f"driftboard {' '.join(command)} --help:\n{done.stdout}"


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)  # type: ignore[attr-defined]
    return command


@pytest.mark.parametrize("command", ["capture", "import-env"])
def test_a_tag_the_bundle_reader_would_refuse_is_refused_before_any_work(command: str) -> None:
    long_tag = "x" * 65
    args = ["--tag", long_tag] + (["-o", "/nonexistent/never.driftboard"] if command == "capture" else ["-"])
    result = CliRunner().invoke(cli, [command, *args])
    assert result.exit_code == 2
    assert "Invalid value for '--tag': expected at most 64 non-empty strings of at most 64 characters" in result.output
