"""Where capture writes: a name gets its suffix, a place that refuses the write is one line and leaves nothing.

The read-only and full places are real: small tmpfs mounts (root only; the
tests skip elsewhere, and CI runs as root).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftboard.core.processes import driftboard_command

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

QUICK = ("--case", "linear_10_5", "--repeats", "1", "-q")


def _capture(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driftboard_command("capture", *QUICK, *args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs; unmounted afterwards."""
    point = tmp_path / "mnt"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(point)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_name_without_a_suffix_gets_driftboard(tmp_path: Path) -> None:
    done = _capture("-o", "runs/a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("runs/a.driftboard")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a.driftboard"]


def test_a_read_only_place_is_refused_before_capturing(tmp_path: Path, mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    for target in ("run.driftboard", "sub/dir/"):
        done = _capture("-o", str(mount / target), cwd=tmp_path)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [f"driftboard: error: cannot write {mount / target}: "
                                                    "permission denied"]
    done = _capture("--sweep", "-o", str(mount / "sweep"), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, mount: Path) -> None:
    subprocess.run(["dd", "if=/dev/zero", f"of={mount / 'filler'}", "bs=4k"], capture_output=True)
    done = _capture("-o", str(mount / "run.driftboard"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"driftboard: error: cannot write {mount / 'run.driftboard'}: "
                                                "No space left on device"]
    assert sorted(p.name for p in mount.iterdir()) == ["filler"]
