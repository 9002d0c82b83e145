"""Where each case's tolerance comes from: the policy, the case, or what was learned.

Two learned policies, each with one stated rule:

- ``repeats[:factor=F]``: the baseline's own run-to-run noise. A case whose
  repeats were bitwise equal gets ``atol = 0`` (no noise to allow); a case whose
  repeats differed gets ``atol = F x`` the largest absolute difference between
  its repeats (``RepeatSpread``, recorded at capture). One repeat, or a spread
  not recorded (older bundles, runs read from the database), falls back to the
  default policy, and the report says so.
- ``fleet[:factor=F,runs=N]``: the spread of the runs a team accepted
  (``FleetSpread``, loaded by ``Store.fleet_spread``): ``atol = F x`` the
  largest absolute error against the golden over the accepted runs, when at
  least N runs have the case; else the default policy, and the report says so.

Both give ``rtol = 0``: the allowed error is the observed one, scaled, not a
fraction of the values. A tolerance the case declares (own models) wins over
either, as it wins over every policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftboard.core.compare.policy import DEFAULT_POLICY, Policy
from driftboard.core.compare.ulp import stored, ulp_distance
from driftboard.core.run import FLOAT_DTYPES, CaseResult, RepeatSpread, to_float64

CaseKey = tuple[str, str, str]
ACCEPTED_RULE = ("runs of the golden's suite version and device class whose stored verdict against it under the "
                 "default policy is identical or within tolerance, or that were captured with --tag good")


@dataclass(frozen=True)
class FleetCase:
    """One case over the accepted runs: how many have it, and the largest absolute error against the golden."""

    runs: int
    max_abs: float


@dataclass(frozen=True)
class FleetSpread:
    """The accepted runs of one golden, per case (``Store.fleet_spread``)."""

    golden: str  # the golden's name
    golden_run_id: str
    suite_id: str
    suite_version: int
    device_class: str
    runs: int  # accepted runs, the golden and the compared candidate not counted
    cases: Mapping[CaseKey, FleetCase] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"golden": self.golden, "golden_run_id": self.golden_run_id, "suite_id": self.suite_id,
                "suite_version": self.suite_version, "device_class": self.device_class, "runs": self.runs,
                "accepted": ACCEPTED_RULE}


@dataclass(frozen=True)
class ToleranceChoice:
    """The rule one case is judged under, and where it came from in words a person reads."""

    policy: Policy
    source: str  # "policy default", "declared by the case", "repeats spread on baseline × 2", "fleet of 7 runs × 2"
    detail: str | None = None  # the figures a learned tolerance rests on


def policy_source(policy: Policy) -> str:
    return f"policy {policy}"


def choose_tolerance(policy: Policy, old: CaseResult, new: CaseResult, fleet: FleetSpread | None) -> ToleranceChoice:
    """The tolerance of one matched case under ``policy`` (learned when it is ``repeats`` or ``fleet``)."""
    declared = (old.own.tolerance if old.own else None) or (new.own.tolerance if new.own else None)
    if declared:
        return ToleranceChoice(policy, "declared by the case")
    if policy.kind == "repeats":
        return _from_repeats(policy, old)
    if policy.kind == "fleet":
        return _from_fleet(policy, old.key, fleet)
    return ToleranceChoice(policy, policy_source(policy))


def _learned(atol: float) -> Policy:
    return Policy("close", rtol=0.0, atol=atol)


def _fallback(why: str) -> ToleranceChoice:
    return ToleranceChoice(DEFAULT_POLICY, f"policy default ({why})")


def _from_repeats(policy: Policy, old: CaseResult) -> ToleranceChoice:
    factor = f"× {policy.factor:g}"
    if old.error is not None:
        return _fallback("the case failed on the baseline")
    if old.repeats < 2:
        return _fallback("the baseline ran the case once: no repeat spread")
    if old.repeat_identical:
        return ToleranceChoice(_learned(0.0), f"repeats spread on baseline {factor}",
                               f"{old.repeats} repeats bitwise equal: atol 0")
    spread = old.repeat_spread
    if spread is None:
        return _fallback("no repeat spread recorded")
    atol = policy.factor * spread.max_abs
    return ToleranceChoice(_learned(atol), f"repeats spread on baseline {factor}",
                           f"max abs {spread.max_abs:.3g} between {old.repeats} repeats: atol {atol:.3g}, rtol 0")


def _from_fleet(policy: Policy, key: CaseKey, fleet: FleetSpread | None) -> ToleranceChoice:
    if fleet is None:
        return _fallback("fleet: no golden with accepted runs at hand")
    found = fleet.cases.get(key)
    runs = found.runs if found else 0
    if runs < policy.min_runs:
        return _fallback(f"fleet: {runs} accepted run(s) with this case, {policy.min_runs} needed")
    assert found is not None
    atol = policy.factor * found.max_abs
    return ToleranceChoice(_learned(atol), f"fleet of {runs} runs × {policy.factor:g}",
                           f"max abs {found.max_abs:.3g} against golden {fleet.golden_run_id}: atol {atol:.3g}, rtol 0")


def rule_note(policy: Policy, fleet: FleetSpread | None) -> str | None:
    """The run-level statement of a learned policy's rule (shown once, above the cases)."""
    if policy.kind == "repeats":
        return (f"policy repeats: per case, atol = {policy.factor:g} × the largest |difference| between the "
                "baseline's repeats (0 when they were bitwise equal), rtol 0; cases without a recorded spread "
                "use the default policy")
    if policy.kind != "fleet":
        return None
    if fleet is None:
        return ("policy fleet: no golden with accepted runs was found for the baseline's suite version and device "
                "class (the fleet needs the database), so every case uses the default policy")
    return (f"policy fleet: per case, atol = {policy.factor:g} × the largest |error| against golden "
            f"{fleet.golden!r} (run {fleet.golden_run_id}) over its {fleet.runs} accepted run(s) of "
            f"{fleet.suite_id} v{fleet.suite_version} on {fleet.device_class}, rtol 0; a case needs "
            f"{policy.min_runs} runs, else the default policy. Accepted: {ACCEPTED_RULE}")


