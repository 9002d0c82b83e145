"""The JSON documents driftboard writes, each with a ``format`` and a ``schema_version``.

CI pipelines parse ``compare --json``; a dashboard or notebook reads a report's
JSON. Every such document starts with the two keys below, and a JSON Schema
for each format ships in ``core/schemas/<name>.schema.json`` (tests validate
real output against it). A format's version grows when a key is removed or
changes meaning; adding a key does not change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# format name -> current schema version
FORMATS: dict[str, int] = {
    "driftboard.audit": 1,
}

SCHEMAS = Path(__file__).with_name("schemas")


def document(format_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` under the envelope of ``format_name`` (its keys first, so a reader sees them at once)."""
    return {"format": format_name, "schema_version": FORMATS[format_name], **body}


def schema_path(format_name: str) -> Path:
    """The JSON Schema file shipped for ``format_name``."""
    return SCHEMAS / f"{format_name.removeprefix('driftboard.')}.schema.json"
