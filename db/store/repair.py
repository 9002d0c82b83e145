"""Repairing stored arrays: rows whose stored bytes are not exactly their array, found and rewritten.

Before ingest kept only deflate streams the bundle reader had checked, one valid bundle could store an
array as a stream that inflates to the array plus a few bytes: every comparison needing that array
failed, for every run sharing it. ``repair_arrays`` inflates every stored array and rewrites each bad
one from a good copy: its own stored bytes when their first ``nbytes`` are the array (the sha256
proves it), else any bundle among ``sources`` that holds it. What it cannot repair is reported with
the runs that need it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from driftboard.core.bundle import DEFAULT_LIMITS, SUFFIX, Limits, read_bundle
from driftboard.core.errors import DriftboardError
from driftboard.db.models import ArrayRow, CaseResultRow, OutcomeArrayRow, RunRow
from driftboard.db.session import transaction
from driftboard.db.store.arrays import CODEC, compress, salvage, stored_problem
from driftboard.db.store.sql import chunks

OWN_BYTES = "its own stored bytes"
_BATCH = 64  # arrays read per query while checking: memory stays bounded on a large database


@dataclass(frozen=True)
class ArrayRepair:
    """One stored array that was not exactly its bytes, and what became of it."""

    sha256: str
    problem: str
    source: str | None  # where the good copy came from (OWN_BYTES or a bundle path); None: not repaired
    runs: tuple[str, ...] = ()  # the runs that need it, when it was not repaired

    @property
    def repaired(self) -> bool:
        return self.source is not None


@dataclass(frozen=True)
class RepairReport:
    checked: int  # arrays inflated and checked
    arrays: tuple[ArrayRepair, ...]  # the bad ones, by sha256
    skipped_sources: tuple[str, ...]  # "path: why" for each source that could not be read

    @property
    def unrepaired(self) -> tuple[ArrayRepair, ...]:
        return tuple(a for a in self.arrays if not a.repaired)


def repair_arrays(engine: Engine, sources: Sequence[str | Path] = (), *, limits: Limits = DEFAULT_LIMITS) -> RepairReport:
    """Check every stored array; rewrite the bad ones from their own bytes or from ``sources`` (bundles, directories)."""
    checked, bad = _bad_arrays(engine)
    good: dict[str, tuple[str, bytes]] = {}  # sha -> (source, the array's bytes)
    for sha, (nbytes, _, stored) in bad.items():
        raw = salvage(sha, nbytes, stored)
        if raw is not None:
            good[sha] = (OWN_BYTES, raw)
    skipped: list[str] = []
    for path in _bundle_files(sources, skipped):
        wanted = bad.keys() - good.keys()
        if not wanted:
            break
        try:
            bundle = read_bundle(path, limits)
        except DriftboardError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        for sha in wanted & bundle.arrays.blobs.keys():  # the reader checked each against its sha256
            good[sha] = (str(path), bundle.arrays.blobs[sha])
    for sha, (_, raw) in sorted(good.items()):
        _rewrite(engine, sha, raw)
    needed = _runs_needing(engine, sorted(bad.keys() - good.keys()))
    arrays = tuple(ArrayRepair(sha, problem, good[sha][0] if sha in good else None, needed.get(sha, ()))
                   for sha, (_, problem, _) in sorted(bad.items()))
    return RepairReport(checked, arrays, tuple(skipped))


def _bad_arrays(engine: Engine) -> tuple[int, dict[str, tuple[int, str, bytes]]]:
    """How many arrays were checked, and sha -> (nbytes, problem, stored bytes) of those that are not whole."""
    checked, bad, after = 0, {}, ""
    while True:
        with transaction(engine) as session:
            rows = session.execute(
                select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data)
                .where(ArrayRow.sha256 > after).order_by(ArrayRow.sha256).limit(_BATCH)
            ).all()
        if not rows:
            return checked, bad
        for sha, codec, nbytes, stored in rows:
            problem = stored_problem(sha, codec, nbytes, bytes(stored))
            if problem is not None:
                bad[sha] = (nbytes, problem, bytes(stored))
        checked += len(rows)
        after = rows[-1][0]


def _bundle_files(sources: Sequence[str | Path], skipped: list[str]) -> Iterator[Path]:
    for source in sources:
        path = Path(source)
        if path.is_dir():
            yield from sorted(p for p in path.rglob(f"*{SUFFIX}") if p.is_file())
        elif path.is_file():
            yield path
        else:
            skipped.append(f"{path}: no such bundle file or directory")


def _rewrite(engine: Engine, sha: str, raw: bytes) -> None:
    """Store the array in the store's own form, checked before it is written."""
    stored = compress(raw)
    problem = stored_problem(sha, CODEC, len(raw), stored)
    if problem is not None:  # cannot happen: the bytes were checked against the sha256
        raise AssertionError(f"array {sha[:12]}…: {problem}")
    with transaction(engine, write=True) as session:
        session.execute(update(ArrayRow).where(ArrayRow.sha256 == sha)
                        .values(codec=CODEC, nbytes=len(raw), stored_bytes=len(stored), data=stored))


def _runs_needing(engine: Engine, shas: Sequence[str]) -> dict[str, tuple[str, ...]]:
    if not shas:
        return {}
    needed: dict[str, list[str]] = {}
    with transaction(engine) as session:
        for chunk in chunks(shas, 500):
            rows = session.execute(
                select(OutcomeArrayRow.array_sha, RunRow.run_id).distinct()
                .join(CaseResultRow, CaseResultRow.outcome_id == OutcomeArrayRow.outcome_id)
                .join(RunRow, RunRow.id == CaseResultRow.run_pk)
                .where(OutcomeArrayRow.array_sha.in_(list(chunk)))
                .order_by(OutcomeArrayRow.array_sha, RunRow.run_id)
            )
            for sha, run_id in rows:
                needed.setdefault(sha, []).append(run_id)
    return {sha: tuple(runs) for sha, runs in needed.items()}
