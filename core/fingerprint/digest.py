"""A digest of the numerics-relevant part of a fingerprint.

Two machines with the same digest have the same torch build, GPU stack, CPU
model and instruction sets, numerics settings and allowlisted environment, so
runs group together whatever their hostnames, labels or UUIDs. This module
never imports torch: the database and comparison side call it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from driftboard.core import fields


def is_error_key(key: str) -> bool:
    """A dotted key recording a failed collector (``cpu.error``, ``gpu.nvml.error``)."""
    return key == "error" or key.endswith(".error")


def numerics_view(fp: dict[str, Any]) -> dict[str, Any]:
    """The flattened numerics-relevant leaves, errors left out (their text may name paths)."""
    flat = fields.flatten({k: v for k, v in fp.items() if k != "fingerprint_version"})
    return {key: value for key, value in flat.items() if fields.is_numerics(key) and not is_error_key(key)}


def fingerprint_digest(fp: dict[str, Any]) -> str:
    """sha256 hex of the canonical JSON of the numerics-relevant leaves and the fingerprint version."""
    payload = {"fingerprint_version": fp.get("fingerprint_version"), "fields": numerics_view(fp)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
