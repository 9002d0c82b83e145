"""Explanations (``driftboard explain``) kept with their pair of runs.

One per (baseline, candidate): saving again replaces it. The whole
``driftboard.explanation`` document is kept, compressed; the verdict and the
summary are columns too. Deleting either run deletes it (the foreign keys cascade).
Saving is a write: its ``explain`` entry goes in the write log in the same transaction.

``read_explanation`` checks a document from elsewhere (the team server's
``POST /api/v1/explanations``) before anything is stored: bounded size, strict
JSON, the shipped JSON Schema, then ``Explanation.from_json``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from driftboard.core.errors import ExplanationError, StoreError
from driftboard.core.explain.result import FORMAT, Explanation
from driftboard.db.models import ExplanationRow, RunRow
from driftboard.db.session import transaction
from driftboard.db.store import write_log
from driftboard.db.store.queries import run_pk
from driftboard.db.store.sql import now

MAX_DOCUMENT = 4 * 2**20  # bytes of JSON an explanation may take (a few hundred cases times a few dozen settings)


def save_explanation(engine: Engine, explanation: Explanation,
                     origin: write_log.Origin = write_log.Origin()) -> None:
    """Keep ``explanation`` for its pair of runs, replacing an older one, and log it; both runs must be stored."""
    document = explanation.to_json()
    if len(json.dumps(document)) > MAX_DOCUMENT:
        raise StoreError(f"explanation too large to store (over {MAX_DOCUMENT // 2**20} MiB of JSON)")
    with transaction(engine, write=True) as session:
        baseline, candidate = run_pk(session, explanation.baseline), run_pk(session, explanation.candidate)
        # One save per candidate at a time (PostgreSQL; SQLite's write lock already is): a concurrent save of the
        # same pair waits here, then deletes what that one stored, instead of both inserting and one failing.
        session.execute(select(RunRow.id).where(RunRow.id == candidate).with_for_update(key_share=True))
        session.execute(delete(ExplanationRow).where(ExplanationRow.baseline_run_pk == baseline,
                                                     ExplanationRow.candidate_run_pk == candidate))
        session.add(ExplanationRow(baseline_run_pk=baseline, candidate_run_pk=candidate,
                                   this_machine=explanation.this_side, verdict=explanation.verdict,
                                   summary=explanation.summary, document=document, created_at=now()))
        write_log.record(session, "explain", origin, run_id=explanation.candidate,
                         detail=f"against baseline {explanation.baseline}: {explanation.verdict}")


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


def read_explanation(data: bytes) -> Explanation:
    """The explanation in ``data``, checked in full; anything else is one ``ExplanationError`` line."""
    if len(data) > MAX_DOCUMENT:
        raise ExplanationError(f"the explanation is over the {MAX_DOCUMENT // 2**20} MiB limit of a document")
    try:
        doc = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "nested too deeply" if isinstance(exc, RecursionError) else " ".join(str(exc).split())[:200]
        raise ExplanationError(f"the explanation is not JSON: {reason}") from None
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ExplanationError("the explanation holds a lone surrogate escape (\\ud800 to \\udfff): not text") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ExplanationError(f"not a {FORMAT} document (its 'format' must be {FORMAT!r})")
    problem = _schema_problem(doc)
    if problem:
        raise ExplanationError(f"the explanation does not match its schema: {problem}")
    if "\x00" in doc["summary"]:
        raise ExplanationError("the explanation's summary holds a NUL character")
    try:
        return Explanation.from_json(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExplanationError(f"the explanation cannot be read: {' '.join(str(exc).split())[:200]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _schema_problem(doc: dict[str, Any]) -> str:
    """The first way ``doc`` breaks ``core/schemas/explanation.schema.json`` (where, and what), or ""."""
    error = next(iter(_validator().iter_errors(doc)), None)
    if error is None:
        return ""
    where = "/".join(str(part) for part in error.absolute_path) or "the document"
    return f"{where}: {' '.join(error.message.split())[:200]}"


@cache
def _validator() -> Any:
    import jsonschema

    from driftboard.core.documents import schema_path

    return jsonschema.Draft202012Validator(json.loads(schema_path(FORMAT).read_text(encoding="utf-8")))
