"""``python -m core.cli``: the same command as ``driftboard`` (sweeps use it for fresh processes)."""

from core.cli import main

main()
