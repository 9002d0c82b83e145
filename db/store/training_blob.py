"""How the store keeps a training case's trace (``CaseResult.training``): one more content-addressed array.

The trace's manifest JSON (``core/bundle_training.py``), written canonically,
is kept as an array of bytes (dtype ``uint8``) beside the case's other arrays,
named in the outcome's ``layers`` list by an entry ``[TRAINING_ENTRY, sha256,
"uint8", [size]]``, exactly as an own case's record is (``own_blob.py``): no
column and no migration, every write path (direct inserts and PostgreSQL's
``driftboard_push_run``) stores it as any array, equal traces are stored once,
and deleting the last run that uses it deletes it. A driftboard that predates
training cases reads it as one more layer. Reading it back checks it as a
bundle's manifest is checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from driftboard.core.bundle import DEFAULT_LIMITS, BundleError
from driftboard.core.bundle_training import training_from_json, training_json
from driftboard.core.errors import StoreError
from driftboard.core.run import ArrayRef, CaseResult, TrainingTrace, sha256_hex
from driftboard.db.store import case_blobs

TRAINING_ENTRY = "driftboard:training"


@dataclass(frozen=True)
class TrainingBlob:
    sha256: str
    data: bytes

    @property
    def layer_entry(self) -> list[Any]:
        return [TRAINING_ENTRY, self.sha256, "uint8", [len(self.data)]]


def encode(case: CaseResult) -> TrainingBlob | None:
    """The blob holding ``case.training``, or None for a case that did not train."""
    if case.training is None:
        return None
    data = json.dumps(training_json(case.training), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")
    return TrainingBlob(sha256_hex(data), data)


def with_training(session: Session, cases: Sequence[CaseResult]) -> tuple[CaseResult, ...]:
    """Cases read from outcome rows, with each training case's blob turned back into ``CaseResult.training``."""
    return case_blobs.attach(session, cases, TRAINING_ENTRY, "training", _decode)


def _decode(ref: ArrayRef, blobs: dict[str, bytes]) -> TrainingTrace:
    data = blobs.get(ref.sha256)
    if data is None:
        raise StoreError(f"the trace of a training case ({ref.sha256[:12]}…) is missing from the database")
    try:
        return training_from_json(json.loads(data), "training", DEFAULT_LIMITS)
    except (ValueError, BundleError) as exc:
        raise StoreError(f"the trace of a training case ({ref.sha256[:12]}…) is corrupt in the database: {exc}") from None
