"""Helpers every collector shares: isolation, one-line errors, bounded subprocesses.

A collector that raises must never abort a capture (datasette's ``_versions()``
habit): ``guarded`` turns the exception into ``{"error": "<one line>"}`` for
the section or field it was computing, and collection goes on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

# collect_env runs pip, conda and nvidia-smi without a timeout and can hang for
# minutes (conda/conda#12236); ours never wait longer than this.
SUBPROCESS_TIMEOUT_S = 2.0
_MAX_ERROR_CHARS = 300


def error_text(exc: BaseException) -> str:
    """``Type: message`` on one line, bounded in length."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def error(exc: BaseException) -> dict[str, str]:
    return {"error": error_text(exc)}


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | dict[str, str]:
    """``fn(*args, **kwargs)``, or ``{"error": ...}`` when it raises."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # isolation is the point: record, never abort
        return error(exc)


def is_error(value: object) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def run(argv: Sequence[str], timeout: float = SUBPROCESS_TIMEOUT_S) -> str:
    """stdout of a short command; raises on a non-zero exit or after ``timeout`` seconds."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=min(timeout, SUBPROCESS_TIMEOUT_S),
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return done.stdout


def read_text(path: str | Path) -> str | None:
    """A small file's text, or None when it does not exist or cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
