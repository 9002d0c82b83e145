"""Explanations (``driftboard explain``) kept with their pair of runs.

One per (baseline, candidate): saving again replaces it. The whole
``driftboard.explanation`` document is kept, compressed; the verdict and the
summary are columns too. Deleting either run deletes it (the foreign keys cascade).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from driftboard.core.errors import StoreError
from driftboard.core.explain.result import Explanation
from driftboard.db.models import ExplanationRow
from driftboard.db.session import transaction
from driftboard.db.store.queries import run_pk
from driftboard.db.store.sql import now

MAX_DOCUMENT = 4 * 2**20  # bytes of JSON an explanation may take (a few hundred cases times a few dozen settings)


def save_explanation(engine: Engine, explanation: Explanation) -> None:
    """Keep ``explanation`` for its pair of runs, replacing an older one; both runs must be stored."""
    import json

    document = explanation.to_json()
    if len(json.dumps(document)) > MAX_DOCUMENT:
        raise StoreError(f"explanation too large to store (over {MAX_DOCUMENT // 2**20} MiB of JSON)")
    with transaction(engine, write=True) as session:
        baseline, candidate = run_pk(session, explanation.baseline), run_pk(session, explanation.candidate)
        session.execute(delete(ExplanationRow).where(ExplanationRow.baseline_run_pk == baseline,
                                                     ExplanationRow.candidate_run_pk == candidate))
        session.add(ExplanationRow(baseline_run_pk=baseline, candidate_run_pk=candidate,
                                   this_machine=explanation.this_side, verdict=explanation.verdict,
                                   summary=explanation.summary, document=document, created_at=now()))


def load_explanation(engine: Engine, baseline: str, candidate: str) -> Explanation | None:
    """The explanation kept for (baseline, candidate), or None; unknown runs are a ``NotFoundError``."""
    with transaction(engine) as session:
        document = session.execute(
            select(ExplanationRow.document).where(ExplanationRow.baseline_run_pk == run_pk(session, baseline),
                                                  ExplanationRow.candidate_run_pk == run_pk(session, candidate))
        ).scalar()
    if document is None:
        return None
    try:
        return Explanation.from_json(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"the stored explanation of {baseline} and {candidate} cannot be read: {exc}") from None
