"""Sizes as people read them, the same on the command line and in the dashboard."""

from __future__ import annotations

NBSP = "\u00a0"  # between a number and its unit: a line never breaks inside a size
_UNITS = ("KiB", "MiB", "GiB", "TiB")


def fmt_bytes(n: int | float) -> str:
    """``512 B``, ``83.2 KiB``, ``156 KiB``, ``1.4 MiB``: binary units (the limits are powers of two),
    one decimal below 100, joined by a no-break space."""
    if n < 1024:
        return f"{int(n)}{NBSP}B"
    value = float(n)
    for unit in _UNITS:
        value /= 1024
        shown = f"{value:.1f}" if value < 99.95 else f"{value:.0f}"
        if float(shown) < 1024 or unit == _UNITS[-1]:
            return f"{shown}{NBSP}{unit}"
    raise AssertionError("unreachable")
