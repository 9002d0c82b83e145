"""``python -m driftboard``: the same command as ``driftboard``."""

from driftboard.cli import main

main()
