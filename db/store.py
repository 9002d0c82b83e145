"""Ingest and queries: the only way in and out of the database.

Everything returned is a frozen dataclass (or ``core.run`` types); ORM rows
never leave ``db/``. Each public method is one transaction.

Ingest validates the whole bundle first (``core.bundle.read_bundle``), then
writes it in one transaction: all of it or nothing. Concurrent writers are safe
on both databases: SQLite serialises them (BEGIN IMMEDIATE), PostgreSQL
resolves races on the unique digests with ``INSERT … ON CONFLICT DO NOTHING``
(which waits for the other transaction) and rows are written in sorted key
order so two ingests never deadlock; a transaction that still loses a race is
retried.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from driftboard.core.bundle import ARRAY_PREFIX, DEFAULT_LIMITS, Bundle, Limits, read_bundle
from driftboard.core.errors import BundleError, BundleTooLargeError, NotFoundError, StoreError
from driftboard.core.fields import flatten
from driftboard.core.run import ArrayRef, CaseResult, Run, decode_array
from driftboard.db.migrate import ensure_schema
from driftboard.db.models import (
    ArrayRow,
    CaseOutcomeRow,
    CaseResultRow,
    EnvironmentRow,
    GoldenRow,
    MachineRow,
    OutcomeArrayRow,
    RunRow,
    RunTagRow,
    VerdictRow,
)
from driftboard.db.session import database_url, is_retryable, make_engine, redacted, transaction

if TYPE_CHECKING:
    from driftboard.core.compare import RunComparison

DEFAULT_GOLDEN = "default"
DEFAULT_POLICY = "default"
PER_PAGE = 50
MAX_PER_PAGE = 1000
_ATTEMPTS = 3
_ZLIB_LEVEL = 1  # arrays are float noise: level 6 gains ~0.5% and costs more time
CODEC = "deflate"  # raw deflate (zlib, wbits=-15): what a bundle's zip entries already hold

# Fingerprint keys (core/fields.py) behind the indexed environment columns; the first present wins.
ENV_COLUMNS: dict[str, tuple[str, ...]] = {
    "torch_version": ("torch.version",),
    "cuda": ("gpu.cuda_runtime", "torch.cuda"),
    "cudnn": ("gpu.cudnn",),
    "driver": ("gpu.driver",),
    "gpu_model": ("gpu.devices[0].name",),
    "cpu_model": ("cpu.model",),
    "cpu_capability": ("torch.cpu_capability",),
}


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class IngestResult:
    run_id: str
    bundle_digest: str
    created: bool  # False: this bundle was already stored, nothing written
    case_count: int = 0
    new_arrays: int = 0  # distinct arrays this bundle added to the store
    new_bytes: int = 0  # their stored (compressed) size
    machine_key: str = ""


@dataclass(frozen=True)
class EnvironmentSummary:
    digest: str  # the run's fingerprint_digest
    torch_version: str | None
    cuda: str | None
    cudnn: str | None
    driver: str | None
    gpu_model: str | None
    cpu_model: str | None
    cpu_capability: str | None


@dataclass(frozen=True)
class RunSummary:
    """A stored run without its cases: what a list of runs shows."""

    run_id: str
    created_at: str  # as captured
    captured_at: datetime  # the same instant, UTC
    uploaded_at: datetime
    uploader: str
    label: str
    tags: tuple[str, ...]
    note: str
    suite_id: str
    suite_version: int
    variant: str
    device_class: str
    imported: bool
    case_count: int
    bundle_digest: str
    bundle_size: int
    machine_key: str
    hostname: str
    environment: EnvironmentSummary
    verdict: str | None = None  # worst verdict against the golden, when computed

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["captured_at"] = self.captured_at.isoformat()
        out["uploaded_at"] = self.uploaded_at.isoformat()
        out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunSummary, ...]
    total: int  # runs matching the filter, on every page
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "per_page": self.per_page, "pages": self.pages,
                "runs": [run.to_json() for run in self.runs]}


@dataclass(frozen=True)
class RunFilter:
    """Filters for ``Store.runs``; None means any. Version filters match whole components ("2.5" ⊇ "2.5.1")."""

    machine: str | None = None  # machine key or hostname
    label: str | None = None  # substring, case-insensitive
    tags: tuple[str, ...] = ()  # every one of them
    since: datetime | date | None = None  # captured at or after
    until: datetime | date | None = None  # captured before (a date: before the end of that day)
    torch: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    driver: str | None = None
    gpu: str | None = None  # substring of the GPU model, case-insensitive
    cpu_model: str | None = None  # substring, case-insensitive
    cpu_capability: str | None = None
    suite_version: int | None = None
    variant: str | None = None
    imported: bool | None = None
    verdict: str | None = None  # worst verdict against the golden (cached verdicts only)
    golden: str = DEFAULT_GOLDEN
    policy: str = DEFAULT_POLICY


@dataclass(frozen=True)
class MachineSummary:
    machine_key: str
    hostname: str
    first_seen: datetime
    last_seen: datetime
    run_count: int


@dataclass(frozen=True)
class GoldenKey:
    name: str
    suite_id: str
    suite_version: int
    device_class: str


@dataclass(frozen=True)
class Golden:
    key: GoldenKey
    run_id: str
    set_by: str
    set_at: datetime
    reason: str


@dataclass(frozen=True)
class VerdictSummary:
    golden_run_id: str
    run_id: str
    policy: str
    worst: str
    counts: dict[str, int] = field(hash=False)
    computed_at: datetime
    cached: bool  # False: computed by this call


@dataclass(frozen=True)
class DeleteResult:
    run_id: str
    arrays_removed: int
    bytes_freed: int  # stored (compressed) bytes of the removed arrays


@dataclass(frozen=True)
class StoreStats:
    runs: int
    machines: int
    environments: int
    outcomes: int
    arrays: int
    array_bytes: int  # raw
    stored_bytes: int  # compressed


# ---------------------------------------------------------------- arrays on demand


class DbArrays:
    """An ``ArraySource`` reading arrays from the database when asked, checking their digests."""

    def __init__(self, engine: Any, cache_items: int = 128) -> None:
        self._engine = engine
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_items = cache_items
        self._lock = threading.Lock()

    def load(self, ref: ArrayRef) -> np.ndarray:
        data = self.raw(ref.sha256)
        if len(data) != ref.nbytes:
            raise StoreError(f"array {ref.sha256[:12]}… holds {len(data)} bytes, its reference needs {ref.nbytes}")
        return decode_array(ref, data)

    def raw(self, sha256: str) -> bytes:
        with self._lock:
            data = self._cache.get(sha256)
            if data is not None:
                self._cache.move_to_end(sha256)
                return data
        self.prefetch([sha256])
        with self._lock:
            data = self._cache.get(sha256)
        if data is None:
            raise NotFoundError(f"array {sha256[:12]}… is not in the database")
        return data

    def prefetch(self, shas: Iterable[str]) -> None:
        """Read many arrays in one query (and keep them in the cache)."""
        wanted = sorted(set(shas) - self._cache.keys())
        if not wanted:
            return
        with transaction(self._engine) as session:
            rows = session.execute(
                select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data).where(ArrayRow.sha256.in_(wanted))
            ).all()
        for sha, codec, nbytes, stored in rows:
            data = _decompress(sha, codec, nbytes, stored)
            with self._lock:
                self._cache[sha] = data
                while len(self._cache) > self._cache_items:
                    self._cache.popitem(last=False)


def _decompress(sha: str, codec: str, nbytes: int, stored: bytes) -> bytes:
    if codec != CODEC:
        raise StoreError(f"array {sha[:12]}… uses unknown codec {codec!r}")
    try:
        data = zlib.decompressobj(-15).decompress(stored, nbytes + 1)
    except zlib.error as exc:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database ({exc})") from None
    if len(data) != nbytes or hashlib.sha256(data).hexdigest() != sha:
        raise StoreError(f"array {sha[:12]}… is corrupt in the database (content does not match its sha256)")
    return data


# ---------------------------------------------------------------- the store


class Store:
    """One database. ``Store(url)``: see ``db.session.database_url`` for how ``url`` is resolved.

    Opening refuses a database whose schema is not current (``SchemaOutOfDateError``
    naming the command to run); an empty SQLite database gets the schema created
    (``create_if_empty``, default: SQLite only; see ``db/migrate.py``).
    """

    def __init__(self, url: str | None = None, *, create_if_empty: bool | None = None) -> None:
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        create = self.dialect == "sqlite" if create_if_empty is None else create_if_empty
        try:
            ensure_schema(self.engine, self.url, create_if_empty=create)
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({redacted(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ ingest

    def ingest(self, source: str | Path | bytes, *, uploader: str = "", limits: Limits = DEFAULT_LIMITS) -> IngestResult:
        """Validate a bundle file (or its bytes) fully, then store it in one transaction."""
        data = _read_source(source, limits)
        bundle = read_bundle(data, limits)
        return self.ingest_bundle(bundle, uploader=uploader, _file=data)

    def ingest_bundle(self, bundle: Bundle, *, uploader: str = "", _file: bytes | None = None) -> IngestResult:
        """Store a bundle ``read_bundle`` validated. Storing one already stored changes nothing."""
        plan = _Plan.of(bundle, uploader)
        streams = _Streams(_file)
        for attempt in range(_ATTEMPTS):
            try:
                return self._ingest_once(plan, streams)
            except StoreError as exc:
                if attempt + 1 == _ATTEMPTS or not is_retryable(exc):
                    raise
        raise AssertionError("unreachable")

    def _ingest_once(self, plan: _Plan, streams: _Streams) -> IngestResult:
        with transaction(self.engine) as session:  # outside the write lock: is it new, what is missing?
            if _stored_run_id(session, plan.bundle_digest) is not None:
                return plan.duplicate()
            missing = _missing_arrays(session, plan.array_shas)
        stored = {sha: _stored_form(plan.blobs[sha], streams.get(sha)) for sha in missing}
        with transaction(self.engine, write=True) as session:
            if _stored_run_id(session, plan.bundle_digest) is not None:
                return plan.duplicate()
            _refuse_run_id_clash(session, plan)
            machine_pk = _upsert_machine(session, plan)
            environment_pk = _upsert_environment(session, plan)
            run_pk = _insert_run(session, plan, machine_pk, environment_pk)
            if run_pk is None:  # a concurrent ingest of the same bundle or run id won the race
                if _stored_run_id(session, plan.bundle_digest) is not None:
                    return plan.duplicate()
                _refuse_run_id_clash(session, plan)
                raise StoreError(f"run {plan.run.run_id} could not be stored: a concurrent change conflicted")
            for sha in _missing_arrays(session, plan.array_shas) - stored.keys():
                stored[sha] = _stored_form(plan.blobs[sha], streams.get(sha))
            new_arrays = _insert_arrays(session, plan, stored)
            outcome_ids = _upsert_outcomes(session, plan)
            _insert_case_results(session, plan, run_pk, outcome_ids)
            _insert_tags(session, run_pk, plan.run.tags)
        return IngestResult(
            run_id=plan.run.run_id,
            bundle_digest=plan.bundle_digest,
            created=True,
            case_count=len(plan.run.cases),
            new_arrays=len(new_arrays),
            new_bytes=sum(len(stored[sha]) for sha in new_arrays),
            machine_key=plan.machine_key,
        )

    # ------------------------------------------------------------ runs

    def runs(self, filters: RunFilter | None = None, *, page: int = 1, per_page: int = PER_PAGE) -> RunPage:
        """One page of runs, newest first, with the total count of runs matching ``filters``."""
        filters = filters or RunFilter()
        page = max(1, int(page))
        per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
        with transaction(self.engine) as session:
            total = session.execute(_filtered(_count_query(), filters)).scalar_one()
            rows = session.execute(
                _filtered(_summary_columns(filters), filters)
                .order_by(RunRow.captured_at.desc(), RunRow.id.desc())
                .limit(per_page)
                .offset((page - 1) * per_page)
            ).all()
        return RunPage(tuple(_summary(row) for row in rows), total, page, per_page)

    def run(self, run_id: str) -> RunSummary:
        """One stored run (``run_id`` or an unambiguous prefix of it)."""
        with transaction(self.engine) as session:
            pk = _run_pk(session, run_id)
            row = session.execute(_summary_columns(RunFilter()).where(RunRow.id == pk)).one()
        return _summary(row)

    def machines(self) -> tuple[MachineSummary, ...]:
        with transaction(self.engine) as session:
            rows = session.execute(
                select(MachineRow.machine_key, MachineRow.hostname, MachineRow.first_seen, MachineRow.last_seen,
                       func.count(RunRow.id))
                .outerjoin(RunRow, RunRow.machine_id == MachineRow.id)
                .group_by(MachineRow.id)
                .order_by(MachineRow.hostname, MachineRow.machine_key)
            ).all()
        return tuple(MachineSummary(*row) for row in rows)

    def machine_history(self, machine: str, *, golden: str = DEFAULT_GOLDEN,
                        policy: str = DEFAULT_POLICY) -> tuple[RunSummary, ...]:
        """Every run of one machine (key or hostname), oldest first."""
        with transaction(self.engine) as session:
            pk = _machine_pk(session, machine)
            rows = session.execute(
                _summary_columns(RunFilter(golden=golden, policy=policy))
                .where(RunRow.machine_id == pk)
                .order_by(RunRow.captured_at, RunRow.id)
            ).all()
        return tuple(_summary(row) for row in rows)

    def case_results(self, run_id: str) -> tuple[CaseResult, ...]:
        """A run's cases, with array references but no array read."""
        with transaction(self.engine) as session:
            return _cases(session, _run_pk(session, run_id))

    def load_run(self, run_id: str) -> tuple[Run, DbArrays]:
        """The run as captured, and an ``ArraySource`` that reads its arrays on demand."""
        with transaction(self.engine) as session:
            pk = _run_pk(session, run_id)
            row, fingerprint, fp_digest = session.execute(
                select(RunRow, EnvironmentRow.fingerprint, EnvironmentRow.digest)
                .join(EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)
                .where(RunRow.id == pk)
            ).one()
            cases = _cases(session, pk)
        run = Run(
            run_id=row.run_id, created_at=row.created_at, suite_id=row.suite_id, suite_version=row.suite_version,
            variant=row.variant, fingerprint=fingerprint, fingerprint_digest=fp_digest, cases=cases,
            settings=row.settings, label=row.label, tags=tuple(row.tags), note=row.note,
            tool_version=row.tool_version, imported=row.imported,
        )
        return run, self.arrays()

    def arrays(self) -> DbArrays:
        return DbArrays(self.engine)

    def compare(self, baseline: str, candidate: str, policy: str | None = None) -> RunComparison:
        """Two stored runs compared by ``core.compare`` (arrays read only where digests differ)."""
        from driftboard.core.compare import compare_runs, parse_policy

        parsed = parse_policy(policy) if policy else None
        base_run, base_arrays = self.load_run(baseline)
        cand_run, cand_arrays = self.load_run(candidate)
        return compare_runs(base_run, base_arrays, cand_run, cand_arrays, parsed)

    def delete_run(self, run_id: str) -> DeleteResult:
        """Remove a run, and the outcomes, arrays and environment no other run uses."""
        with transaction(self.engine, write=True) as session:
            pk = _run_pk(session, run_id)
            name = session.execute(select(RunRow.run_id).where(RunRow.id == pk)).scalar_one()
            golden = session.execute(select(GoldenRow.name).where(GoldenRow.run_pk == pk)).scalars().first()
            if golden is not None:
                raise StoreError(f"run {name} is the golden {golden!r}: clear that golden before deleting the run")
            environment_pk = session.execute(select(RunRow.environment_id).where(RunRow.id == pk)).scalar_one()
            outcome_ids = set(session.execute(
                select(CaseResultRow.outcome_id).where(CaseResultRow.run_pk == pk)).scalars())
            for table, column in ((CaseResultRow, CaseResultRow.run_pk), (RunTagRow, RunTagRow.run_pk),
                                  (VerdictRow, VerdictRow.run_pk), (VerdictRow, VerdictRow.golden_run_pk)):
                session.execute(delete(table).where(column == pk))
            session.execute(delete(RunRow).where(RunRow.id == pk))
            removed, freed = _remove_orphans(session, outcome_ids)
            if session.execute(select(RunRow.id).where(RunRow.environment_id == environment_pk).limit(1)).first() is None:
                session.execute(delete(EnvironmentRow).where(EnvironmentRow.id == environment_pk))
        return DeleteResult(name, removed, freed)

    def stats(self) -> StoreStats:
        with transaction(self.engine) as session:
            def count(column: Any) -> int:
                return session.execute(select(func.count(column))).scalar_one()

            raw, stored = session.execute(
                select(func.coalesce(func.sum(ArrayRow.nbytes), 0), func.coalesce(func.sum(ArrayRow.stored_bytes), 0))
            ).one()
            return StoreStats(count(RunRow.id), count(MachineRow.id), count(EnvironmentRow.id),
                              count(CaseOutcomeRow.id), count(ArrayRow.sha256), int(raw), int(stored))

    # ------------------------------------------------------------ goldens

    def set_golden(self, run_id: str, *, name: str = DEFAULT_GOLDEN, set_by: str = "", reason: str = "") -> Golden:
        """Make a run the golden ``name`` for its suite version and device class."""
        name = name.strip()
        if not name or len(name) > 64:
            raise StoreError("a golden name must have 1 to 64 characters")
        now = _now()
        with transaction(self.engine, write=True) as session:
            pk = _run_pk(session, run_id)
            run = session.execute(select(RunRow).where(RunRow.id == pk)).scalar_one()
            if run.imported or run.case_count == 0:
                raise StoreError(f"run {run.run_id} has no case outputs (an imported environment): it cannot be a golden")
            key = GoldenKey(name, run.suite_id, run.suite_version, run.device_class)
            current = session.execute(select(GoldenRow).where(*_golden_where(key))).scalar_one_or_none()
            if current is None:
                session.add(GoldenRow(name=name, suite_id=key.suite_id, suite_version=key.suite_version,
                                      device_class=key.device_class, run_pk=pk, set_by=set_by, set_at=now,
                                      reason=reason))
            else:
                old_pk = current.run_pk
                current.run_pk, current.set_by, current.set_at, current.reason = pk, set_by, now, reason
                session.flush()
                if old_pk != pk:
                    _forget_verdicts_of(session, old_pk)
            return Golden(key, run.run_id, set_by, now, reason)

    def clear_golden(self, key: GoldenKey) -> bool:
        """Remove a golden (its cached verdicts go with it); False when there was none."""
        with transaction(self.engine, write=True) as session:
            current = session.execute(select(GoldenRow).where(*_golden_where(key))).scalar_one_or_none()
            if current is None:
                return False
            old_pk = current.run_pk
            session.delete(current)
            session.flush()
            _forget_verdicts_of(session, old_pk)
            return True

    def goldens(self, name: str | None = None) -> tuple[Golden, ...]:
        with transaction(self.engine) as session:
            query = select(GoldenRow, RunRow.run_id).join(RunRow, RunRow.id == GoldenRow.run_pk)
            if name is not None:
                query = query.where(GoldenRow.name == name)
            rows = session.execute(query.order_by(GoldenRow.name, GoldenRow.suite_id, GoldenRow.suite_version,
                                                  GoldenRow.device_class)).all()
        return tuple(_golden(row, run_id) for row, run_id in rows)

    def golden_for(self, run_id: str, *, name: str = DEFAULT_GOLDEN) -> Golden | None:
        """The golden ``name`` that applies to a run (same suite version and device class), if set."""
        with transaction(self.engine) as session:
            run = session.execute(select(RunRow).where(RunRow.id == _run_pk(session, run_id))).scalar_one()
            key = GoldenKey(name, run.suite_id, run.suite_version, run.device_class)
            row = session.execute(
                select(GoldenRow, RunRow.run_id).join(RunRow, RunRow.id == GoldenRow.run_pk).where(*_golden_where(key))
            ).first()
        return None if row is None else _golden(row[0], row[1])

    # ------------------------------------------------------------ verdicts

    def verdict(self, run_id: str, *, golden: str = DEFAULT_GOLDEN, policy: str | None = None) -> VerdictSummary | None:
        """A run's worst verdict against its golden: cached, or computed once and kept.

        None when no golden applies to the run, or the run has no cases (imported).
        """
        policy_key = _policy_key(policy)
        with transaction(self.engine) as session:
            pk = _run_pk(session, run_id)
            found = _verdict_lookup(session, pk, golden, policy_key)
        if found is None:
            return None
        run_name, golden_name, golden_pk, cached = found
        if cached is not None:
            return _verdict_summary(golden_name, run_name, cached, True)
        row = self._judge(golden_pk, golden_name, pk, run_name, policy_key, self.arrays(), {})
        self._keep_verdicts([row])
        return _verdict_summary(golden_name, run_name, VerdictRow(**row), False)

    def refresh_verdicts(self, *, golden: str = DEFAULT_GOLDEN, policy: str | None = None,
                         run_ids: Sequence[str] | None = None) -> int:
        """Compute the verdicts not cached yet (of ``run_ids``, or every run); returns how many."""
        policy_key = _policy_key(policy)
        golden_run = RunRow.__table__.alias("gr")
        with transaction(self.engine) as session:
            query = (
                select(RunRow.id, RunRow.run_id, GoldenRow.run_pk, golden_run.c.run_id)
                .join(GoldenRow, and_(GoldenRow.name == golden, *_same_suite(GoldenRow)))
                .join(golden_run, golden_run.c.id == GoldenRow.run_pk)
                .outerjoin(VerdictRow, and_(VerdictRow.golden_run_pk == GoldenRow.run_pk,
                                            VerdictRow.run_pk == RunRow.id, VerdictRow.policy == policy_key))
                .where(VerdictRow.run_pk.is_(None), RunRow.case_count > 0)
                .order_by(GoldenRow.run_pk, RunRow.id)
            )
            if run_ids is not None:
                query = query.where(RunRow.run_id.in_(list(run_ids)))
            todo = session.execute(query).all()
        arrays, goldens, batch = self.arrays(), {}, []  # one array cache for all: arrays repeat across runs
        for run_pk, run_name, golden_pk, golden_name in todo:
            batch.append(self._judge(golden_pk, golden_name, run_pk, run_name, policy_key, arrays, goldens))
            if len(batch) == 200:
                self._keep_verdicts(batch)
                batch = []
        self._keep_verdicts(batch)
        return len(todo)

    def _judge(self, golden_pk: int, golden_name: str, run_pk: int, run_name: str, policy_key: str,
               arrays: DbArrays, goldens: dict[int, Run]) -> dict[str, Any]:
        """The verdict row of one run against one golden run."""
        from driftboard.core.compare import compare_runs, parse_policy

        if golden_pk not in goldens:
            goldens[golden_pk] = self.load_run(golden_name)[0]
        candidate = self.load_run(run_name)[0]
        policy = None if policy_key == DEFAULT_POLICY else parse_policy(policy_key)
        comparison = compare_runs(goldens[golden_pk], arrays, candidate, arrays, policy)
        counts = {verdict.value: n for verdict, n in comparison.counts().items() if n}
        return {"golden_run_pk": golden_pk, "run_pk": run_pk, "policy": policy_key,
                "worst": comparison.worst.value, "counts": counts, "computed_at": _now()}

    def _keep_verdicts(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with transaction(self.engine, write=True) as session:
            # The golden may have changed (or a run gone) while comparing: keep only what still applies.
            goldens = set(session.execute(select(GoldenRow.run_pk).where(
                GoldenRow.run_pk.in_(sorted({r["golden_run_pk"] for r in rows})))).scalars())
            runs = set(session.execute(select(RunRow.id).where(
                RunRow.id.in_(sorted({r["run_pk"] for r in rows})))).scalars())
            keep = [r for r in rows if r["golden_run_pk"] in goldens and r["run_pk"] in runs]
            if keep:
                session.execute(_insert(session, VerdictRow).on_conflict_do_nothing(), keep)


_OPEN: dict[str, Store] = {}
_OPEN_LOCK = threading.Lock()


def load_stored_run(run_id: str, db_url: str | None = None) -> tuple[Run, DbArrays]:
    """A stored run and its arrays, for commands that take a run id where a bundle path also works.

    One ``Store`` per database for the process, so comparing two stored runs opens it once.
    """
    url = database_url(db_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():  # a mistyped file name must not create a database
        raise NotFoundError(f"no run {run_id!r}: there is no database at {parsed.database}")
    with _OPEN_LOCK:
        store = _OPEN.get(url)
        if store is None:
            store = _OPEN[url] = Store(url)
    return store.load_run(run_id)


# ---------------------------------------------------------------- ingest helpers


@dataclass(frozen=True)
class _Plan:
    """Everything an ingest writes, computed before any transaction."""

    run: Run
    bundle_digest: str
    bundle_size: int
    uploader: str
    blobs: dict[str, bytes]
    machine_key: str
    hostname: str
    captured_at: datetime
    environment_key: str
    environment_columns: dict[str, str | None]
    device_class: str
    outcomes: dict[str, dict[str, Any]]  # digest -> row, sorted by digest
    outcome_of_case: tuple[str, ...]  # per case, its outcome digest
    outcome_arrays: dict[str, tuple[str, ...]]  # outcome digest -> array shas
    array_shas: tuple[str, ...]  # sorted

    @classmethod
    def of(cls, bundle: Bundle, uploader: str) -> _Plan:
        run = bundle.run
        flat = flatten(run.fingerprint)
        outcomes: dict[str, dict[str, Any]] = {}
        links: dict[str, tuple[str, ...]] = {}
        per_case = []
        for case in run.cases:
            digest, row = _outcome_row(case)
            outcomes[digest] = row
            links[digest] = tuple(sorted({ref.sha256 for ref in case.refs()}))
            per_case.append(digest)
        shas = sorted({ref.sha256 for case in run.cases for ref in case.refs()})
        _refuse_unstorable(run, flat)
        return cls(
            run=run,
            bundle_digest=bundle.digest,
            bundle_size=bundle.size,
            uploader=_clean_text(uploader)[:200],
            blobs=bundle.arrays.blobs,
            machine_key=_machine_key(flat),
            hostname=_text(flat.get("identity.hostname"), 255) or "",
            captured_at=_captured_at(run.created_at),
            environment_key=_json_digest({"fingerprint": run.fingerprint, "digest": run.fingerprint_digest}),
            environment_columns={column: _env_value(flat, keys, _ENV_LENGTHS[column])
                                 for column, keys in ENV_COLUMNS.items()},
            device_class=device_class(run),
            outcomes=dict(sorted(outcomes.items())),
            outcome_of_case=tuple(per_case),
            outcome_arrays=links,
            array_shas=tuple(shas),
        )

    def duplicate(self) -> IngestResult:
        return IngestResult(self.run.run_id, self.bundle_digest, created=False, case_count=len(self.run.cases),
                            machine_key=self.machine_key)


def device_class(run: Run) -> str:
    """What kind of device a run's outputs come from: goldens are per suite version and device class."""
    devices = {case.device.split(":")[0] for case in run.cases}
    for accelerator in ("cuda", "mps", "xpu"):
        if accelerator in devices:
            return accelerator
    if devices:
        return "cpu"
    gpu = run.fingerprint.get("gpu") if isinstance(run.fingerprint.get("gpu"), dict) else {}
    return "cuda" if isinstance(gpu.get("count"), int) and gpu["count"] > 0 else "cpu"


def _outcome_row(case: CaseResult) -> tuple[str, dict[str, Any]]:
    layers = [[name, ref.sha256, ref.dtype, list(ref.shape)] for name, ref in case.layers]
    out = case.output
    row = {
        "case_id": case.case_id, "device": case.device, "dtype": case.dtype,
        "input_digest": case.input_digest, "weight_digest": case.weight_digest,
        "output_sha": out.sha256 if out else None, "output_dtype": out.dtype if out else None,
        "output_shape": list(out.shape) if out else None, "layers": layers,
        "time_axis": case.time_axis, "error": case.error,
    }
    digest = _json_digest(row)
    return digest, {"digest": digest, **row}


def _json_digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, (dict, list)) or value == "":
        return None  # absent, or a failed probe recorded as {"error": ...}
    return str(value)[:limit]


def _env_value(flat: dict[str, Any], keys: tuple[str, ...], limit: int) -> str | None:
    for key in keys:
        value = _text(flat.get(key), limit)
        if value is not None:
            return value
    return None


def _machine_key(flat: dict[str, Any]) -> str:
    machine_id = _text(flat.get("identity.machine_id"), 200)
    if machine_id:
        return machine_id
    hostname = _text(flat.get("identity.hostname"), 190)
    return f"host:{hostname}" if hostname else "unknown"


# Column lengths of the environment columns: PostgreSQL refuses a longer value, SQLite would keep it.
_ENV_LENGTHS = {column: EnvironmentRow.__table__.c[column].type.length for column in ENV_COLUMNS}
_INT32_MAX = 2**31 - 1  # Integer columns are 32-bit on PostgreSQL
_IDENTITY_KEYS = ("identity.hostname", "identity.machine_id")


def _refuse_unstorable(run: Run, flat: dict[str, Any]) -> None:
    """What ``read_bundle`` accepts but a database column cannot hold, refused before any write.

    Found by fuzzing the upload path: a lone surrogate (valid JSON, not UTF-8)
    crashed both drivers, NUL passed SQLite but not PostgreSQL, integers beyond
    the columns' range crashed SQLite's driver, a time near year 1 or 9999
    overflowed when converted to UTC.
    """
    texts: list[tuple[str, str | None]] = [
        ("run.created_at", run.created_at), ("run.label", run.label), ("run.note", run.note),
        ("run.tool_version", run.tool_version),
        *((f"run.tags[{i}]", tag) for i, tag in enumerate(run.tags)),
        *((f"cases[{i}].error", case.error) for i, case in enumerate(run.cases)),
        *((f"fingerprint.{key}", _text(flat.get(key), 255))
          for key in (*_IDENTITY_KEYS, *(k for keys in ENV_COLUMNS.values() for k in keys))),
    ]
    for field_name, value in texts:
        if value is None:
            continue
        if "\x00" in value:
            raise BundleError(field_name, "contains a NUL character")
        if not _is_utf8(value):
            raise BundleError(field_name, "is not valid Unicode text (it holds a lone surrogate)")
    if run.suite_version > _INT32_MAX:
        raise BundleError("run.suite.version", f"{run.suite_version} is larger than {_INT32_MAX}")
    for i, case in enumerate(run.cases):
        if case.repeats > _INT32_MAX:
            raise BundleError(f"cases[{i}].repeats", f"{case.repeats} is larger than {_INT32_MAX}")
    _captured_at(run.created_at)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text(text: str) -> str:
    """Text any database stores: NUL removed, lone surrogates (undecodable bytes of a login name) replaced."""
    text = text.replace("\x00", "")
    return text if _is_utf8(text) else text.encode("utf-8", "replace").decode("utf-8")


def _captured_at(created_at: str) -> datetime:
    try:
        return _utc(created_at)
    except (OverflowError, ValueError):
        raise BundleError("run.created_at", f"{created_at!r} is out of range once converted to UTC") from None


def _utc(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _read_source(source: str | Path | bytes, limits: Limits) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        size = path.stat().st_size
        if size > limits.file_bytes:
            raise BundleTooLargeError("file", f"{size} bytes exceeds the limit of {limits.file_bytes}")
        return path.read_bytes()
    except OSError as exc:
        raise BundleError("file", f"cannot read {path}: {exc.strerror or exc}") from None


class _Streams:
    """The bundle file's deflate streams, found only if some array is new."""

    def __init__(self, data: bytes | None) -> None:
        self._data = data
        self._streams: dict[str, bytes] | None = None

    def get(self, sha: str) -> bytes | None:
        if self._streams is None:
            self._streams = _deflate_streams(self._data) if self._data is not None else {}
        return self._streams.get(sha)


def _deflate_streams(data: bytes) -> dict[str, bytes]:
    """The deflate stream of each array entry of a (validated) bundle, to store without recompressing."""
    streams: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if not info.filename.startswith(ARRAY_PREFIX) or info.compress_type != zipfile.ZIP_DEFLATED:
                continue
            if info.flag_bits & 0x1:  # encrypted: never ours
                continue
            header = data[info.header_offset:info.header_offset + 30]
            if len(header) < 30 or header[:4] != b"PK\x03\x04":
                continue
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            streams[info.filename[len(ARRAY_PREFIX):]] = data[start:start + info.compress_size]
    return streams


def _stored_form(raw: bytes, stream: bytes | None) -> bytes:
    """Raw deflate bytes for an array: the bundle's own stream when it has one, else compressed here.

    The bundle's stream is stored as is (no second compression at ingest). It is
    safe without re-checking: loading inflates at most ``nbytes`` and checks the
    sha256, so a stream with trailing bytes still yields exactly the array.
    """
    if stream is not None:
        return stream
    compressor = zlib.compressobj(_ZLIB_LEVEL, zlib.DEFLATED, -15)
    return compressor.compress(raw) + compressor.flush()


def _insert(session: Session, model: type) -> Any:
    """INSERT for the session's dialect, with ``on_conflict_do_nothing`` available."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise StoreError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


def _stored_run_id(session: Session, bundle_digest: str) -> str | None:
    return session.execute(select(RunRow.run_id).where(RunRow.bundle_digest == bundle_digest)).scalar()


def _refuse_run_id_clash(session: Session, plan: _Plan) -> None:
    other = session.execute(select(RunRow.bundle_digest).where(RunRow.run_id == plan.run.run_id)).scalar()
    if other is not None and other != plan.bundle_digest:
        raise StoreError(
            f"run id {plan.run.run_id} is already stored with different content (bundle {other[:12]}…, "
            f"this one {plan.bundle_digest[:12]}…): delete the stored run first"
        )


def _missing_arrays(session: Session, shas: Sequence[str]) -> set[str]:
    present: set[str] = set()
    for chunk in _chunks(shas, 500):
        present.update(session.execute(select(ArrayRow.sha256).where(ArrayRow.sha256.in_(chunk))).scalars())
    return set(shas) - present


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _upsert_machine(session: Session, plan: _Plan) -> int:
    when = plan.captured_at
    session.execute(
        _insert(session, MachineRow).on_conflict_do_nothing(index_elements=["machine_key"]),
        [{"machine_key": plan.machine_key, "hostname": plan.hostname, "first_seen": when, "last_seen": when}],
    )
    pk, first, last = session.execute(
        select(MachineRow.id, MachineRow.first_seen, MachineRow.last_seen).where(MachineRow.machine_key == plan.machine_key)
    ).one()
    if when < first:
        session.execute(update(MachineRow).where(MachineRow.id == pk).values(first_seen=when))
    if when > last:
        session.execute(update(MachineRow).where(MachineRow.id == pk).values(last_seen=when, hostname=plan.hostname))
    return pk


def _upsert_environment(session: Session, plan: _Plan) -> int:
    row = {"content_key": plan.environment_key, "digest": plan.run.fingerprint_digest,
           "fingerprint": plan.run.fingerprint, **plan.environment_columns}
    query = select(EnvironmentRow.id).where(EnvironmentRow.content_key == plan.environment_key)
    pk = session.execute(query).scalar()
    if pk is None:
        session.execute(_insert(session, EnvironmentRow).on_conflict_do_nothing(index_elements=["content_key"]), [row])
        pk = session.execute(query).scalar_one()
    return pk


def _insert_run(session: Session, plan: _Plan, machine_pk: int, environment_pk: int) -> int | None:
    run = plan.run
    row = {
        "run_id": run.run_id, "bundle_digest": plan.bundle_digest, "bundle_size": plan.bundle_size,
        "created_at": run.created_at, "captured_at": plan.captured_at, "uploaded_at": _now(),
        "uploader": plan.uploader, "label": run.label, "tags": list(run.tags), "note": run.note,
        "suite_id": run.suite_id, "suite_version": run.suite_version, "variant": run.variant,
        "device_class": plan.device_class, "settings": run.settings, "tool_version": run.tool_version,
        "imported": run.imported, "case_count": len(run.cases), "machine_id": machine_pk,
        "environment_id": environment_pk,
    }
    stmt = _insert(session, RunRow).values(row).on_conflict_do_nothing().returning(RunRow.id)
    return session.execute(stmt).scalar()


def _insert_arrays(session: Session, plan: _Plan, stored: dict[str, bytes]) -> list[str]:
    wanted = sorted(_missing_arrays(session, plan.array_shas))
    rows = [{"sha256": sha, "nbytes": len(plan.blobs[sha]), "stored_bytes": len(stored[sha]), "codec": CODEC,
             "data": stored[sha]} for sha in wanted]
    if rows:
        session.execute(_insert(session, ArrayRow).on_conflict_do_nothing(index_elements=["sha256"]), rows)
    return wanted


def _outcome_ids(session: Session, digests: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(digests, 500):
        rows = session.execute(select(CaseOutcomeRow.digest, CaseOutcomeRow.id).where(CaseOutcomeRow.digest.in_(chunk)))
        found.update((digest, pk) for digest, pk in rows)
    return found


def _upsert_outcomes(session: Session, plan: _Plan) -> dict[str, int]:
    digests = list(plan.outcomes)
    ids = _outcome_ids(session, digests)
    new = [digest for digest in digests if digest not in ids]
    if new:
        session.execute(_insert(session, CaseOutcomeRow).on_conflict_do_nothing(index_elements=["digest"]),
                        [plan.outcomes[d] for d in new])
        ids.update(_outcome_ids(session, new))
        links = sorted((ids[d], sha) for d in new for sha in plan.outcome_arrays[d])
        if links:
            session.execute(_insert(session, OutcomeArrayRow).on_conflict_do_nothing(),
                            [{"outcome_id": pk, "array_sha": sha} for pk, sha in links])
    return ids


def _insert_case_results(session: Session, plan: _Plan, run_pk: int, outcome_ids: dict[str, int]) -> None:
    rows = [
        {"run_pk": run_pk, "position": i, "outcome_id": outcome_ids[digest], "repeats": case.repeats,
         "repeat_identical": case.repeat_identical, "seconds": case.seconds}
        for i, (case, digest) in enumerate(zip(plan.run.cases, plan.outcome_of_case))
    ]
    if rows:
        session.execute(_insert(session, CaseResultRow), rows)


def _insert_tags(session: Session, run_pk: int, tags: Sequence[str]) -> None:
    if tags:
        session.execute(_insert(session, RunTagRow), [{"run_pk": run_pk, "tag": t} for t in sorted(set(tags))])


def _remove_orphans(session: Session, outcome_ids: set[int]) -> tuple[int, int]:
    """Delete the outcomes no run uses any more, then the arrays no outcome uses; (arrays, stored bytes)."""
    if not outcome_ids:
        return 0, 0
    still_used = set(session.execute(
        select(CaseResultRow.outcome_id).where(CaseResultRow.outcome_id.in_(sorted(outcome_ids))).distinct()
    ).scalars())
    orphans = sorted(outcome_ids - still_used)
    if not orphans:
        return 0, 0
    shas = set(session.execute(
        select(OutcomeArrayRow.array_sha).where(OutcomeArrayRow.outcome_id.in_(orphans))).scalars())
    session.execute(delete(OutcomeArrayRow).where(OutcomeArrayRow.outcome_id.in_(orphans)))
    session.execute(delete(CaseOutcomeRow).where(CaseOutcomeRow.id.in_(orphans)))
    if not shas:
        return 0, 0
    kept = set(session.execute(
        select(OutcomeArrayRow.array_sha).where(OutcomeArrayRow.array_sha.in_(sorted(shas))).distinct()).scalars())
    kept |= set(session.execute(
        select(CaseOutcomeRow.output_sha).where(CaseOutcomeRow.output_sha.in_(sorted(shas))).distinct()).scalars())
    gone = sorted(shas - kept)
    if not gone:
        return 0, 0
    freed = session.execute(
        select(func.coalesce(func.sum(ArrayRow.stored_bytes), 0)).where(ArrayRow.sha256.in_(gone))).scalar_one()
    session.execute(delete(ArrayRow).where(ArrayRow.sha256.in_(gone)))
    return len(gone), int(freed)


# ---------------------------------------------------------------- query helpers


def _run_pk(session: Session, run_id: str) -> int:
    """The row of a run id, or of the one run whose id starts with ``run_id``."""
    pk = session.execute(select(RunRow.id).where(RunRow.run_id == run_id)).scalar()
    if pk is not None:
        return pk
    matches = session.execute(
        select(RunRow.id, RunRow.run_id).where(RunRow.run_id.startswith(run_id, autoescape=True)).limit(4)
    ).all() if run_id else []
    if len(matches) == 1:
        return matches[0][0]
    if matches:
        names = ", ".join(name for _, name in matches[:3])
        raise NotFoundError(f"run id {run_id!r} is ambiguous: it starts {names}{', …' if len(matches) > 3 else ''}")
    raise NotFoundError(f"no run {run_id!r} in the database")


def _machine_pk(session: Session, machine: str) -> int:
    rows = session.execute(
        select(MachineRow.id).where(or_(MachineRow.machine_key == machine, MachineRow.hostname == machine)).limit(2)
    ).scalars().all()
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise NotFoundError(f"hostname {machine!r} names several machines: use the machine key")
    raise NotFoundError(f"no machine {machine!r} in the database")


def _same_suite(golden: Any) -> list[Any]:
    return [golden.suite_id == RunRow.suite_id, golden.suite_version == RunRow.suite_version,
            golden.device_class == RunRow.device_class]


def _summary_columns(filters: RunFilter) -> Select[Any]:
    golden = GoldenRow.__table__.alias("g")
    verdict = VerdictRow.__table__.alias("v")
    return (
        select(
            RunRow.run_id, RunRow.created_at, RunRow.captured_at, RunRow.uploaded_at, RunRow.uploader, RunRow.label,
            RunRow.tags, RunRow.note, RunRow.suite_id, RunRow.suite_version, RunRow.variant, RunRow.device_class,
            RunRow.imported, RunRow.case_count, RunRow.bundle_digest, RunRow.bundle_size,
            MachineRow.machine_key, MachineRow.hostname,
            EnvironmentRow.digest, EnvironmentRow.torch_version, EnvironmentRow.cuda, EnvironmentRow.cudnn,
            EnvironmentRow.driver, EnvironmentRow.gpu_model, EnvironmentRow.cpu_model, EnvironmentRow.cpu_capability,
            verdict.c.worst,
        )
        .select_from(RunRow)
        .join(MachineRow, MachineRow.id == RunRow.machine_id)
        .join(EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)
        .outerjoin(golden, and_(golden.c.name == filters.golden, *_same_suite(golden.c)))
        .outerjoin(verdict, and_(verdict.c.golden_run_pk == golden.c.run_pk, verdict.c.run_pk == RunRow.id,
                                 verdict.c.policy == _policy_key(filters.policy)))
    )


def _count_query() -> Select[Any]:
    return select(func.count(RunRow.id)).select_from(RunRow).join(
        EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)


def _summary(row: Any) -> RunSummary:
    (run_id, created_at, captured_at, uploaded_at, uploader, label, tags, note, suite_id, suite_version, variant,
     device, imported, case_count, bundle_digest, bundle_size, machine_key, hostname, *env, worst) = row
    return RunSummary(
        run_id=run_id, created_at=created_at, captured_at=captured_at, uploaded_at=uploaded_at, uploader=uploader,
        label=label, tags=tuple(tags), note=note, suite_id=suite_id, suite_version=suite_version, variant=variant,
        device_class=device, imported=imported, case_count=case_count, bundle_digest=bundle_digest,
        bundle_size=bundle_size, machine_key=machine_key, hostname=hostname,
        environment=EnvironmentSummary(*env), verdict=worst,
    )


def _version_match(column: Any, value: str) -> Any:
    """"12" matches 12, 12.1 and 12.1+cu121, not 120."""
    return or_(column == value, column.startswith(value + ".", autoescape=True),
               column.startswith(value + "+", autoescape=True))


def _filtered(query: Select[Any], f: RunFilter) -> Select[Any]:
    conditions: list[Any] = []
    if f.machine:
        conditions.append(RunRow.machine_id.in_(select(MachineRow.id).where(
            or_(MachineRow.machine_key == f.machine, MachineRow.hostname == f.machine))))
    if f.label:
        conditions.append(RunRow.label.icontains(f.label, autoescape=True))
    for tag in f.tags:
        conditions.append(RunRow.id.in_(select(RunTagRow.run_pk).where(RunTagRow.tag == tag)))
    if f.since is not None:
        conditions.append(RunRow.captured_at >= _instant(f.since, end=False))
    if f.until is not None:
        conditions.append(RunRow.captured_at < _instant(f.until, end=True))
    for value, column in ((f.torch, EnvironmentRow.torch_version), (f.cuda, EnvironmentRow.cuda),
                          (f.cudnn, EnvironmentRow.cudnn), (f.driver, EnvironmentRow.driver)):
        if value:
            conditions.append(_version_match(column, value))
    for value, column in ((f.gpu, EnvironmentRow.gpu_model), (f.cpu_model, EnvironmentRow.cpu_model)):
        if value:
            conditions.append(column.icontains(value, autoescape=True))
    if f.cpu_capability:
        conditions.append(func.lower(EnvironmentRow.cpu_capability) == f.cpu_capability.lower())
    if f.suite_version is not None:
        conditions.append(RunRow.suite_version == f.suite_version)
    if f.variant:
        conditions.append(RunRow.variant == f.variant)
    if f.imported is not None:
        conditions.append(RunRow.imported.is_(f.imported))
    if f.verdict:
        golden = GoldenRow.__table__.alias("gf")
        verdict = VerdictRow.__table__.alias("vf")
        conditions.append(
            select(verdict.c.run_pk)
            .join(golden, golden.c.run_pk == verdict.c.golden_run_pk)
            .where(verdict.c.run_pk == RunRow.id, golden.c.name == f.golden,
                   verdict.c.policy == _policy_key(f.policy), verdict.c.worst == _verdict_value(f.verdict),
                   *_same_suite(golden.c))
            .exists()
        )
    return query.where(*conditions) if conditions else query


def _instant(value: datetime | date, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value
    day = datetime.combine(value, time.min, tzinfo=UTC)
    return day + timedelta(days=1) if end else day


def _verdict_value(text: str) -> str:
    from driftboard.core.compare import Verdict

    wanted = " ".join(text.replace("-", " ").replace("_", " ").split()).lower()
    for verdict in Verdict:
        if verdict.value == wanted:
            return verdict.value
    raise StoreError(f"unknown verdict {text!r}: expected one of {', '.join(v.value for v in Verdict)}")


def _policy_key(policy: str | None) -> str:
    if not policy or policy == DEFAULT_POLICY:
        return DEFAULT_POLICY
    from driftboard.core.compare import parse_policy

    return str(parse_policy(policy))


def _cases(session: Session, run_pk: int) -> tuple[CaseResult, ...]:
    rows = session.execute(
        select(CaseResultRow.repeats, CaseResultRow.repeat_identical, CaseResultRow.seconds, CaseOutcomeRow)
        .join(CaseOutcomeRow, CaseOutcomeRow.id == CaseResultRow.outcome_id)
        .where(CaseResultRow.run_pk == run_pk)
        .order_by(CaseResultRow.position)
    ).all()
    cases = []
    for repeats, identical, seconds, o in rows:
        output = ArrayRef(o.output_sha, o.output_dtype, tuple(o.output_shape)) if o.output_sha else None
        layers = tuple((name, ArrayRef(sha, dtype, tuple(shape))) for name, sha, dtype, shape in o.layers)
        cases.append(CaseResult(
            case_id=o.case_id, device=o.device, dtype=o.dtype, input_digest=o.input_digest,
            weight_digest=o.weight_digest, output=output, layers=layers, time_axis=o.time_axis, repeats=repeats,
            repeat_identical=identical, seconds=seconds, error=o.error,
        ))
    return tuple(cases)


def _golden_where(key: GoldenKey) -> list[Any]:
    return [GoldenRow.name == key.name, GoldenRow.suite_id == key.suite_id,
            GoldenRow.suite_version == key.suite_version, GoldenRow.device_class == key.device_class]


def _golden(row: GoldenRow, run_id: str) -> Golden:
    key = GoldenKey(row.name, row.suite_id, row.suite_version, row.device_class)
    return Golden(key, run_id, row.set_by, row.set_at, row.reason)


def _forget_verdicts_of(session: Session, golden_run_pk: int) -> None:
    """Cached verdicts against a run that is no longer a golden are invalid: drop them."""
    if session.execute(select(GoldenRow.id).where(GoldenRow.run_pk == golden_run_pk).limit(1)).first() is None:
        session.execute(delete(VerdictRow).where(VerdictRow.golden_run_pk == golden_run_pk))


def _verdict_lookup(session: Session, run_pk: int, golden: str,
                    policy_key: str) -> tuple[str, str, int, VerdictRow | None] | None:
    golden_row = GoldenRow.__table__.alias("g")
    golden_run = RunRow.__table__.alias("gr")
    found = session.execute(
        select(RunRow.run_id, golden_run.c.run_id, golden_row.c.run_pk, RunRow.case_count)
        .join(golden_row, and_(golden_row.c.name == golden, *_same_suite(golden_row.c)))
        .join(golden_run, golden_run.c.id == golden_row.c.run_pk)
        .where(RunRow.id == run_pk)
    ).first()
    if found is None or found[3] == 0:
        return None
    run_name, golden_name, golden_pk, _ = found
    cached = session.execute(select(VerdictRow).where(
        VerdictRow.golden_run_pk == golden_pk, VerdictRow.run_pk == run_pk, VerdictRow.policy == policy_key)
    ).scalar_one_or_none()
    return run_name, golden_name, golden_pk, cached


def _verdict_summary(golden_name: str, run_name: str, row: VerdictRow, cached: bool) -> VerdictSummary:
    return VerdictSummary(golden_name, run_name, row.policy, row.worst, dict(row.counts), row.computed_at, cached)
