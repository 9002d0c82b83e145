"""The JSON documents driftboard writes, each with a ``format`` and a ``schema_version``.

CI pipelines parse ``compare --json``; a dashboard or notebook reads a report's
JSON. Every such document starts with the two keys below, and a JSON Schema
for each format ships in ``core/schemas/<name>.schema.json`` (tests validate
real output against it). A format's version grows when a key is removed or
changes meaning; adding a key does not change it. docs/JSON.md describes
each format for the people who parse them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftboard.core.bundle import FORMAT as MANIFEST_FORMAT
from driftboard.core.bundle import SCHEMA_VERSION as MANIFEST_VERSION

# format name -> current schema version
FORMATS: dict[str, int] = {
    "driftboard.audit": 1,
    "driftboard.compare": 1,  # compare --json
    "driftboard.comparison_report": 1,  # report --json, the dashboard's report download, the HTML report's data
    "driftboard.runs": 1,  # runs --json
    "driftboard.status": 1,  # status --json: each machine's latest run against the golden
    "driftboard.fingerprint": 1,  # fingerprint --json
    "driftboard.goldens": 1,  # golden list --json, GET /api/v1/golden
    "driftboard.write_log": 1,  # log --json: the writes to the database, newest first
    "driftboard.stored_run": 1,  # GET /api/v1/runs/{run_id}: a stored run's summary, manifest and verdict
    "driftboard.explanation": 2,  # explain --json / -o, and what the database keeps (2: own-model cases too)
    # show --json: a bundle's manifest.json as is. It had its envelope before this module (name and
    # version in core/bundle.py, schema core/bundle.schema.json), so it keeps them.
    MANIFEST_FORMAT: MANIFEST_VERSION,
}

SCHEMAS = Path(__file__).with_name("schemas")


def document(format_name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` under the envelope of ``format_name`` (its keys first, so a reader sees them at once)."""
    return {"format": format_name, "schema_version": FORMATS[format_name], **body}


def schema_path(format_name: str) -> Path:
    """The JSON Schema file shipped for ``format_name``."""
    if format_name == MANIFEST_FORMAT:
        return Path(__file__).with_name("bundle.schema.json")
    return SCHEMAS / f"{format_name.removeprefix('driftboard.')}.schema.json"
