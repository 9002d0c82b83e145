"""Assemble the whole fingerprint from its collectors, each isolated from the others."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from driftboard.core.fields import FINGERPRINT_VERSION
from driftboard.core.fingerprint._probe import guarded
from driftboard.core.fingerprint.anonymize import anonymize_paths
from driftboard.core.fingerprint.cpu import collect_cpu
from driftboard.core.fingerprint.environment import redact_environment
from driftboard.core.fingerprint.gpu import collect_gpu
from driftboard.core.fingerprint.packages import collect_packages
from driftboard.core.fingerprint.system import anonymized_names, collect_identity, collect_os, collect_python
from driftboard.core.fingerprint.torch_info import collect_numerics, collect_numpy, collect_torch
from driftboard.core.redact import redact_strings


def collect_fingerprint(
    *,
    label: str = "",
    tags: tuple[str, ...] = (),
    note: str = "",
    anonymize: bool = False,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The environment fingerprint of this process: a nested JSON-ready dict.

    Its flattened dotted keys are those of ``core.fields``. A collector that
    fails leaves ``{"error": "<one line>"}`` in its section and the others go
    on. ``environ`` defaults to ``os.environ``; only allowlisted names are read.
    Every string passes ``core.redact`` (the label and note are the user's own
    text); with ``anonymize`` no path keeps the user or host name either.
    """
    environ = os.environ if environ is None else environ
    # Numerics settings first, before any other collector touches torch.
    numerics = guarded(collect_numerics)
    fingerprint = {
        "fingerprint_version": FINGERPRINT_VERSION,
        "os": guarded(collect_os, environ),
        "python": guarded(collect_python),
        "torch": guarded(collect_torch),
        "numpy": guarded(collect_numpy),
        "packages": guarded(collect_packages),
        "cpu": guarded(collect_cpu),
        "gpu": guarded(collect_gpu),
        "numerics": numerics,
        "env": guarded(redact_environment, environ),
        "identity": guarded(collect_identity, label=label, tags=tags, note=note, anonymize=anonymize),
    }
    if anonymize:
        fingerprint = anonymize_paths(fingerprint, anonymized_names())
    return redact_strings(fingerprint)
