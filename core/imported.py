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
from driftboard.core.redact import redact_text
from driftboard.core.run import Run
from driftboard.core.version import __version__

SUITE_ID = "environment-only"
VARIANT = "imported"


def run_from_report(text: str | bytes, *, label: str = "", note: str = "", tags: tuple[str, ...] = ()) -> tuple[Run, ParsedReport]:
    """Parse a report (``ReportParseError`` if it is not one) into an environment-only run.

    The report, ``label``, ``note`` and ``tags`` are stored with credentials
    redacted (``core.redact``).
    """
    label, note, tags = redact_text(label), redact_text(note), tuple(redact_text(tag) for tag in tags)
    parsed = parse_report(text)
    digest = _report_digest(text, parsed.fingerprint["collect_env"]["text"])
    fingerprint = dict(parsed.fingerprint)
    identity = dict(fingerprint.get("identity") or {})
    # A report names no machine: each one stands for its own, so imports from
    # different people never merge into one machine's history.
    identity.setdefault("machine_id", f"collect_env:{digest}")
    identity.update(label=label, note=note, tags=list(tags))
    fingerprint["identity"] = identity
    now = datetime.now(UTC)
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
        label=label or describe(fingerprint),
        tags=tags,
        note=note or "imported from a collect_env report",
        tool_version=__version__,
        imported=True,
    )
    return run, parsed


def describe(fingerprint: dict) -> str:
    """A report's machine in a few words (its GPU or CPU, OS and torch), so two imports can be told apart."""
    gpu = fingerprint.get("gpu") if isinstance(fingerprint.get("gpu"), dict) else {}
    devices = gpu.get("devices") if isinstance(gpu.get("devices"), list) else []
    names = [d.get("name") for d in devices if isinstance(d, dict) and d.get("name")]
    cpu = fingerprint.get("cpu") if isinstance(fingerprint.get("cpu"), dict) else {}
    system = fingerprint.get("os") if isinstance(fingerprint.get("os"), dict) else {}
    torch = fingerprint.get("torch") if isinstance(fingerprint.get("torch"), dict) else {}
    hardware = (f"{len(names)}× {names[0]}" if len(names) > 1 else names[0]) if names else cpu.get("model") or None
    where = system.get("distro") or system.get("system")
    parts = [p for p in (hardware, where, f"torch {torch['version']}" if torch.get("version") else None) if p]
    return "collect_env: " + (" · ".join(str(p) for p in parts) if parts else "unknown machine")


def _report_digest(text: str | bytes, kept: str) -> str:
    """The run id's digest: of the text as given, or of the text kept when redaction changed it.

    The same paste gets the same id. Hashing a text that held a password would
    let anyone who reads the stored (redacted) text try weak passwords against
    the id, so a text with credentials is hashed without them.
    """
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    if kept != raw.decode("utf-8", "replace"):
        raw = kept.encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:24]
