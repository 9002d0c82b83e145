"""Environment-only runs from ``collect_env`` reports pasted into bug reports.

An imported run has a fingerprint and no cases: it is compared by its
environment alone. Its id comes from the pasted text, so importing the same
report twice is recognised as the same run.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from driftboard.core.collect_env import ParsedReport, parse_report
from driftboard.core.fingerprint.digest import fingerprint_digest
from driftboard.core.run import Run
from driftboard.core.version import __version__

SUITE_ID = "environment-only"
VARIANT = "imported"


def run_from_report(text: str | bytes, *, label: str = "", note: str = "", tags: tuple[str, ...] = ()) -> tuple[Run, ParsedReport]:
    """Parse a report (``ReportParseError`` if it is not one) into an environment-only run."""
    parsed = parse_report(text)
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    digest = hashlib.sha256(raw).hexdigest()[:24]
    fingerprint = dict(parsed.fingerprint)
    identity = dict(fingerprint.get("identity") or {})
    # A report names no machine: each one stands for its own, so imports from
    # different people never merge into one machine's history.
    identity.setdefault("machine_id", f"collect_env:{digest}")
    identity.update(label=label, note=note, tags=list(tags))
    fingerprint["identity"] = identity
    now = datetime.now(UTC)
    torch_version = (fingerprint.get("torch") or {}).get("version") or "unknown torch"
    run = Run(
        run_id=f"import-{digest}",
        created_at=now.isoformat(timespec="seconds"),
        suite_id=SUITE_ID,
        suite_version=1,
        variant=VARIANT,
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint_digest(fingerprint),
        cases=(),
        settings={},
        label=label or f"imported collect_env ({torch_version})",
        tags=tags,
        note=note or "imported from a collect_env report",
        tool_version=__version__,
        imported=True,
    )
    return run, parsed