def repeat_spread(first: np.ndarray, others: Sequence[np.ndarray], dtype: str) -> RepeatSpread | None:
    """The largest abs / rel difference and ULP distance of ``others`` from ``first`` (stored form of ``dtype``).

    None when a repeat has another shape or a float output has NaN/Inf where the first has a number
    (no finite spread to learn from).
    """
    if dtype not in FLOAT_DTYPES and first.dtype.kind not in "iub":
        return None
    max_abs = max_rel = 0.0
    ulps = 0
    base = to_float64(np.asarray(first), dtype) if dtype in FLOAT_DTYPES else np.asarray(first, dtype=np.float64)
    with np.errstate(all="ignore"):
        for other in others:
            if other.shape != first.shape:
                return None
            value = to_float64(np.asarray(other), dtype) if dtype in FLOAT_DTYPES else np.asarray(other, np.float64)
            same_nan = np.isnan(base) & np.isnan(value)
            diff = np.where(same_nan | (base == value), 0.0, np.abs(value - base))
            if not np.all(np.isfinite(diff)):
                return None
            max_abs = max(max_abs, float(diff.max(initial=0.0)))
            rel = np.where((diff > 0) & (base != 0), diff / np.abs(base), 0.0)  # undefined at a baseline 0: skipped
            max_rel = max(max_rel, float(rel.max(initial=0.0)))
            if dtype in FLOAT_DTYPES:
                ulps = max(ulps, int(ulp_distance(stored(first, dtype), stored(other, dtype), dtype).max(initial=0)))
            else:
                ulps = max(ulps, int(max_abs))
    return RepeatSpread(max_abs, max_rel, ulps)
