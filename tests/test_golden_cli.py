"""`driftboard golden` and `capture --push --golden`: baselines set, listed and cleared from the command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from db_factory import write_bundle_file

from driftboard.cli import cli
from driftboard.core.processes import driftboard_command
from driftboard.db.store import Store


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def two_runs(tmp_path: Path, sqlite_url: str) -> tuple[str, list[str]]:
    paths = [write_bundle_file(tmp_path, 0, 0), write_bundle_file(tmp_path, 0, 1, drift={"linear_1024": 3})]
    assert _invoke("push", "-q", "--db", sqlite_url, *map(str, paths)).exit_code == 0
    with Store(sqlite_url) as store:
        ids = [r.run_id for r in store.runs().runs]
    return sqlite_url, sorted(ids)


def test_set_list_and_clear(two_runs: tuple[str, list[str]]) -> None:
    url, (first, second) = two_runs
    done = _invoke("golden", "set", first[:20], "--reason", "before the upgrade", "--by", "alice", "--db", url)
    assert done.exit_code == 0, done.output
    assert f"{first} is now golden 'default'" in done.output
    listed = _invoke("golden", "list", "--db", url)
    assert first in listed.output and "before the upgrade" in listed.output and "alice" in listed.output
    with Store(url) as store:
        assert store.verdict(first).worst == "identical"
        assert store.verdict(second).worst in ("within tolerance", "drift")
    cleared = _invoke("golden", "clear", second, "--db", url)
    assert cleared.exit_code == 0 and "cleared golden 'default'" in cleared.output
    assert "no golden baseline set" in _invoke("golden", "list", "--db", url).output


def test_errors_are_one_line(two_runs: tuple[str, list[str]]) -> None:
    url, (first, _) = two_runs
    for args in (("golden", "set", "no-such-run", "--db", url), ("golden", "clear", first, "--db", url)):
        done = subprocess.run([*driftboard_command(), *args], capture_output=True, text=True)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_golden_needs_push() -> None:
    done = _invoke("capture", "--golden")
    assert done.exit_code == 2 and "--push" in done.output


def test_capture_push_golden_marks_the_captured_run(tmp_path: Path, sqlite_url: str) -> None:
    pytest.importorskip("torch")
    done = subprocess.run([*driftboard_command(), "capture", "--case", "linear_10_5", "--repeats", "1",
                           "--push", "--golden", "--db", sqlite_url, "-o", str(tmp_path / "r.driftboard")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with Store(sqlite_url) as store:
        (mark,) = store.goldens()
        assert mark.run_id == store.runs().runs[0].run_id and "capture --golden" in mark.reason
