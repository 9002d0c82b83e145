"""Reading runs back: pages of runs with filters, one run, machines and their history, whole runs, totals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from driftboard.core.errors import NotFoundError, StoreError
from driftboard.core.run import ArrayRef, CaseResult, Run
from driftboard.db.models import (
    ArrayRow,
    CaseOutcomeRow,
    CaseResultRow,
    EnvironmentRow,
    GoldenRow,
    MachineRow,
    RunRow,
    RunTagRow,
    VerdictRow,
)
from driftboard.db.session import transaction
from driftboard.db.store import own_blob, run_extras, training_blob
from driftboard.db.store.results import (
    DEFAULT_GOLDEN,
    DEFAULT_POLICY,
    EnvironmentSummary,
    MachineSummary,
    RunFilter,
    RunPage,
    RunSummary,
    StoreStats,
)
from driftboard.db.store.sql import chunks

PER_PAGE = 50
MAX_PER_PAGE = 1000


def runs(engine: Engine, filters: RunFilter | None = None, *, page: int = 1, per_page: int = PER_PAGE) -> RunPage:
    """Any page number works: one past the end is an empty page, never an offset the database cannot hold."""
    filters = filters or RunFilter()
    page = max(1, int(page))
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    offset = (page - 1) * per_page
    with transaction(engine) as session:
        total = session.execute(_filtered(_count_query(), filters)).scalar_one()
        rows = [] if offset >= total else session.execute(  # an offset below the total fits any integer column
            _filtered(_summary_columns(filters), filters)
            .order_by(RunRow.captured_at.desc(), RunRow.id.desc())
            .limit(per_page)
            .offset(offset)
        ).all()
        summaries = _with_own_counts(session, rows)
    return RunPage(summaries, total, page, per_page)


def run(engine: Engine, run_id: str) -> RunSummary:
    with transaction(engine) as session:
        pk = run_pk(session, run_id)
        row = session.execute(_summary_columns(RunFilter()).where(RunRow.id == pk)).one()
        return _with_own_counts(session, [row])[0]


def machines(engine: Engine) -> tuple[MachineSummary, ...]:
    with transaction(engine) as session:
        rows = session.execute(
            select(MachineRow.machine_key, MachineRow.hostname, MachineRow.first_seen, MachineRow.last_seen,
                   func.count(RunRow.id))
            .outerjoin(RunRow, RunRow.machine_id == MachineRow.id)
            .group_by(MachineRow.id)
            .order_by(MachineRow.hostname, MachineRow.machine_key)
        ).all()
        labels = _imported_labels(session)
    return tuple(MachineSummary(*row, name=row.hostname or labels.get(row.machine_key) or row.machine_key[:12])
                 for row in rows)


def _imported_labels(session: Session) -> dict[str, str]:
    """machine key -> the label of its newest imported run, for the machines without a hostname.

    A collect_env report names no host: each import is a machine of its own whose key starts
    ``collect_env:``, and its label says what it describes (GPU or CPU, OS, torch).
    """
    rows = session.execute(
        select(MachineRow.machine_key, RunRow.label)
        .join(RunRow, RunRow.machine_id == MachineRow.id)
        .where(MachineRow.hostname == "", RunRow.imported.is_(True), RunRow.label != "")
        .order_by(RunRow.captured_at, RunRow.id)
    )
    return {key: label for key, label in rows}


def machine_history(engine: Engine, machine: str, *, golden: str = DEFAULT_GOLDEN,
                    policy: str = DEFAULT_POLICY) -> tuple[RunSummary, ...]:
    with transaction(engine) as session:
        pk = _machine_pk(session, machine)
        rows = session.execute(
            _summary_columns(RunFilter(golden=golden, policy=policy))
            .where(RunRow.machine_id == pk)
            .order_by(RunRow.captured_at, RunRow.id)
        ).all()
        return _with_own_counts(session, rows)


def case_results(engine: Engine, run_id: str) -> tuple[CaseResult, ...]:
    with transaction(engine) as session:
        pk = run_pk(session, run_id)
        return _cases(session, pk, session.execute(select(RunRow.settings).where(RunRow.id == pk)).scalar_one())


def fingerprint(engine: Engine, run_id: str) -> dict[str, Any]:
    """The run's environment fingerprint alone: what an environment diff needs, without its cases."""
    with transaction(engine) as session:
        pk = run_pk(session, run_id)
        return session.execute(
            select(EnvironmentRow.fingerprint).join(RunRow, RunRow.environment_id == EnvironmentRow.id)
            .where(RunRow.id == pk)
        ).scalar_one()


def load_run(engine: Engine, run_id: str) -> Run:
    """The run as captured, with array references (the arrays stay in the database)."""
    with transaction(engine) as session:
        pk = run_pk(session, run_id)
        row, fingerprint, fp_digest = session.execute(
            select(RunRow, EnvironmentRow.fingerprint, EnvironmentRow.digest)
            .join(EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)
            .where(RunRow.id == pk)
        ).one()
        cases = _cases(session, pk, row.settings)
    settings = run_extras.captured_settings(row.settings)  # the truth and spreads are in the cases
    return Run(
        run_id=row.run_id, created_at=row.created_at, suite_id=row.suite_id, suite_version=row.suite_version,
        variant=row.variant, fingerprint=fingerprint, fingerprint_digest=fp_digest, cases=cases,
        settings=settings, label=row.label, tags=tuple(row.tags), note=row.note,
        tool_version=row.tool_version, imported=row.imported,
    )


