"""Command lines for fresh Python processes that must run driftboard's own code.

driftboard runs inside users' training repositories, which often hold their own
``core/`` or ``db/`` package. ``python -m`` and ``-c`` put the current directory
first on ``sys.path``; ``-P`` (Python 3.11+) leaves it off, so a sweep, a serve
or a test's child process imports the installed ``driftboard`` and nothing else.
"""

from __future__ import annotations

import sys


def python_command(*args: str) -> list[str]:
    """This interpreter, with the current directory kept off ``sys.path``."""
    return [sys.executable, "-P", *args]


def driftboard_command(*args: str) -> list[str]:
    """``driftboard ARGS`` as a fresh process of this interpreter."""
    return python_command("-m", "driftboard", *args)
