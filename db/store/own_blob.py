"""How the store keeps what a case of the team's own models recorded (``CaseResult.own``).

An own case's record (outputs, one entry per module call, options) is its
manifest JSON (``core/bundle_own.py``), written canonically and kept as one
content-addressed array of bytes (dtype ``uint8``) beside the case's other
arrays. The outcome's ``layers`` list names it in an entry of its own,
``[OWN_ENTRY, sha256, "uint8", [size]]``, so:

- no column or migration is needed, and every write path (direct inserts and
  PostgreSQL's ``driftboard_push_run``) stores it as it stores any array;
- equal records on many machines are stored once, like equal outputs;
- the outcome links it (``outcome_arrays``), so deleting the last run that uses
  it deletes it too;
- a driftboard that predates own cases reads it as one more layer instead of
  failing on an unknown shape.

Reading it back checks it as a bundle's manifest is checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Text, cast
from sqlalchemy.orm import Session

from driftboard.core.bundle import DEFAULT_LIMITS, BundleError
from driftboard.core.bundle_own import Budget, own_from_json, own_json
from driftboard.core.errors import StoreError
from driftboard.core.run import ArrayRef, CaseResult, sha256_hex
from driftboard.db.models import CaseOutcomeRow
from driftboard.db.store import case_blobs

OWN_ENTRY = "driftboard:own"


@dataclass(frozen=True)
class OwnBlob:
    sha256: str
    data: bytes

    @property
    def layer_entry(self) -> list[Any]:
        return [OWN_ENTRY, self.sha256, "uint8", [len(self.data)]]


def encode(case: CaseResult) -> OwnBlob | None:
    """The blob holding ``case.own``, or None for a suite case."""
    if case.own is None:
        return None
    text = json.dumps(own_json(case.own), sort_keys=True, separators=(",", ":"), allow_nan=False)
    data = text.encode("ascii")  # ensure_ascii: a lone surrogate in a module name travels as an escape
    return OwnBlob(sha256_hex(data), data)


def is_own_outcome() -> ColumnElement[bool]:
    """SQL: the outcome is a case of the team's own models (its ``layers`` list holds the own entry).

    Matched on the JSON text, as SQLite and PostgreSQL both spell it: ``["driftboard:own"`` can only
    be an entry whose name is exactly ``OWN_ENTRY`` (inside a JSON string a quote is always escaped),
    which is what ``with_own`` reads as an own case.
    """
    return cast(CaseOutcomeRow.layers, Text).like(f'%["{OWN_ENTRY}"%')


def with_own(session: Session, cases: Sequence[CaseResult]) -> tuple[CaseResult, ...]:
    """Cases read from outcome rows, with each own case's blob turned back into ``CaseResult.own``."""
    return case_blobs.attach(session, cases, OWN_ENTRY, "own", _decode)


def _decode(ref: ArrayRef, blobs: dict[str, bytes]) -> Any:
    data = blobs.get(ref.sha256)
    if data is None:
        raise StoreError(f"the record of an own case ({ref.sha256[:12]}…) is missing from the database")
    try:
        return own_from_json(json.loads(data), "own", DEFAULT_LIMITS, Budget(DEFAULT_LIMITS.module_calls))
    except (ValueError, BundleError) as exc:
        raise StoreError(f"the record of an own case ({ref.sha256[:12]}…) is corrupt in the database: {exc}") from None
