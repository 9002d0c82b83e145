"""`driftboard import-env`: a pasted collect_env report becomes an environment-only run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from driftboard.core.bundle import read_bundle
from driftboard.core.compare import compare_runs
from driftboard.core.imported import run_from_report
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "collect_env"
DRIFTBOARD = driftboard_command()

pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"real collect_env reports not found at {FIXTURES}")


def test_import_writes_an_environment_only_bundle(tmp_path: Path) -> None:
    out = tmp_path / "imp.driftboard"
    done = subprocess.run([*DRIFTBOARD, "import-env", str(FIXTURES / "005.txt"), "--note", "pytorch#84873",
                           "--tag", "bug-report", "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "8× NVIDIA RTX A5000" in done.stdout and "torch 1.11.0+cu115" in done.stdout
    run = read_bundle(out).run
    assert run.imported and run.cases == () and run.variant == "imported"
    assert (run.note, run.tags) == ("pytorch#84873", ("bug-report",))
    assert run.fingerprint["torch"]["version"] == "1.11.0+cu115"
    assert run.fingerprint["gpu"]["count"] == 8


def test_same_report_gets_the_same_run_id_and_reads_from_stdin(tmp_path: Path) -> None:
    text = (FIXTURES / "019.txt").read_bytes()
    first, _ = run_from_report(text)
    done = subprocess.run([*DRIFTBOARD, "import-env", "-", "-o", str(tmp_path / "s.driftboard")], input=text,
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert read_bundle(tmp_path / "s.driftboard").run.run_id == first.run_id


@pytest.mark.parametrize("text", [b"hello world\n", b"", b"\xff\xfe garbage"])
def test_text_that_is_not_a_report_is_refused_in_one_line(tmp_path: Path, text: bytes) -> None:
    done = subprocess.run([*DRIFTBOARD, "import-env", "-", "-o", str(tmp_path / "x.driftboard")], input=text,
                          capture_output=True, text=False)
    err = done.stderr.decode()
    assert done.returncode == 2 and len(err.strip().splitlines()) == 1 and "collect_env" in err
    assert not any(tmp_path.iterdir())


def test_partial_report_imports_what_it_has_and_lists_what_is_missing(tmp_path: Path) -> None:
    partial = "PyTorch version: 2.1.0+cu121\nIs debug build: False\nCUDA used to build PyTorch: 12.1\n"
    done = subprocess.run([*DRIFTBOARD, "import-env", "-", "-o", str(tmp_path / "p.driftboard")], input=partial,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "missing from this report:" in done.stdout
    assert read_bundle(tmp_path / "p.driftboard").run.fingerprint["torch"]["cuda"] == "12.1"


def test_imported_run_compares_by_environment_only() -> None:
    old, _ = run_from_report((FIXTURES / "055.txt").read_text())
    new, _ = run_from_report((FIXTURES / "025.txt").read_text())
    result = compare_runs(old, MemoryArrays(), new, MemoryArrays())
    assert result.cases == ()
    assert result.env.get("torch.version") is not None
    assert not any(c.key.startswith(("collect_env.", "source.")) for c in result.env.changes)


def test_imports_from_different_reports_are_different_machines(tmp_path: Path) -> None:
    from driftboard.core.bundle import bundle_bytes
    from driftboard.db.store import Store

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with Store(url) as store:
        for name in ("005.txt", "019.txt"):
            run, _ = run_from_report((FIXTURES / name).read_text())
            store.ingest(bundle_bytes(run, MemoryArrays()))
        assert len(store.machines()) == 2


def test_imports_are_named_from_what_the_report_says() -> None:
    from driftboard.core.imported import run_from_report

    labels = {run_from_report((FIXTURES / name).read_text(errors="replace"))[0].label
              for name in sorted(p.name for p in FIXTURES.glob("*.txt"))}
    assert len(labels) >= 25  # 30 reports, told apart by their hardware, OS and torch
    assert "collect_env: 8× NVIDIA RTX A5000 · Ubuntu 18.04.6 LTS · torch 1.11.0+cu115" in labels
    assert "collect_env: macOS 12.5 · torch 1.12.1" in labels
    run, _ = run_from_report((FIXTURES / "005.txt").read_text(errors="replace"), label="Alice's workstation")
    assert run.label == "Alice's workstation"
