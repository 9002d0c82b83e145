"""driftboard runs its own code whatever the current directory holds.

Every command and the settings sweep (fresh processes) run here from a
directory whose ``core``, ``db``, ``dashboard``, ``driftboard`` and ``cli``
packages fail loudly when imported; ``driftboard serve`` is started from such a
directory by every browser test (tests/test_e2e_browser.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import MARK, hostile_directory

from driftboard.cli import COMMANDS
from driftboard.core.processes import driftboard_command


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return hostile_directory(tmp_path / "training-repo")


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DRIFTBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'hostile.sqlite'}"}


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert MARK not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def test_the_hostile_packages_do_fail_when_imported(hostile: Path) -> None:
    for args in ([sys.executable, "-m", "core.cli"], [sys.executable, "-c", "import driftboard"]):
        done = subprocess.run(args, cwd=hostile, capture_output=True, text=True)
        assert MARK in done.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_runs_driftboards_own_code(hostile: Path, tmp_path: Path, command: str) -> None:
    console_script = str(Path(sys.executable).with_name("driftboard"))
    for args in (driftboard_command(command, "--help"), [console_script, command, "--help"]):
        done = _run(args, hostile, _env(tmp_path))
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout


@pytest.mark.slow
def test_capture_sweep_compare_and_store_from_a_hostile_directory(hostile: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    done = _run([*driftboard_command("capture", "--sweep", "--case", "linear_10_5", "--repeats", "1", "-q",
                                     "-o", "sweep/")], hostile, env, timeout=600)
    assert done.returncode == 0, done.stderr
    bundles = sorted((hostile / "sweep").glob("*.driftboard"))
    assert len(bundles) >= 3  # default, oneDNN off, one thread, ...: each captured in a fresh process
    done = _run([*driftboard_command("compare", str(bundles[0]), str(bundles[1]), "--fail-on", "never")], hostile, env)
    assert done.returncode == 0, done.stderr
    done = _run([*driftboard_command("push", *map(str, bundles))], hostile, env)
    assert done.returncode == 0, done.stderr
    done = _run([*driftboard_command("runs", "--json")], hostile, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"run_id"') == len(bundles)
