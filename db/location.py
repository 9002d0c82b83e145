"""Where the database is by default, without importing SQLAlchemy (command help needs it fast)."""

from __future__ import annotations

from pathlib import Path

ENV_VAR = "DRIFTBOARD_DATABASE_URL"
DEFAULT_FILENAME = "driftboard.sqlite"


def default_database_path(data_dir: str | Path | None = None) -> Path:
    """``<user data dir>/driftboard.sqlite`` (``~/.local/share/driftboard`` on Linux)."""
    if data_dir is None:
        import platformdirs

        data_dir = platformdirs.user_data_dir("driftboard", appauthor=False)
    return Path(data_dir) / DEFAULT_FILENAME
