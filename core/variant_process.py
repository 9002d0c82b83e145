"""One capture under one settings variant, in a fresh process.

``ATEN_CPU_CAPABILITY`` is read when torch is imported, and a knob set in a
process that already ran kernels may leave state behind, so ``capture --sweep``
and ``driftboard explain`` run every variant as its own ``driftboard capture``
child process and read the bundle it writes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from driftboard.core.errors import DriftboardError
from driftboard.core.processes import driftboard_command
from driftboard.core.variants import capability_of


class VariantTimeout(DriftboardError):
    """The child process ran past its time limit and was stopped."""


def capture_variant(variant: str, directory: Path, args: Sequence[str] = (), *,
                    env: Mapping[str, str | None] | None = None, timeout: float | None = None) -> Path:
    """Capture ``variant`` in a child process writing into ``directory``; the bundle's path.

    ``env`` overrides the inherited environment (``None`` removes a name); a
    variant with a ``cpu-<capability>`` atom sets ``ATEN_CPU_CAPABILITY``.
    """
    child = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            child.pop(name, None)
        else:
            child[name] = value
    capability = capability_of(variant)
    if capability is not None:
        child["ATEN_CPU_CAPABILITY"] = capability
    command = [*driftboard_command(), "capture", "--quiet", "--variant", variant, "-o", str(directory) + os.sep, *args]
    try:
        done = subprocess.run(command, env=child, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VariantTimeout(f"variant {variant} ran past its {timeout:.0f} s limit and was stopped") from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise DriftboardError(f"variant {variant} failed: {lines[-1] if lines else 'no output'}")
    return Path(done.stdout.strip().splitlines()[-1])
