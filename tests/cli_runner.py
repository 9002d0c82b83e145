"""The ``driftboard`` command run in-process, exiting as the console script does."""

from __future__ import annotations

import pytest

from driftboard.cli import main


def run_driftboard(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``driftboard ARGV``; an exit with a message counts as status 1."""
    try:
        main(list(map(str, argv)))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``driftboard compare ARGS``."""
    return run_driftboard(capsys, "compare", *args)
