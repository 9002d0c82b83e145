"""Verdicts of runs against their golden, computed once and kept.

A run's worst verdict under a policy depends only on the two runs' stored
content, so it is cached in ``verdicts`` until the golden changes
(``forget_verdicts_of``): lists of runs then filter and show verdicts without
comparing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from driftboard.core.run import ArraySource, Run
from driftboard.db.models import GoldenRow, RunRow, VerdictRow
from driftboard.db.session import read_only_reason, transaction
from driftboard.db.store.arrays import DbArrays
from driftboard.db.store.golden_runs import GoldenRuns
from driftboard.db.store.queries import load_run, policy_key, run_pk, same_suite
from driftboard.db.store.results import DEFAULT_GOLDEN, DEFAULT_POLICY, VerdictSummary
from driftboard.db.store.sql import insert, now

if TYPE_CHECKING:
    from driftboard.core.compare import Policy
    from driftboard.core.compare.learned import FleetSpread

_BATCH = 200  # verdicts written per transaction by refresh_verdicts


def verdict(engine: Engine, run_id: str, *, golden: str = DEFAULT_GOLDEN,
            policy: str | None = None) -> VerdictSummary | None:
    key = policy_key(policy)
    return _cached_or_judged(engine, run_id, golden, key, lambda found: _judge(
        engine, found.golden_pk, found.golden_name, found.pk, found.run_name, key, DbArrays(engine), {}, golden))


def pushed_verdict(engine: Engine, run: Run, arrays: ArraySource, goldens: GoldenRuns) -> VerdictSummary | None:
    """``verdict`` (default golden and policy) of a run just stored, judged from the validated run in memory.

    The same lookup and the same row kept as ``verdict``, but the candidate is not read back from the
    database and the golden comes from ``goldens``, kept by its content (which golden applies is looked
    up here each time, so a golden changed is honoured at once).
    """
    def judge(found: _Found) -> dict[str, Any]:
        base, base_arrays = goldens.get(engine, found.golden_name, found.golden_digest)
        return _verdict_row(found.golden_pk, found.pk, DEFAULT_POLICY, base, base_arrays, run, arrays)

    return _cached_or_judged(engine, run.run_id, DEFAULT_GOLDEN, DEFAULT_POLICY, judge)


def _cached_or_judged(engine: Engine, run_id: str, golden: str, key: str,
                      judge: Callable[[_Found], dict[str, Any]]) -> VerdictSummary | None:
    with transaction(engine) as session:
        found = _verdict_lookup(session, run_pk(session, run_id), golden, key)
    if found is None:
        return None
    if found.cached is not None:
        return _verdict_summary(found.golden_name, found.run_name, found.cached, True)
    row = judge(found)
    _keep_verdicts(engine, [row])
    return _verdict_summary(found.golden_name, found.run_name, VerdictRow(**row), False)


def refresh_verdicts(engine: Engine, *, golden: str = DEFAULT_GOLDEN, policy: str | None = None,
                     run_ids: Sequence[str] | None = None) -> int:
    key = policy_key(policy)
    golden_run = RunRow.__table__.alias("gr")
    with transaction(engine) as session:
        query = (
            select(RunRow.id, RunRow.run_id, GoldenRow.run_pk, golden_run.c.run_id)
            .join(GoldenRow, and_(GoldenRow.name == golden, *same_suite(GoldenRow)))
            .join(golden_run, golden_run.c.id == GoldenRow.run_pk)
            .outerjoin(VerdictRow, and_(VerdictRow.golden_run_pk == GoldenRow.run_pk,
                                        VerdictRow.run_pk == RunRow.id, VerdictRow.policy == key))
            .where(VerdictRow.run_pk.is_(None), RunRow.case_count > 0)
            .order_by(GoldenRow.run_pk, RunRow.id)
        )
        if run_ids is not None:
            query = query.where(RunRow.run_id.in_(list(run_ids)))
        todo = session.execute(query).all()
    arrays, goldens, batch = DbArrays(engine), {}, []  # one array cache for all: arrays repeat across runs
    for pk, run_name, golden_pk, golden_name in todo:
        batch.append(_judge(engine, golden_pk, golden_name, pk, run_name, key, arrays, goldens, golden))
        if len(batch) == _BATCH:
            _keep_verdicts(engine, batch)
            batch = []
    _keep_verdicts(engine, batch)
    return len(todo)


def forget_verdicts_of(session: Session, golden_run_pk: int) -> None:
    """Cached verdicts against a run that is no longer a golden are invalid: drop them."""
    if session.execute(select(GoldenRow.id).where(GoldenRow.run_pk == golden_run_pk).limit(1)).first() is None:
        session.execute(delete(VerdictRow).where(VerdictRow.golden_run_pk == golden_run_pk))


def _judge(engine: Engine, golden_pk: int, golden_name: str, pk: int, run_name: str, key: str,
           arrays: DbArrays, goldens: dict[int, Run], golden: str = DEFAULT_GOLDEN) -> dict[str, Any]:
    """The verdict row of one run against one golden run (``golden``: the golden's name, for ``fleet``)."""
    from driftboard.core.compare import parse_policy
    from driftboard.core.run import device_class
    from driftboard.db.store.fleet import fleet_spread

    if golden_pk not in goldens:
        goldens[golden_pk] = load_run(engine, golden_name)
    candidate = load_run(engine, run_name)
    policy = None if key == DEFAULT_POLICY else parse_policy(key)
    base = goldens[golden_pk]
    fleet = fleet_spread(engine, base.suite_id, base.suite_version, device_class(base), golden=golden,
                         exclude=(run_name,)) if policy is not None and policy.kind == "fleet" else None
    return _verdict_row(golden_pk, pk, key, base, arrays, candidate, arrays, policy, fleet)


def _verdict_row(golden_pk: int, pk: int, key: str, base: Run, base_arrays: ArraySource, candidate: Run,
                 candidate_arrays: ArraySource, policy: Policy | None = None,
                 fleet: FleetSpread | None = None) -> dict[str, Any]:
    from driftboard.core.compare import compare_runs

    comparison = compare_runs(base, base_arrays, candidate, candidate_arrays, policy, fleet=fleet)
    counts = {v.value: n for v, n in comparison.counts().items() if n}
    return {"golden_run_pk": golden_pk, "run_pk": pk, "policy": key,
            "worst": comparison.worst.value, "counts": counts, "computed_at": now()}


def _keep_verdicts(engine: Engine, rows: list[dict[str, Any]]) -> None:
    # A fleet verdict depends on the other accepted runs, not on the two runs alone: never cached.
    rows = [r for r in rows if not r["policy"].startswith("fleet")]
    if not rows or read_only_reason(engine) is not None:
        return  # a database opened read-only is judged on every read, and still read
    with transaction(engine, write=True) as session:
        # The golden may have changed (or a run gone) while comparing: keep only what still applies.
        goldens = set(session.execute(select(GoldenRow.run_pk).where(
            GoldenRow.run_pk.in_(sorted({r["golden_run_pk"] for r in rows})))).scalars())
        runs = set(session.execute(select(RunRow.id).where(
            RunRow.id.in_(sorted({r["run_pk"] for r in rows})))).scalars())
        keep = [r for r in rows if r["golden_run_pk"] in goldens and r["run_pk"] in runs]
        if keep:
            session.execute(insert(session, VerdictRow).on_conflict_do_nothing(), keep)


class _Found(NamedTuple):
    """A run and the golden that applies to it, with the verdict already kept for the pair, if any."""

    pk: int
    run_name: str
    golden_name: str
    golden_pk: int
    golden_digest: str  # the golden's bundle digest: its content, for ``GoldenRuns``
    cached: VerdictRow | None


_GOLDEN_ROW = GoldenRow.__table__.alias("g")  # built once: an alias of a wide table costs a millisecond to build
_GOLDEN_RUN = RunRow.__table__.alias("gr")


def _verdict_lookup(session: Session, pk: int, golden: str, key: str) -> _Found | None:
    golden_row, golden_run = _GOLDEN_ROW, _GOLDEN_RUN
    found = session.execute(
        select(RunRow.run_id, golden_run.c.run_id, golden_row.c.run_pk, golden_run.c.bundle_digest, RunRow.case_count)
        .join(golden_row, and_(golden_row.c.name == golden, *same_suite(golden_row.c)))
        .join(golden_run, golden_run.c.id == golden_row.c.run_pk)
        .where(RunRow.id == pk)
    ).first()
    if found is None or found[4] == 0:
        return None
    run_name, golden_name, golden_pk, golden_digest, _ = found
    cached = session.execute(select(VerdictRow).where(
        VerdictRow.golden_run_pk == golden_pk, VerdictRow.run_pk == pk, VerdictRow.policy == key)
    ).scalar_one_or_none()
    return _Found(pk, run_name, golden_name, golden_pk, golden_digest, cached)


def _verdict_summary(golden_name: str, run_name: str, row: VerdictRow, cached: bool) -> VerdictSummary:
    return VerdictSummary(golden_name, run_name, row.policy, row.worst, dict(row.counts), row.computed_at, cached)
