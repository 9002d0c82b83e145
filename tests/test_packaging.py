"""The wheel installs one package, ``driftboard``, holding every module and data file of the repository.

driftboard is installed into users' training environments: anything it put
at the top level of site-packages (a ``core`` or ``db``) would collide with
their code or another distribution's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import driftboard

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("core", "db", "dashboard", "cli")


def _source_files() -> list[str]:
    """Files of the checkout as a clean clone would have them (tracked, plus new files not ignored)."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [name for name in listed if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a clean copy of the checkout (no stale build/ directory can leak into it)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    for name in _source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    [path] = out.glob("driftboard-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_has_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    dist_info = f"driftboard-{driftboard.__version__}.dist-info/"
    assert wheel.read(dist_info + "top_level.txt").decode().split() == ["driftboard"]
    strays = [n for n in wheel.namelist() if not n.startswith(("driftboard/", dist_info))]
    assert strays == []


def test_the_wheel_holds_every_module_and_data_file(wheel: zipfile.ZipFile) -> None:
    wanted = {f"driftboard/{name}" for name in _source_files()
              if name.split("/")[0] in LAYERS and not name.endswith(".md")}
    wanted |= {"driftboard/__init__.py", "driftboard/__main__.py"}
    missing = sorted(wanted - set(wheel.namelist()))
    assert missing == []
    assert "driftboard/db/migrations/versions/0001_initial.py" in wanted
    assert "driftboard/core/bundle.schema.json" in wanted


def test_the_console_script_and_version_come_from_one_source(wheel: zipfile.ZipFile) -> None:
    dist_info = f"driftboard-{driftboard.__version__}.dist-info/"
    assert "driftboard = driftboard.cli:main" in wheel.read(dist_info + "entry_points.txt").decode()
    metadata = wheel.read(dist_info + "METADATA").decode()
    assert f"Version: {driftboard.__version__}" in metadata
    assert "Requires-Dist: pandas" in metadata


@pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="CI installs the wheel; locally it is editable")
def test_ci_runs_the_tests_against_the_installed_wheel() -> None:
    installed = Path(driftboard.__file__).resolve()
    assert installed != (REPO / "__init__.py").resolve()  # not the source tree (an editable install maps there)
    assert installed.parent.name == "driftboard" and installed.parent.parent.name == "site-packages"
