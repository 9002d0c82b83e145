"""The layer contract in pyproject.toml holds, and it fails when someone plants a back-import.

``lint-imports`` (import-linter) reads the contracts from pyproject.toml and
analyses the installed ``driftboard`` package, function-level imports included.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import driftboard

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(driftboard.__file__).parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PARTS = ("__init__.py", "__main__.py", "core", "db", "dashboard", "cli")


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed: pip install -e '.[dev]'")
    env = {"PATH": "/usr/bin:/bin", **({"PYTHONPATH": str(pythonpath)} if pythonpath else {})}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def _copy_package(tmp_path: Path) -> Path:
    """The installed package copied to tmp_path/site/driftboard, with the contracts beside it."""
    target = tmp_path / "site" / "driftboard"
    target.mkdir(parents=True)
    for part in PARTS:
        source = PACKAGE / part
        if source.is_dir():
            shutil.copytree(source, target / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / part)
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (tmp_path / ".importlinter").write_text(_ini(contracts))
    return target


def _ini(config: dict) -> str:
    """The pyproject contracts in import-linter's INI form (the copy has no pyproject.toml)."""
    lines = ["[importlinter]", f"root_package = {config['root_package']}",
             f"include_external_packages = {config['include_external_packages']}"]
    for number, contract in enumerate(config["contracts"]):
        lines.append(f"\n[importlinter:contract:{number}]")
        for key, value in contract.items():
            lines.append(f"{key} =" + ("".join(f"\n    {v}" for v in value) if isinstance(value, list) else f" {value}"))
    return "\n".join(lines) + "\n"


def _plant(package: Path, module: str, line: str) -> None:
    path = package / module
    path.write_text(path.read_text() + f"\n\ndef _planted():\n    {line}\n")


def test_the_installed_package_keeps_its_layers() -> None:
    done = _lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_the_contract_copy_passes_unchanged(tmp_path: Path) -> None:
    package = _copy_package(tmp_path)
    done = _lint(tmp_path, package.parent)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("core/bundle.py", "import driftboard.db.store", "Layers"),
    ("db/session.py", "from driftboard.dashboard import charts", "Layers"),
    ("dashboard/charts.py", "from driftboard.cli import main", "Layers"),
    ("core/compare/metrics.py", "import torch", "capture path"),
    ("db/models.py", "from driftboard.core.capture import capture", "capture path"),
    ("dashboard/format.py", "from driftboard.core import suite", "capture path"),
])
def test_a_planted_back_import_breaks_the_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    package = _copy_package(tmp_path)
    _plant(package, module, line)
    done = _lint(tmp_path, package.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 broken" in done.stdout
    assert any(broken in row and "BROKEN" in row for row in done.stdout.splitlines()), done.stdout