def stats(engine: Engine) -> StoreStats:
    with transaction(engine) as session:
        def count(column: Any) -> int:
            return session.execute(select(func.count(column))).scalar_one()

        raw, stored = session.execute(
            select(func.coalesce(func.sum(ArrayRow.nbytes), 0), func.coalesce(func.sum(ArrayRow.stored_bytes), 0))
        ).one()
        return StoreStats(count(RunRow.id), count(MachineRow.id), count(EnvironmentRow.id),
                          count(CaseOutcomeRow.id), count(ArrayRow.sha256), int(raw), int(stored))


# ---------------------------------------------------------------- helpers the other parts use too


def run_pk(session: Session, run_id: str) -> int:
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


def same_suite(golden: Any) -> list[Any]:
    """A golden applies to runs of its suite version and device class."""
    return [golden.suite_id == RunRow.suite_id, golden.suite_version == RunRow.suite_version,
            golden.device_class == RunRow.device_class]


def policy_key(policy: str | None) -> str:
    """A policy as verdicts are cached under: its canonical text, so "BITWISE" and "bitwise" share a row."""
    if not policy or policy == DEFAULT_POLICY:
        return DEFAULT_POLICY
    from driftboard.core.compare import parse_policy

    return str(parse_policy(policy))


# ---------------------------------------------------------------- query pieces


def _machine_pk(session: Session, machine: str) -> int:
    rows = session.execute(
        select(MachineRow.id).where(or_(MachineRow.machine_key == machine, MachineRow.hostname == machine)).limit(2)
    ).scalars().all()
    if len(rows) == 1:
        return rows[0]
    if rows:
        raise NotFoundError(f"hostname {machine!r} names several machines: use the machine key")
    raise NotFoundError(f"no machine {machine!r} in the database")


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
            verdict.c.worst, RunRow.id,
        )
        .select_from(RunRow)
        .join(MachineRow, MachineRow.id == RunRow.machine_id)
        .join(EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)
        .outerjoin(golden, and_(golden.c.name == filters.golden, *same_suite(golden.c)))
        .outerjoin(verdict, and_(verdict.c.golden_run_pk == golden.c.run_pk, verdict.c.run_pk == RunRow.id,
                                 verdict.c.policy == policy_key(filters.policy)))
    )


def _count_query() -> Select[Any]:
    return select(func.count(RunRow.id)).select_from(RunRow).join(
        EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)


def _with_own_counts(session: Session, rows: Sequence[Any]) -> tuple[RunSummary, ...]:
    """Summaries of ``rows`` (``_summary_columns``), each with its count of own cases: one grouped query
    over just these runs' case results."""
    pks = [row[-1] for row in rows if row.case_count]
    counts: dict[int, int] = {}
    for chunk in chunks(pks, 500):
        counts.update((pk, count) for pk, count in session.execute(
            select(CaseResultRow.run_pk, func.count())
            .join(CaseOutcomeRow, CaseOutcomeRow.id == CaseResultRow.outcome_id)
            .where(CaseResultRow.run_pk.in_(chunk), own_blob.is_own_outcome())
            .group_by(CaseResultRow.run_pk)
        ))
    return tuple(_summary(row, counts.get(row[-1], 0)) for row in rows)


def _summary(row: Any, own_case_count: int = 0) -> RunSummary:
    (run_id, created_at, captured_at, uploaded_at, uploader, label, tags, note, suite_id, suite_version, variant,
     device, imported, case_count, bundle_digest, bundle_size, machine_key, hostname, *env, worst, _) = row
    return RunSummary(
        run_id=run_id, created_at=created_at, captured_at=captured_at, uploaded_at=uploaded_at, uploader=uploader,
        label=label, tags=tuple(tags), note=note, suite_id=suite_id, suite_version=suite_version, variant=variant,
        device_class=device, imported=imported, case_count=case_count, bundle_digest=bundle_digest,
        bundle_size=bundle_size, machine_key=machine_key, hostname=hostname,
        environment=EnvironmentSummary(*env), verdict=worst, own_case_count=own_case_count,
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
    if f.own_case:
        conditions.append(RunRow.id.in_(
            select(CaseResultRow.run_pk)
            .join(CaseOutcomeRow, CaseOutcomeRow.id == CaseResultRow.outcome_id)
            .where(CaseOutcomeRow.case_id == f.own_case, own_blob.is_own_outcome())))
    if f.verdict:
        golden = GoldenRow.__table__.alias("gf")
        verdict = VerdictRow.__table__.alias("vf")
        conditions.append(
            select(verdict.c.run_pk)
            .join(golden, golden.c.run_pk == verdict.c.golden_run_pk)
            .where(verdict.c.run_pk == RunRow.id, golden.c.name == f.golden,
                   verdict.c.policy == policy_key(f.policy), verdict.c.worst == _verdict_value(f.verdict),
                   *same_suite(golden.c))
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

    def words(value: str) -> str:  # "non-finite mismatch", "non_finite-mismatch": the same word either way
        return " ".join(value.replace("-", " ").replace("_", " ").split()).lower()

    wanted = words(text)
    for verdict in Verdict:
        if words(verdict.value) == wanted:
            return verdict.value
    raise StoreError(f"unknown verdict {text!r}: expected one of {', '.join(v.value for v in Verdict)}")


def _cases(session: Session, pk: int, settings: dict[str, Any] | None = None) -> tuple[CaseResult, ...]:
    """The run's cases in position order, with own records and the float64 truth (kept in ``settings``)."""
    rows = session.execute(
        select(CaseResultRow.repeats, CaseResultRow.repeat_identical, CaseResultRow.seconds, CaseOutcomeRow)
        .join(CaseOutcomeRow, CaseOutcomeRow.id == CaseResultRow.outcome_id)
        .where(CaseResultRow.run_pk == pk)
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
    cases = training_blob.with_training(session, own_blob.with_own(session, cases))
    return run_extras.with_extras(cases, settings)
