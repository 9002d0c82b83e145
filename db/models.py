"""The database schema: SQLAlchemy 2 typed ORM rows with named constraints.

Rows never leave ``db/``: ``db.store`` turns them into frozen dataclasses.
Every change here needs an Alembic migration in ``db/migrations/versions``;
``tests/test_db_schema.py`` fails when models and migrations disagree.

Layout, and why:

- ``arrays`` is content-addressed (sha256 → deflate-compressed bytes), so each
  distinct array is stored once however many runs produced it. The same bytes
  can be declared with two dtypes or shapes (zeros are zeros), so dtype and
  shape live with each reference, not with the bytes.
- ``case_outcomes`` is content-addressed too: everything a case produced that
  is the same on machines that agree (key, input and weight digests, output
  and layer references, time axis, error). ``case_results`` is the per-run part
  (timing and repeatability) pointing at an outcome, a few dozen bytes a case.
  A thousand runs with identical outputs share one set of outcomes and arrays.
- ``environments`` holds each distinct fingerprint once, compressed (SQLite
  has no TOAST), with the numerics fields the dashboard filters on as indexed
  columns.
"""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SHA = 64  # hex sha256
NAME = 128  # case ids, devices, dtypes, suite ids (bundle.py's _NAME allows 128)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: driftboard stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CompressedJSON(TypeDecorator[Any]):
    """JSON text, zlib-compressed: a fingerprint is a few kB of mostly text."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None:
            return None
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return zlib.compress(text.encode("utf-8"), 6)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(zlib.decompress(value))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class MachineRow(Base):
    """A machine, by a stable id (sha256 of the OS machine id, else its hostname)."""

    __tablename__ = "machines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_key: Mapped[str] = mapped_column(String(200), unique=True)
    hostname: Mapped[str] = mapped_column(String(255))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)


class EnvironmentRow(Base):
    """One distinct fingerprint; ``content_key`` is the sha256 of its canonical JSON and declared digest."""

    __tablename__ = "environments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_key: Mapped[str] = mapped_column(String(SHA), unique=True)
    digest: Mapped[str] = mapped_column(String(SHA))  # the run's fingerprint_digest (its numerics view)
    fingerprint: Mapped[dict[str, Any]] = mapped_column(CompressedJSON)
    torch_version: Mapped[str | None] = mapped_column(String(NAME), index=True)
    cuda: Mapped[str | None] = mapped_column(String(NAME), index=True)
    cudnn: Mapped[str | None] = mapped_column(String(NAME), index=True)
    driver: Mapped[str | None] = mapped_column(String(NAME), index=True)
    gpu_model: Mapped[str | None] = mapped_column(String(200), index=True)
    cpu_model: Mapped[str | None] = mapped_column(String(200), index=True)
    cpu_capability: Mapped[str | None] = mapped_column(String(NAME), index=True)


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_machine_id_captured_at", "machine_id", "captured_at"),
        CheckConstraint("case_count >= 0", name="case_count_nonneg"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True)
    bundle_digest: Mapped[str] = mapped_column(String(SHA), unique=True)
    bundle_size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[str] = mapped_column(String(64))  # exactly as captured (ISO 8601 text)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # created_at in UTC, for order and ranges
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploader: Mapped[str] = mapped_column(String(200))
    label: Mapped[str] = mapped_column(String(200))  # filtered by substring: an index would not help
    tags: Mapped[list[str]] = mapped_column(JSON)  # in capture order; run_tags indexes them
    note: Mapped[str] = mapped_column(Text)
    suite_id: Mapped[str] = mapped_column(String(NAME))
    suite_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(NAME))
    device_class: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    tool_version: Mapped[str] = mapped_column(String(64))
    imported: Mapped[bool] = mapped_column(Boolean)
    case_count: Mapped[int] = mapped_column(Integer)
    machine_id: Mapped[int] = mapped_column(ForeignKey("machines.id", ondelete="RESTRICT"))
    environment_id: Mapped[int] = mapped_column(ForeignKey("environments.id", ondelete="RESTRICT"), index=True)


class RunTagRow(Base):
    __tablename__ = "run_tags"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ArrayRow(Base):
    """One distinct array by sha256: its raw little-endian bytes, deflate-compressed (zlib, no header)."""

    __tablename__ = "arrays"
    __table_args__ = (
        CheckConstraint("nbytes >= 0", name="nbytes_nonneg"),
        CheckConstraint("codec IN ('deflate')", name="codec_known"),
    )

    sha256: Mapped[str] = mapped_column(String(SHA), primary_key=True)
    nbytes: Mapped[int] = mapped_column(BigInteger)  # raw size
    stored_bytes: Mapped[int] = mapped_column(BigInteger)  # compressed size
    codec: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class CaseOutcomeRow(Base):
    """What a case produced, shared by every run that produced exactly the same."""

    __tablename__ = "case_outcomes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(SHA), unique=True)
    case_id: Mapped[str] = mapped_column(String(NAME))
    device: Mapped[str] = mapped_column(String(NAME))
    dtype: Mapped[str] = mapped_column(String(NAME))
    input_digest: Mapped[str] = mapped_column(String(SHA))
    weight_digest: Mapped[str] = mapped_column(String(SHA))
    output_sha: Mapped[str | None] = mapped_column(ForeignKey("arrays.sha256", ondelete="RESTRICT"), index=True)
    output_dtype: Mapped[str | None] = mapped_column(String(16))
    output_shape: Mapped[list[int] | None] = mapped_column(JSON)
    layers: Mapped[list[list[Any]]] = mapped_column(JSON)  # [[name, sha256, dtype, shape], ...]
    time_axis: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class OutcomeArrayRow(Base):
    """Every array an outcome references (output and layers): what keeps an array alive."""

    __tablename__ = "outcome_arrays"
    __table_args__ = ({"sqlite_with_rowid": False},)

    outcome_id: Mapped[int] = mapped_column(ForeignKey("case_outcomes.id", ondelete="CASCADE"), primary_key=True)
    array_sha: Mapped[str] = mapped_column(
        ForeignKey("arrays.sha256", ondelete="RESTRICT"), primary_key=True, index=True
    )


class CaseResultRow(Base):
    """One case of one run: which outcome, and the per-run timing and repeatability."""

    __tablename__ = "case_results"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    outcome_id: Mapped[int] = mapped_column(ForeignKey("case_outcomes.id", ondelete="RESTRICT"), index=True)
    repeats: Mapped[int] = mapped_column(Integer)
    repeat_identical: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float] = mapped_column(Float)


class GoldenRow(Base):
    """The baseline run named ``name`` for one suite version and device class."""

    __tablename__ = "goldens"
    __table_args__ = (
        UniqueConstraint("name", "suite_id", "suite_version", "device_class"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    suite_id: Mapped[str] = mapped_column(String(NAME))
    suite_version: Mapped[int] = mapped_column(Integer)
    device_class: Mapped[str] = mapped_column(String(32))
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="RESTRICT"), index=True)
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)


class VerdictRow(Base):
    """A run's comparison against a golden run under a policy, computed once and kept."""

    __tablename__ = "verdicts"
    __table_args__ = ({"sqlite_with_rowid": False},)

    golden_run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True)
    policy: Mapped[str] = mapped_column(String(200), primary_key=True)
    worst: Mapped[str] = mapped_column(String(32), index=True)
    counts: Mapped[dict[str, int]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WriteLogRow(Base):
    """One write to the store: who, when, what, from where and through which channel. Append-only.

    ``run_id`` is text, not a foreign key: the entry of a deleted run outlives it.
    """

    __tablename__ = "write_log"
    __table_args__ = (
        CheckConstraint("action IN ('push', 'delete', 'golden-set', 'golden-clear', 'explain')", name="action_known"),
        CheckConstraint("channel IN ('cli', 'page', 'api')", name="channel_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(16), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)


class ExplanationRow(Base):
    """What ``driftboard explain`` found for a pair of runs (its JSON document), kept with the pair.

    One per (baseline, candidate); a newer explanation replaces the older, and
    deleting either run deletes it.
    """

    __tablename__ = "explanations"
    __table_args__ = (UniqueConstraint("baseline_run_pk", "candidate_run_pk"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    baseline_run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    candidate_run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    this_machine: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text)
    document: Mapped[Any] = mapped_column(CompressedJSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
