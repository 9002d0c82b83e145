"""A SQLite file in a hard place: a disk that filled during the final checkpoint, a read-only mount.

The places are real: small tmpfs mounts (root only; the tests skip elsewhere, and CI runs as root).
Everything goes through the real command line, in this process.

- A checkpoint cut short by a full disk leaves a part of a page at the end of the file while the
  write-ahead log still holds every page: SQLite reads it as a whole database. driftboard called it
  "truncated … restore it from a backup" (following that advice loses the commits in the log).
- A database on a read-only mount failed even for reading ("unable to open database file").
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_factory import make_bundle, write_bundle_file
from test_db_cli import run_cli
from test_faults import integrity_problems

from driftboard.db.session import PAGE_SIZE
from driftboard.db.sqlite_file import wal_pages
from driftboard.db.store import Store

RUN_IDS = [f"m{m:04d}-r00001-default" for m in range(3)]


def _mount(point: Path, size: str) -> None:
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs; unmounted afterwards."""
    point = tmp_path / "mnt"
    _mount(point, "16m")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def _fill(directory: Path) -> Path:
    """Fill the file system with one file; returns it."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _ingest_three(url: str) -> Store:
    store = Store(url)
    for machine in range(3):
        store.ingest(make_bundle(machine, 1, drift={"linear_1024": machine, "lstm_2layer": machine}))
    return store


def _cut_checkpoint(disk: Path) -> Path:
    """A database whose final checkpoint a full disk cut short: part of a page at its end, the log holds it."""
    path = disk / "team.sqlite"
    store = _ingest_three(str(path))  # everything is still in the write-ahead log
    filler = _fill(disk)
    os.truncate(filler, filler.stat().st_size - 40_000)  # room for two pages and a quarter of a third
    store.close()  # the last connection checkpoints the log into the file: the disk fills on the way
    size = path.stat().st_size
    assert size % PAGE_SIZE and Path(f"{path}-wal").stat().st_size, f"the checkpoint was not cut ({size} bytes)"
    assert size // PAGE_SIZE + 1 in wal_pages(path, PAGE_SIZE)
    return path


def _one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err.strip()


def test_a_checkpoint_cut_by_a_full_disk_is_not_called_damaged_and_loses_nothing(capsys, disk, tmp_path):
    path = _cut_checkpoint(disk)
    code, out, err = run_cli(capsys, "runs", "--db", str(path))
    assert code == 0 and err == "", err
    assert [line.split()[0] for line in out.splitlines()[1:4]] == RUN_IDS[::-1]
    code, out, err = run_cli(capsys, "db", "status", "--db", str(path))
    assert code == 0 and out.splitlines()[1].startswith("3 runs from 3 machines"), err

    bundle = write_bundle_file(tmp_path, 7, 1)
    code, out, err = run_cli(capsys, "push", str(bundle), "--db", str(path))  # the disk is still full
    assert code == 2
    assert "database or disk is full" in err and "restore" not in err and "truncated" not in err, err

    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)  # SQLite itself: intact
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (3,)
    finally:
        conn.close()

    (disk / "filler").unlink()  # space again: the next push works, and its checkpoint completes
    code, out, err = run_cli(capsys, "push", str(bundle), "--db", str(path))
    assert code == 0, err
    assert path.stat().st_size % PAGE_SIZE == 0
    assert integrity_problems(f"sqlite:///{path}", deep=True) == []
    with Store(str(path)) as store:
        assert sorted(r.run_id for r in store.runs().runs) == sorted([*RUN_IDS, "m0007-r00001-default"])


def test_a_file_cut_inside_its_last_page_with_no_log_holding_it_is_still_refused(capsys, disk):
    path = _cut_checkpoint(disk)
    for suffix in ("-wal", "-shm"):  # what is cut off is now nowhere: the file is truncated for good
        Path(f"{path}{suffix}").unlink()
    before = path.read_bytes()
    code, out, err = run_cli(capsys, "runs", "--db", str(path))
    assert code == 2 and out == ""
    assert _one_line(err) == (f"driftboard: error: database sqlite:///{path}: truncated ({len(before)} bytes is not a "
                              f"whole number of its {PAGE_SIZE}-byte pages, and no write-ahead log holds the rest; "
                              "driftboard left it unchanged: restore it from a backup)")
    assert path.read_bytes() == before


# ---------------------------------------------------------------- read-only


def _fingerprints(directory: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_a_database_on_a_read_only_mount_is_read_and_a_write_is_one_line(capsys, disk, tmp_path):
    path = disk / "team.sqlite"
    with _ingest_three(str(path)) as store:
        store.set_golden(RUN_IDS[0])
    _remount_read_only(disk)
    before = _fingerprints(disk)

    code, out, err = run_cli(capsys, "runs", "--db", str(path))
    assert code == 0 and err == "", err
    verdicts = {line.split()[0]: line.split("  ")[-1].strip() for line in out.splitlines()[1:4]}
    assert verdicts == {RUN_IDS[0]: "identical", RUN_IDS[1]: "within tolerance", RUN_IDS[2]: "within tolerance"}
    code, out, err = run_cli(capsys, "compare", RUN_IDS[0], RUN_IDS[2], "--db", str(path), "--policy", "bitwise")
    assert code == 1 and err == "" and "drift" in out  # read from the read-only file, compared
    code, out, err = run_cli(capsys, "db", "status", "--db", str(path))
    assert code == 0 and out.splitlines()[1].startswith("3 runs from 3 machines"), err

    refusal = (f"driftboard: error: database sqlite:///{path} is read-only (it is on a read-only file system): "
               "nothing was written")
    code, _, err = run_cli(capsys, "golden", "set", RUN_IDS[1], "--db", str(path))
    assert code == 2 and _one_line(err) == refusal
    code, out, err = run_cli(capsys, "push", str(write_bundle_file(tmp_path, 7, 1)), "--db", str(path))
    assert code == 2 and "is read-only (it is on a read-only file system): nothing was written" in err
    code, _, err = run_cli(capsys, "runs", "--db", str(disk / "other.sqlite"))
    assert code == 2 and _one_line(err) == (f"driftboard: error: database sqlite:///{disk / 'other.sqlite'}: no such "
                                            "file, and it cannot be created in a read-only file system")
    assert _fingerprints(disk) == before


def test_a_read_only_database_whose_log_holds_commits_is_read_with_them(capsys, disk, tmp_path):
    source = tmp_path / "live.sqlite"
    store = _ingest_three(str(source))  # open: its commits are in the log, not yet in the file
    try:
        for suffix in ("", "-wal", "-shm"):
            shutil.copy(f"{source}{suffix}", f"{disk / 'team.sqlite'}{suffix}")
    finally:
        store.close()
    _remount_read_only(disk)
    code, out, err = run_cli(capsys, "runs", "--db", str(disk / "team.sqlite"))
    assert code == 0 and err == "", err
    assert [line.split()[0] for line in out.splitlines()[1:4]] == RUN_IDS[::-1]
