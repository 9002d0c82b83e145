"""Ingest: a validated bundle written in one transaction, all of it or nothing.

Everything written is computed first (``_Plan``), outside any transaction.
Concurrent writers are safe on both databases: SQLite serialises them (BEGIN
IMMEDIATE), PostgreSQL resolves races on the unique digests with ``INSERT …
ON CONFLICT DO NOTHING`` (which waits for the other transaction) and rows are
written in sorted key order so two ingests never deadlock; a transaction that
still loses a race is retried.

On PostgreSQL a role that may not insert runs itself (a member of the
pushers' role, docs/DEPLOY.md) writes the same rows through one call of the
``driftboard_push_run`` function instead (``ingest_pusher.py``), which records
its login as the uploader.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from driftboard.core.bundle import Bundle
from driftboard.core.errors import BundleError, StoreError
from driftboard.core.fields import flatten
from driftboard.core.run import CaseResult, Run
from driftboard.core.run import device_class as run_device_class
from driftboard.db.models import (
    ArrayRow,
    CaseOutcomeRow,
    CaseResultRow,
    EnvironmentRow,
    MachineRow,
    OutcomeArrayRow,
    RunRow,
    RunTagRow,
)
from driftboard.db.session import retry_conflicts, transaction
from driftboard.db.store import ingest_pusher as pusher
from driftboard.db.store import own_blob, run_extras, training_blob, write_log
from driftboard.db.store.arrays import CODEC, compress
from driftboard.db.store.results import IngestResult
from driftboard.db.store.sql import chunks, insert, now

_ATTEMPTS = 5  # whole transactions tried before a conflict with concurrent writers is reported

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


def ingest_bundle(engine: Engine, bundle: Bundle, *, uploader: str = "",
                  origin: write_log.Origin = write_log.Origin()) -> IngestResult:
    """Store a bundle ``read_bundle`` validated; the deflate streams it checked (``streams=True``) are kept as they are.

    A transaction that conflicts with a concurrent writer (a unique race, a run deleted that shares
    this one's arrays) is retried whole, a bounded number of times. A stored run is logged in the
    write log (``origin``: its channel and address; the actor is the uploader recorded) in the same
    transaction; a duplicate writes nothing and logs nothing.
    """
    plan = _Plan.of(bundle, uploader)
    streams: _Streams = bundle.streams
    return retry_conflicts(lambda: _ingest_once(engine, plan, streams, origin), _ATTEMPTS,
                           f"run {plan.run.run_id} was not stored: concurrent changes to the runs it shares rows "
                           f"with conflicted {_ATTEMPTS} times; nothing was written, push it again")


def _ingest_once(engine: Engine, plan: _Plan, streams: _Streams, origin: write_log.Origin) -> IngestResult:
    with transaction(engine) as session:  # outside the write lock: is it new, what is missing?
        if _stored_run_id(session, plan.bundle_digest) is not None:
            return plan.duplicate()
        missing = _missing_arrays(session, plan.array_shas)
        who = pusher.writer(session, plan.uploader)
    stored = {sha: _stored_form(plan.blobs[sha], streams.get(sha)) for sha in missing}
    with transaction(engine, write=True) as session:
        if _stored_run_id(session, plan.bundle_digest) is not None:
            return plan.duplicate()
        _refuse_run_id_clash(session, plan)
        if who.through_function:  # the function logs the push itself, as the caller's login
            return _push_through_function(session, plan, stored, streams, origin)
        machine_pk = _upsert_machine(session, plan)
        environment_pk = _upsert_environment(session, plan)
        run_pk = _insert_run(session, plan, machine_pk, environment_pk, who.uploader)
        if run_pk is None:  # a concurrent ingest of the same bundle or run id won the race
            if _stored_run_id(session, plan.bundle_digest) is not None:
                return plan.duplicate()
            _refuse_run_id_clash(session, plan)
            raise StoreError(f"run {plan.run.run_id} could not be stored: a concurrent change conflicted")
        new_arrays = _insert_arrays(session, plan, stored, streams)
        outcome_ids = _upsert_outcomes(session, plan)
        _insert_case_results(session, plan, run_pk, outcome_ids)
        _insert_tags(session, run_pk, plan.run.tags)
        write_log.record(session, "push", replace(origin, actor=who.uploader), run_id=plan.run.run_id,
                         detail=push_detail(len(plan.run.cases), plan.bundle_digest))
    return _created(plan, new_arrays, stored)


def push_detail(case_count: int, bundle_digest: str) -> str:
    """A push's write-log detail; ``driftboard_push_run`` (migration 0004) words it the same way."""
    return f"{case_count} cases, bundle {bundle_digest[:12]}"


def _push_through_function(session: Session, plan: _Plan, stored: dict[str, bytes], streams: _Streams,
                           origin: write_log.Origin) -> IngestResult:
    """A PostgreSQL pusher's write: one call of ``driftboard_push_run`` (``ingest_pusher.py``)."""
    new_arrays = sorted(_missing_arrays(session, plan.array_shas))
    for sha in set(new_arrays) - stored.keys():
        stored[sha] = _stored_form(plan.blobs[sha], streams.get(sha))
    pusher.push_run(session, plan, {sha: stored[sha] for sha in new_arrays}, origin)
    return _created(plan, new_arrays, stored)


def _created(plan: _Plan, new_arrays: list[str], stored: dict[str, bytes]) -> IngestResult:
    return IngestResult(
        run_id=plan.run.run_id,
        bundle_digest=plan.bundle_digest,
        created=True,
        case_count=len(plan.run.cases),
        new_arrays=len(new_arrays),
        new_bytes=sum(len(stored[sha]) for sha in new_arrays),
        machine_key=plan.machine_key,
    )


# ---------------------------------------------------------------- the plan


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
        # An own case's record and a training case's trace: one more array each (own_blob.py, training_blob.py).
        extra = [[b for b in (own_blob.encode(case), training_blob.encode(case)) if b] for case in run.cases]
        own = [b for blobs in extra for b in blobs]
        for case, blobs in zip(run.cases, extra):
            digest, row = _outcome_row(case, *blobs)
            outcomes[digest] = row
            links[digest] = tuple(sorted({ref.sha256 for ref in case.refs()} | {b.sha256 for b in blobs}))
            per_case.append(digest)
        shas = sorted({ref.sha256 for case in run.cases for ref in case.refs()} | {b.sha256 for b in own})
        _refuse_unstorable(run, flat)
        return cls(
            run=run,
            bundle_digest=bundle.digest,
            bundle_size=bundle.size,
            uploader=_clean_text(uploader)[:200],
            blobs={**bundle.arrays.blobs, **{b.sha256: b.data for b in own}},
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
    return run_device_class(run)


def _outcome_row(case: CaseResult, *blobs: own_blob.OwnBlob | training_blob.TrainingBlob) -> tuple[str, dict[str, Any]]:
    layers = [[name, ref.sha256, ref.dtype, list(ref.shape)] for name, ref in case.layers]
    layers += [blob.layer_entry for blob in blobs]
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
    run_extras.refuse_reserved(run)
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


# ---------------------------------------------------------------- arrays as stored


# sha256 -> a deflate stream of the bundle file that ``read_bundle(..., streams=True)`` checked: it inflates
# to exactly that array and ends there (``Bundle.streams``).
_Streams = dict[str, bytes]


def _stored_form(raw: bytes, stream: bytes | None) -> bytes:
    """Raw deflate bytes for an array: the bundle's own checked stream when it has one, else compressed here.

    Only a stream the bundle reader checked is kept (no second compression at ingest). Keeping the
    file's stream as it was let one valid bundle, whose stream inflated to the array plus a few bytes,
    poison that array for every later run sharing it.
    """
    return stream if stream is not None else compress(raw)


# ---------------------------------------------------------------- rows


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
    for chunk in chunks(shas, 500):
        present.update(session.execute(select(ArrayRow.sha256).where(ArrayRow.sha256.in_(chunk))).scalars())
    return set(shas) - present


def _upsert_machine(session: Session, plan: _Plan) -> int:
    when = plan.captured_at
    session.execute(
        insert(session, MachineRow).on_conflict_do_nothing(index_elements=["machine_key"]),
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
        session.execute(insert(session, EnvironmentRow).on_conflict_do_nothing(index_elements=["content_key"]), [row])
        pk = session.execute(query).scalar_one()
    return pk


def _insert_run(session: Session, plan: _Plan, machine_pk: int, environment_pk: int, uploader: str) -> int | None:
    run = plan.run
    row = {
        "run_id": run.run_id, "bundle_digest": plan.bundle_digest, "bundle_size": plan.bundle_size,
        "created_at": run.created_at, "captured_at": plan.captured_at, "uploaded_at": now(),
        "uploader": uploader, "label": run.label, "tags": list(run.tags), "note": run.note,
        "suite_id": run.suite_id, "suite_version": run.suite_version, "variant": run.variant,
        "device_class": plan.device_class, "settings": run_extras.stored_settings(run),
        "tool_version": run.tool_version,
        "imported": run.imported, "case_count": len(run.cases), "machine_id": machine_pk,
        "environment_id": environment_pk,
    }
    stmt = insert(session, RunRow).values(row).on_conflict_do_nothing().returning(RunRow.id)
    return session.execute(stmt).scalar()


def _insert_arrays(session: Session, plan: _Plan, stored: dict[str, bytes], streams: _Streams) -> list[str]:
    """Insert the arrays missing now; ``stored`` holds the stored forms computed so far and gets the others.

    What is missing is read once, here: on PostgreSQL a delete committed since the first look may have
    removed an array this run shares (a second look found it missing with no stored form: KeyError).
    """
    wanted = sorted(_missing_arrays(session, plan.array_shas))
    for sha in wanted:
        if sha not in stored:
            stored[sha] = _stored_form(plan.blobs[sha], streams.get(sha))
    rows = [{"sha256": sha, "nbytes": len(plan.blobs[sha]), "stored_bytes": len(stored[sha]), "codec": CODEC,
             "data": stored[sha]} for sha in wanted]
    if rows:
        session.execute(insert(session, ArrayRow).on_conflict_do_nothing(index_elements=["sha256"]), rows)
    return wanted


def _outcome_ids(session: Session, digests: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunks(digests, 500):
        rows = session.execute(select(CaseOutcomeRow.digest, CaseOutcomeRow.id).where(CaseOutcomeRow.digest.in_(chunk)))
        found.update((digest, pk) for digest, pk in rows)
    return found


def _upsert_outcomes(session: Session, plan: _Plan) -> dict[str, int]:
    digests = list(plan.outcomes)
    ids = _outcome_ids(session, digests)
    new = [digest for digest in digests if digest not in ids]
    if new:
        session.execute(insert(session, CaseOutcomeRow).on_conflict_do_nothing(index_elements=["digest"]),
                        [plan.outcomes[d] for d in new])
        ids.update(_outcome_ids(session, new))
        links = sorted((ids[d], sha) for d in new for sha in plan.outcome_arrays[d])
        if links:
            session.execute(insert(session, OutcomeArrayRow).on_conflict_do_nothing(),
                            [{"outcome_id": pk, "array_sha": sha} for pk, sha in links])
    return ids


def _insert_case_results(session: Session, plan: _Plan, run_pk: int, outcome_ids: dict[str, int]) -> None:
    rows = [
        {"run_pk": run_pk, "position": i, "outcome_id": outcome_ids[digest], "repeats": case.repeats,
         "repeat_identical": case.repeat_identical, "seconds": case.seconds}
        for i, (case, digest) in enumerate(zip(plan.run.cases, plan.outcome_of_case))
    ]
    if rows:
        session.execute(insert(session, CaseResultRow), rows)


def _insert_tags(session: Session, run_pk: int, tags: Sequence[str]) -> None:
    if tags:
        session.execute(insert(session, RunTagRow), [{"run_pk": run_pk, "tag": t} for t in sorted(set(tags))])
