"""Records kept as content-addressed byte arrays and named in an outcome's ``layers`` (own cases, training traces).

``own_blob.py`` and ``training_blob.py`` each say what their record is and how
it is checked; this is what they share: loading the blobs a page of cases names,
and turning each named entry back into its ``CaseResult`` field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from driftboard.core.run import ArrayRef, CaseResult
from driftboard.db.models import ArrayRow
from driftboard.db.store.arrays import decompress
from driftboard.db.store.sql import chunks

Decode = Callable[[ArrayRef, dict[str, bytes]], Any]  # (the entry's reference, the loaded blobs) -> the field's value


def attach(session: Session, cases: Sequence[CaseResult], entry: str, field: str,
           decode: Decode) -> tuple[CaseResult, ...]:
    """Cases read from outcome rows, with the blob their ``entry`` layer names decoded into ``field``."""
    wanted = {ref.sha256 for case in cases for name, ref in case.layers if name == entry}
    if not wanted:
        return tuple(cases)
    blobs = load(session, sorted(wanted))
    out = []
    for case in cases:
        found = [ref for name, ref in case.layers if name == entry]
        if not found:
            out.append(case)
            continue
        layers = tuple((name, ref) for name, ref in case.layers if name != entry)
        out.append(replace(case, layers=layers, **{field: decode(found[0], blobs)}))
    return tuple(out)


def load(session: Session, shas: list[str]) -> dict[str, bytes]:
    """The bytes of the stored arrays ``shas`` (those found), each checked against its sha256."""
    found: dict[str, bytes] = {}
    for chunk in chunks(shas, 500):
        rows = session.execute(
            select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data).where(ArrayRow.sha256.in_(chunk))
        ).all()
        for sha, codec, nbytes, stored in rows:
            found[sha] = decompress(sha, codec, nbytes, stored)
    return found
