"""``python -m driftboard.cli``: the same command as ``driftboard``."""

from driftboard.cli import main

main()
