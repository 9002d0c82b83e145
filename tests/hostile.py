"""A training repository's look-alike packages, which fail loudly when imported.

Users run driftboard from their own repositories, which often have a ``core/``
or ``db/`` package. Tests run driftboard's commands, its sweep and its server
from such a directory to prove that only the installed ``driftboard`` is imported.
"""

from __future__ import annotations

from pathlib import Path

NAMES = ("core", "db", "dashboard", "driftboard", "cli")
MARK = "HOSTILE"


def hostile_directory(home: Path) -> Path:
    """``home`` filled with packages (and ``python -m`` entry points) that exit naming themselves."""
    for name in NAMES:
        for package in (home / name, home / name / "cli"):
            package.mkdir(parents=True, exist_ok=True)
            bomb = f"raise SystemExit('{MARK} {name} imported')\n"
            (package / "__init__.py").write_text(bomb)
            (package / "__main__.py").write_text(bomb)
    return home
