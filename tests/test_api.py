"""The public Python API: ``driftboard.capture``, ``driftboard.compare``, ``driftboard.Store``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import driftboard


def test_every_public_name_resolves() -> None:
    for name in driftboard.__all__:
        assert getattr(driftboard, name) is not None, name
    assert set(driftboard.__all__) <= set(dir(driftboard))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        driftboard.nope  # noqa: B018


def test_importing_driftboard_loads_nothing_heavy() -> None:
    code = ("import sys, driftboard\n"
            "heavy = [m for m in ('torch', 'numpy', 'sqlalchemy', 'streamlit', 'click') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-P", "-c", code], check=True)


@pytest.mark.slow
def test_capture_compare_and_store_from_python(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "laptop.driftboard"
    laptop = driftboard.capture(cases=("linear_10_5",), repeats=1, label="api test", output=path)
    assert isinstance(laptop, driftboard.Bundle)
    assert path.is_file() and laptop.run.label == "api test"
    assert [c.case_id for c in laptop.run.cases] == ["linear_10_5", "linear_10_5"]  # float32 and float64

    result = driftboard.compare(path, laptop, policy="bitwise")
    assert isinstance(result, driftboard.RunComparison)
    assert result.worst is driftboard.Verdict.IDENTICAL
    assert len(result.cases) == 2

    with driftboard.Store(f"sqlite:///{tmp_path / 'api.sqlite'}") as store:
        first = store.ingest(path)
        assert first.created and not store.ingest(path).created
        assert store.run(first.run_id).label == "api test"


def test_compare_refuses_a_bad_policy_and_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.driftboard"
    bad.write_bytes(b"not a zip")
    with pytest.raises(driftboard.DriftboardError):
        driftboard.compare(bad, bad)
    with pytest.raises(driftboard.DriftboardError):
        driftboard.parse_policy("ulp:-3")


@pytest.mark.slow
def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = readme.split("### From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    driftboard.capture(cases=("linear_10_5",), repeats=1, output=tmp_path / "golden.driftboard")
    code = f"import os; os.chdir({str(tmp_path)!r})\n" + example
    env = {"HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "laptop.driftboard").is_file()
    assert (tmp_path / "data" / "driftboard" / "driftboard.sqlite").is_file()
