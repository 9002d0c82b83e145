"""What stored runs teach about a case: the fleet's spread (``--policy fleet``) and its determinism tiers.

``fleet_spread``: the accepted runs of a golden (``core.compare.learned.ACCEPTED_RULE``:
same suite version and device class, with a cached verdict against it under the
default policy of identical or within tolerance, or tagged ``good``), and per case
the largest absolute error of their outputs against the golden's. One query lists
the outputs; arrays are content-addressed, so each distinct output is read once
and runs whose output equals the golden's cost nothing.

``tier_evidence``: one grouped query over the outcomes of a suite version, per
case, machine, environment and device class: whether runs of one machine and
environment, of one device class, and of several classes agree bit for bit.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Integer, and_, cast, exists, func, or_, select, true
from sqlalchemy.engine import Engine

from driftboard.core.compare.learned import FleetCase, FleetSpread
from driftboard.core.compare.tiers import TierEvidence
from driftboard.core.run import FLOAT_DTYPES, ArrayRef, to_float64
from driftboard.db.models import (
    CaseOutcomeRow,
    CaseResultRow,
    EnvironmentRow,
    GoldenRow,
    RunRow,
    RunTagRow,
    VerdictRow,
)
from driftboard.db.session import transaction
from driftboard.db.store.arrays import DbArrays
from driftboard.db.store.results import DEFAULT_GOLDEN, DEFAULT_POLICY

GOOD_TAG = "good"  # a run tagged this at capture is accepted whatever its verdict
_ACCEPTED_VERDICTS = ("identical", "within tolerance")

CaseKey = tuple[str, str, str]


def fleet_spread(engine: Engine, suite_id: str, suite_version: int, device_class: str, *,
                 golden: str = DEFAULT_GOLDEN, exclude: Sequence[str] = ()) -> FleetSpread | None:
    """The accepted runs of golden ``golden`` for a suite version and device class; None without that golden.

    ``exclude``: run ids not to count (the candidate being judged must not vouch for itself).
    """
    from driftboard.db.store.verdicts import refresh_verdicts

    with transaction(engine) as session:
        found = session.execute(
            select(GoldenRow.run_pk, RunRow.run_id).join(RunRow, RunRow.id == GoldenRow.run_pk)
            .where(GoldenRow.name == golden, GoldenRow.suite_id == suite_id,
                   GoldenRow.suite_version == suite_version, GoldenRow.device_class == device_class)
        ).first()
        if found is None:
            return None
        golden_pk, golden_run_id = found
        same = and_(RunRow.suite_id == suite_id, RunRow.suite_version == suite_version,
                    RunRow.device_class == device_class, RunRow.case_count > 0)
        peers = session.execute(select(RunRow.run_id).where(same, RunRow.id != golden_pk)).scalars().all()
    if peers:
        refresh_verdicts(engine, golden=golden, run_ids=peers)  # computes only those not cached yet
    accepted = or_(
        exists().where(VerdictRow.golden_run_pk == golden_pk, VerdictRow.run_pk == RunRow.id,
                       VerdictRow.policy == DEFAULT_POLICY, VerdictRow.worst.in_(_ACCEPTED_VERDICTS)),
        exists().where(RunTagRow.run_pk == RunRow.id, RunTagRow.tag == GOOD_TAG),
    )
    members = and_(same, RunRow.id != golden_pk, RunRow.run_id.not_in(list(exclude)) if exclude else true(), accepted)
    with transaction(engine) as session:
        rows = session.execute(
            select(RunRow.id, RunRow.id == golden_pk, CaseOutcomeRow.case_id, CaseOutcomeRow.device,
                   CaseOutcomeRow.dtype, CaseOutcomeRow.output_sha, CaseOutcomeRow.output_dtype,
                   CaseOutcomeRow.output_shape, CaseOutcomeRow.error)
            .join(CaseResultRow, CaseResultRow.run_pk == RunRow.id)
            .join(CaseOutcomeRow, CaseOutcomeRow.id == CaseResultRow.outcome_id)
            .where(or_(RunRow.id == golden_pk, members))
        ).all()
    return _spread(rows, DbArrays(engine), golden, golden_run_id, suite_id, suite_version, device_class)


def _spread(rows: Sequence[Any], arrays: DbArrays, golden: str, golden_run_id: str, suite_id: str,
            suite_version: int, device_class: str) -> FleetSpread:
    reference: dict[CaseKey, ArrayRef] = {}
    outputs: dict[CaseKey, list[ArrayRef]] = defaultdict(list)
    runs: set[int] = set()
    for pk, is_golden, case_id, device, dtype, sha, out_dtype, shape, error in rows:
        key = (case_id, device, dtype)
        if not is_golden:
            runs.add(pk)
        if sha is None or error is not None:
            continue  # a failed case, or an own case kept as statistics: no elements to learn from
        ref = ArrayRef(sha, out_dtype, tuple(shape))
        if is_golden:
            reference[key] = ref
        else:
            outputs[key].append(ref)
    cases: dict[CaseKey, FleetCase] = {}
    errors: dict[tuple[str, str], float | None] = {}
    for key, gold in reference.items():
        found = []
        for ref in outputs.get(key, ()):
            pair = (gold.sha256, ref.sha256)
            if pair not in errors:
                errors[pair] = _max_abs(arrays, gold, ref)
            if errors[pair] is not None:
                found.append(errors[pair])
        if found:
            cases[key] = FleetCase(len(found), max(found))
    return FleetSpread(golden, golden_run_id, suite_id, suite_version, device_class, len(runs), cases)


def _max_abs(arrays: DbArrays, gold: ArrayRef, ref: ArrayRef) -> float | None:
    """Largest element-wise |ref - gold|; None when they cannot be compared element by element."""
    if ref.sha256 == gold.sha256:
        return 0.0
    if (ref.dtype, ref.shape) != (gold.dtype, gold.shape) or ref.dtype not in FLOAT_DTYPES:
        return None
    a, b = to_float64(arrays.load(gold), gold.dtype), to_float64(arrays.load(ref), ref.dtype)
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        diff = np.where(same, 0.0, np.abs(b - a))
    return float(diff.max(initial=0.0)) if np.all(np.isfinite(diff)) else None


# (engine, suite id, version) -> (the runs' state it was computed at, the evidence): the status board and the
# audit compare many pairs of one suite version, and the grouped query walks every stored case result.
_EVIDENCE: dict[tuple[str, str, int], tuple[tuple[Any, ...], dict[CaseKey, TierEvidence]]] = {}
_EVIDENCE_KEPT = 16
_EVIDENCE_LOCK = threading.Lock()


def tier_evidence(engine: Engine, suite_id: str, suite_version: int) -> dict[CaseKey, TierEvidence]:
    """Per case of a suite version, what its stored runs show about each determinism tier.

    Kept until a run of that suite version is stored or deleted (count and newest id of its runs change).
    """
    with transaction(engine) as session:
        state = tuple(session.execute(
            select(func.count(), func.max(RunRow.id), func.min(RunRow.id))
            .where(RunRow.suite_id == suite_id, RunRow.suite_version == suite_version)).one())
    key = (str(engine.url), suite_id, suite_version)
    with _EVIDENCE_LOCK:
        kept = _EVIDENCE.get(key)
    if kept is not None and kept[0] == state:
        return kept[1]
    found = _tier_evidence(engine, suite_id, suite_version)
    with _EVIDENCE_LOCK:
        if len(_EVIDENCE) >= _EVIDENCE_KEPT:
            _EVIDENCE.pop(next(iter(_EVIDENCE)), None)
        _EVIDENCE[key] = (state, found)
    return found


def _tier_evidence(engine: Engine, suite_id: str, suite_version: int) -> dict[CaseKey, TierEvidence]:
    with transaction(engine) as session:
        rows = session.execute(
            select(CaseOutcomeRow.case_id, CaseOutcomeRow.device, CaseOutcomeRow.dtype, RunRow.machine_id,
                   EnvironmentRow.digest, RunRow.device_class, CaseOutcomeRow.digest,
                   func.max(CaseResultRow.repeats),
                   func.count(), func.sum(cast(CaseResultRow.repeat_identical, Integer)))
            .join(CaseResultRow, CaseResultRow.outcome_id == CaseOutcomeRow.id)
            .join(RunRow, RunRow.id == CaseResultRow.run_pk)
            .join(EnvironmentRow, EnvironmentRow.id == RunRow.environment_id)
            .where(RunRow.suite_id == suite_id, RunRow.suite_version == suite_version,
                   CaseOutcomeRow.error.is_(None))
            .group_by(CaseOutcomeRow.case_id, CaseOutcomeRow.device, CaseOutcomeRow.dtype, RunRow.machine_id,
                      EnvironmentRow.digest, RunRow.device_class, CaseOutcomeRow.digest)
        ).all()
    by_case: dict[CaseKey, list[Any]] = defaultdict(list)
    for case_id, device, dtype, *rest in rows:
        by_case[(case_id, device, dtype)].append(rest)
    return {key: _evidence(groups) for key, groups in by_case.items()}


def _evidence(groups: list[Any]) -> TierEvidence:
    run_to_run: bool | None = None
    per_environment: dict[tuple[Any, Any], list[int | str]] = defaultdict(list)
    per_class: dict[str, tuple[set[Any], set[str]]] = defaultdict(lambda: (set(), set()))
    digests: set[str] = set()
    for machine, environment, device_class, digest, max_repeats, count, identical in groups:
        if int(identical or 0) < count:
            run_to_run = False
        elif max_repeats > 1 and run_to_run is None:
            run_to_run = True
        per_environment[(machine, environment)] += [digest] * int(count)
        machines, outcomes = per_class[device_class]
        machines.add(machine)
        outcomes.add(digest)
        digests.add(digest)
    processes = _agree([d for d in per_environment.values() if len(d) > 1])
    machines_tier = _agree([list(o) for m, o in per_class.values() if len(m) > 1])
    classes = (len(digests) == 1) if len(per_class) > 1 else None
    return TierEvidence(run_to_run, processes, machines_tier, classes)


def _agree(groups: list[list[Any]]) -> bool | None:
    """None without a group of two; False when some group holds two results; True else."""
    if not groups:
        return None
    return all(len(set(group)) == 1 for group in groups)
