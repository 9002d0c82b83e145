"""Compare two runs case by case: verdicts, metrics, environment diff, likely causes.

Cases are matched on (suite id and version, case id, device, dtype); cases of
the team's own models on (case name, device, dtype) whatever the suite. For
each matched pair the checks run in the order ``torch.testing`` uses (can it be
compared at all, then shape, then dtype, then values), and arrays are decoded
only when the output digests differ. Own cases are judged by ``own.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from driftboard.core.compare.causes import LikelyCause, likely_causes
from driftboard.core.compare.envdiff import EnvDiff, diff_environments
from driftboard.core.compare.learned import FleetSpread, choose_tolerance, rule_note
from driftboard.core.compare.metrics import LayerDivergence, Metrics, compare_arrays
from driftboard.core.compare.own import ModuleChange, OutputChange, judge_own
from driftboard.core.compare.policy import DEFAULT_POLICY, Policy
from driftboard.core.compare.suite_versions import split_versions
from driftboard.core.compare.tiers import TIER_GATES, Side, TierEvidence, Tiers, case_tiers
from driftboard.core.compare.tolerance import IDENTICAL_PASS, PassingTolerance, from_arrays, policy_atol
from driftboard.core.compare.training import TrainingComparison, judge_training
from driftboard.core.compare.truth import TruthComparison, TruthRatio, TruthSummary, default_ratio, judge_truth, summarize
from driftboard.core.compare.verdict import Verdict
from driftboard.core.run import ArraySource, CaseResult, Run
from driftboard.core.text import one_line

CaseKey = tuple[str, str, str]  # (case id, device, dtype)


@dataclass(frozen=True)
class CaseComparison:
    """One case, baseline against candidate."""

    key: CaseKey
    verdict: Verdict
    finding: str  # the judgement in a few words ("bitwise identical", "3 / 10 mismatched ...")
    metrics: Metrics | None = None  # None when the outputs could not be compared
    baseline_repeat_identical: bool | None = None  # None when the case is absent on that side
    candidate_repeat_identical: bool | None = None
    layers: tuple[LayerDivergence, ...] = ()
    first_divergent_layer: str | None = None
    remarks: tuple[str, ...] = ()  # what else was seen: the first divergent layer, nondeterminism
    kind: str = "suite"  # "own": a case of the team's own models
    differs: tuple[str, ...] = ()  # what kept it from being judged: weights, inputs, autocast, model
    outputs: tuple[OutputChange, ...] = ()  # own cases: each output tensor
    modules: tuple[ModuleChange, ...] = ()  # own cases: each module call, in execution order
    passing: PassingTolerance | None = None  # the smallest tolerance that would have passed
    case_tolerance: str | None = None  # the tolerance the case declares, used instead of the policy
    tolerance_source: str | None = None  # where the tolerance came from ("policy default", "fleet of 7 runs × 2")
    tolerance_detail: str | None = None  # the figures a learned tolerance rests on ("max abs 3e-08 ...: atol 6e-08")
    tiers: Tiers | None = None  # which bitwise guarantees held (tiers.py)
    truth: TruthComparison | None = None  # each side against the float64 truth (truth.py); None: not applicable
    training: TrainingComparison | None = None  # a training case step by step (training.py); None: not one

    def fails(self, fail_on: str) -> bool:
        """Whether this case fails ``--fail-on`` (comma-separated gates: verdict levels and ``tier:NAME``)."""
        for gate in fail_on.split(","):
            gate = gate.strip()
            tier = TIER_GATES.get(gate)
            if tier is not None:
                if self.tiers is not None and self.tiers.broken(tier):
                    return True
            elif self.verdict.crosses(gate):
                return True
        return False

    @property
    def first_divergent_module(self) -> ModuleChange | None:
        """The first module call (execution order) whose outputs differ: where the drift starts."""
        return next((m for m in self.modules if not m.identical), None)

    @property
    def detail(self) -> str:
        """The finding and the remarks, for people."""
        return "; ".join((self.finding, *self.remarks))

    @property
    def case_id(self) -> str:
        return self.key[0]

    @property
    def device(self) -> str:
        return self.key[1]

    @property
    def dtype(self) -> str:
        return self.key[2]

    @property
    def nondeterministic(self) -> bool:
        """Repeats on one machine were not bitwise identical."""
        return self.baseline_repeat_identical is False or self.candidate_repeat_identical is False

    @property
    def layer_max_abs(self) -> tuple[tuple[str, float | None], ...]:
        return tuple((layer.name, layer.max_abs) for layer in self.layers)

    def notes(self) -> list[str]:
        """What a table's figure columns do not say: why a case was not compared, layers, nondeterminism."""
        words = [] if self.verdict.changed else [self.finding]
        words += self.remarks
        if self.metrics is not None and self.metrics.nonfinite_mismatch:
            index = ", ".join(map(str, self.metrics.nonfinite_index or ()))
            words.append(f"{self.metrics.nonfinite_mismatch:,} NaN/Inf mismatches, first at ({index})")
        return words

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "device": self.device,
            "dtype": self.dtype,
            "verdict": self.verdict.value,
            "severity": self.verdict.severity,
            "detail": self.detail,
            "metrics": self.metrics.to_json() if self.metrics else None,
            "baseline_repeat_identical": self.baseline_repeat_identical,
            "candidate_repeat_identical": self.candidate_repeat_identical,
            "nondeterministic": self.nondeterministic,
            "first_divergent_layer": self.first_divergent_layer,
            "layers": [layer.to_json() for layer in self.layers],
            "kind": self.kind,
            "differs": list(self.differs),
            "case_tolerance": self.case_tolerance,
            "smallest_passing": self.passing.to_json() if self.passing else None,
            "tolerance_source": self.tolerance_source,
            "tolerance_detail": self.tolerance_detail,
            "tiers": self.tiers.to_json() if self.tiers else None,
            "truth": self.truth.to_json() if self.truth else None,
            "training": self.training.to_json() if self.training else None,
            "first_divergent_module": self.first_divergent_module.to_json() if self.first_divergent_module else None,
            "outputs": [o.to_json() for o in self.outputs],
            "modules": [m.to_json() for m in self.modules],
        }


@dataclass(frozen=True)
class RunInfo:
    """Who a compared run is, without its cases."""

    run_id: str
    label: str
    created_at: str
    suite_id: str
    suite_version: int
    variant: str
    hostname: str | None

    @classmethod
    def of(cls, run: Run) -> RunInfo:
        identity = run.fingerprint.get("identity") if isinstance(run.fingerprint, dict) else None
        hostname = identity.get("hostname") if isinstance(identity, dict) else None
        return cls(
            run.run_id,
            run.label,
            run.created_at,
            run.suite_id,
            run.suite_version,
            run.variant,
            hostname if isinstance(hostname, str) else None,
        )

    @property
    def name(self) -> str:
        """The run id with its label, or else its settings variant when not the default."""
        note = self.label or (self.variant if self.variant != "default" else "")
        return f"{self.run_id} ({note})" if note else self.run_id

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "label": self.label,
            "created_at": self.created_at,
            "suite_id": self.suite_id,
            "suite_version": self.suite_version,
            "variant": self.variant,
            "hostname": self.hostname,
        }


@dataclass(frozen=True)
class RunComparison:
    baseline: RunInfo
    candidate: RunInfo
    policy: Policy
    cases: tuple[CaseComparison, ...]  # sorted by key
    env: EnvDiff
    causes: tuple[LikelyCause, ...]
    notes: tuple[str, ...] = ()  # run-level findings, e.g. suite versions differ
    new_cases: tuple[CaseKey, ...] = ()  # cases only the newer suite version has (not compared)
    truth_ratio: TruthRatio = TruthRatio()  # the thresholds the cases' truth standings used

    @property
    def truth(self) -> TruthSummary:
        """In how many cases the candidate is further from the float64 truth than the baseline."""
        return summarize([c.truth for c in self.cases], self.truth_ratio)

    @property
    def suites_match(self) -> bool:
        return (self.baseline.suite_id, self.baseline.suite_version) == (
            self.candidate.suite_id,
            self.candidate.suite_version,
        )

    @property
    def worst(self) -> Verdict:
        return max((c.verdict for c in self.cases), key=lambda v: v.severity, default=Verdict.IDENTICAL)

    def counts(self) -> dict[Verdict, int]:
        """Cases per verdict, every verdict present, least severe first."""
        found = Counter(c.verdict for c in self.cases)
        return {verdict: found.get(verdict, 0) for verdict in Verdict}

    @property
    def nondeterministic(self) -> list[CaseComparison]:
        """Cases whose repeats differed on the baseline or the candidate machine."""
        return [c for c in self.cases if c.nondeterministic]

    def failing(self, fail_on: str) -> list[CaseComparison]:
        return [c for c in self.cases if c.fails(fail_on)]

    def fails(self, fail_on: str) -> bool:
        """Whether a gate at ``fail_on`` fails: a case crosses it, or nothing was compared at all.

        An environment-only run (an imported collect_env report) has no outputs,
        so no case can be judged; a gate fails closed on it unless ``fail_on`` is ``never``.
        """
        return fail_on != "never" and (not self.cases or bool(self.failing(fail_on)))

    def case(self, case_id: str, device: str = "cpu", dtype: str = "float32") -> CaseComparison:
        for case in self.cases:
            if case.key == (case_id, device, dtype):
                return case
        raise KeyError((case_id, device, dtype))

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_json(),
            "candidate": self.candidate.to_json(),
            "policy": self.policy.to_json(),
            "suites_match": self.suites_match,
            "cases_compared": len(self.cases),
            "worst": self.worst.value,
            "counts": {v.value: n for v, n in self.counts().items()},
            "notes": list(self.notes),
            "new_cases": [list(key) for key in self.new_cases],
            "cases": [c.to_json() for c in self.cases],
            "nondeterministic": [list(c.key) for c in self.nondeterministic],
            "env": self.env.to_json(),
            "causes": [c.to_json() for c in self.causes],
            "truth": self.truth.to_json(),
        }


def compare_runs(
    baseline: Run,
    baseline_arrays: ArraySource,
    candidate: Run,
    candidate_arrays: ArraySource,
    policy: Policy | None = None,
    *,
    fleet: FleetSpread | None = None,
    tier_evidence: Mapping[CaseKey, TierEvidence] | None = None,
    truth_ratio: TruthRatio | None = None,
) -> RunComparison:
    """Every case of two runs compared under ``policy`` (``default`` when None).

    ``fleet``: the accepted runs ``--policy fleet`` learns from (``Store.fleet_spread``);
    ``tier_evidence``: what stored runs show about each case's determinism tiers (``Store.tier_evidence``);
    ``truth_ratio``: when the candidate counts as further from the float64 truth (default: the policy table's).
    """
    policy = policy or DEFAULT_POLICY
    old = {c.key: c for c in baseline.cases}
    new = {c.key: c for c in candidate.cases}
    notes: list[str] = []
    new_cases: tuple[CaseKey, ...] = ()
    rule = rule_note(policy, fleet)
    if rule:
        notes.append(rule)
    if baseline.imported or candidate.imported:
        side = "baseline" if baseline.imported else "candidate"
        notes.append(f"the {side} is an environment imported from a collect_env report: it has no model "
                     "outputs, so only the environments are compared")
        cases = []
    elif (versions := split_versions(baseline, candidate)) is not None:
        notes.append(versions.note)  # one suite, two versions: the cases both have (suite_versions.py)
        cases = _matched(versions.baseline, baseline_arrays, versions.candidate, candidate_arrays, policy, fleet)
        new_cases = versions.new_cases
    elif (baseline.suite_id, baseline.suite_version) != (candidate.suite_id, candidate.suite_version):
        notes.append(
            f"suites differ (baseline {baseline.suite_id} v{baseline.suite_version}, candidate "
            f"{candidate.suite_id} v{candidate.suite_version}): no reference case can be matched, so every one is "
            "reported missing on the other side"
        )
        cases = [_missing(c, Verdict.MISSING_IN_CANDIDATE) for c in old.values() if c.own is None]
        cases += [_missing(c, Verdict.MISSING_IN_BASELINE) for c in new.values() if c.own is None]
        cases += _matched({k: c for k, c in old.items() if c.own is not None}, baseline_arrays,
                          {k: c for k, c in new.items() if c.own is not None}, candidate_arrays, policy, fleet)
    else:
        cases = _matched(old, baseline_arrays, new, candidate_arrays, policy, fleet)
    sides = Side.of(baseline), Side.of(candidate)
    evidence = tier_evidence or {}
    cases = [replace(c, tiers=case_tiers(old.get(c.key), new.get(c.key), *sides, evidence.get(c.key)))
             for c in cases]
    truth_ratio = truth_ratio or default_ratio()
    cases = [replace(c, truth=judge_truth(old[c.key], new[c.key], truth_ratio)) if c.key in old and c.key in new
             else c for c in cases]
    cases.sort(key=lambda c: (c.key, c.verdict.severity))
    env = diff_environments(baseline.fingerprint, candidate.fingerprint)
    return RunComparison(
        baseline=RunInfo.of(baseline),
        candidate=RunInfo.of(candidate),
        policy=policy,
        cases=tuple(cases),
        env=env,
        causes=likely_causes(env, cases),
        notes=tuple(notes),
        new_cases=new_cases,
        truth_ratio=truth_ratio,
    )


def _matched(old: dict[CaseKey, CaseResult], old_arrays: ArraySource, new: dict[CaseKey, CaseResult],
             new_arrays: ArraySource, policy: Policy, fleet: FleetSpread | None = None) -> list[CaseComparison]:
    cases = []
    for key in old.keys() | new.keys():
        if key not in new:
            cases.append(_missing(old[key], Verdict.MISSING_IN_CANDIDATE))
        elif key not in old:
            cases.append(_missing(new[key], Verdict.MISSING_IN_BASELINE))
        else:
            choice = choose_tolerance(policy, old[key], new[key], fleet)
            judged = compare_case(old[key], old_arrays, new[key], new_arrays, choice.policy)
            cases.append(replace(judged, tolerance_source=choice.source, tolerance_detail=choice.detail))
    return cases


def _missing(case: CaseResult, verdict: Verdict) -> CaseComparison:
    on_baseline = verdict is Verdict.MISSING_IN_CANDIDATE
    return CaseComparison(
        key=case.key,
        verdict=verdict,
        finding=f"only in the {'baseline' if on_baseline else 'candidate'}",
        baseline_repeat_identical=case.repeat_identical if on_baseline else None,
        candidate_repeat_identical=None if on_baseline else case.repeat_identical,
        kind=case.kind,
    )


def compare_case(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource, policy: Policy) -> CaseComparison:
    """One matched case (same key on both sides)."""
    if old.own is not None or new.own is not None:
        return _own_case(old, old_arrays, new, new_arrays, policy)
    verdict, finding, metrics = _judge(old, old_arrays, new, new_arrays, policy)
    layers = _layers(old, old_arrays, new, new_arrays) if verdict.changed or verdict is Verdict.IDENTICAL else ()
    first = next((layer.name for layer in layers if not layer.identical), None)
    remarks = []
    if first is not None:
        # Identical outputs can still hide a differing intermediate layer: say so without contradicting the verdict.
        unaffected = "" if verdict.changed else " (the output is unaffected)"
        remarks.append(f"first divergent layer {first}{unaffected}")
    for side, case in (("baseline", old), ("candidate", new)):
        if not case.repeat_identical:
            remarks.append(f"nondeterministic on the {side} ({case.repeats} repeats differed)")
    training = judge_training(old, new, policy, verdict)
    if training is not None:  # the output is the final parameters; the steps say where and how fast they parted
        finding = f"final parameters: {finding}"
        remarks.insert(0, training.text)
    return CaseComparison(
        key=old.key,
        verdict=verdict,
        finding=finding,
        metrics=metrics,
        baseline_repeat_identical=old.repeat_identical,
        candidate_repeat_identical=new.repeat_identical,
        training=training,
        layers=layers,
        first_divergent_layer=first,
        remarks=tuple(remarks),
        differs=_differs(old, new) if verdict is Verdict.INPUTS_DIFFER else (),
        passing=_passing(old, old_arrays, new, new_arrays, policy, verdict),
    )


def _differs(old: CaseResult, new: CaseResult) -> tuple[str, ...]:
    return tuple(name for name, a, b in (("weights", old.weight_digest, new.weight_digest),
                                         ("inputs", old.input_digest, new.input_digest)) if a != b)


def _passing(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource, policy: Policy,
             verdict: Verdict) -> PassingTolerance | None:
    """The smallest tolerance the outputs would have passed (changed outputs are read once more, in chunks)."""
    if verdict is Verdict.IDENTICAL:
        return IDENTICAL_PASS
    if not verdict.changed or old.output is None or new.output is None:
        return None
    dtype = old.output.dtype
    return from_arrays(old_arrays.load(old.output), new_arrays.load(new.output), dtype, policy_atol(policy, dtype))


def _own_case(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource,
              policy: Policy) -> CaseComparison:
    judged = judge_own(old, old_arrays, new, new_arrays, policy)
    remarks = list(judged.remarks)
    training = judge_training(old, new, policy, judged.verdict)  # a declared training step (own_training.py)
    if training is not None:
        remarks.insert(0, training.text)
    first = judged.first_divergent
    if first is not None:
        unaffected = "" if judged.verdict.changed else " (the output is unaffected)"
        if judged.verdict.changed or judged.verdict is Verdict.IDENTICAL:
            remarks.insert(0, f"first divergent module {first.label}{unaffected}")
    if judged.passing is not None and judged.verdict.changed:
        remarks.append(judged.passing.text)
    if judged.case_tolerance:
        remarks.append(f"judged under the case's own tolerance {judged.case_tolerance}")
    for side, case in (("baseline", old), ("candidate", new)):
        if not case.repeat_identical:
            remarks.append(f"nondeterministic on the {side} ({case.repeats} repeats differed)")
    return CaseComparison(
        key=old.key,
        verdict=judged.verdict,
        finding=judged.finding,
        metrics=judged.metrics,
        baseline_repeat_identical=old.repeat_identical,
        candidate_repeat_identical=new.repeat_identical,
        first_divergent_layer=first.label if first is not None else None,
        remarks=tuple(remarks),
        kind="own",
        training=training,
        differs=judged.differs,
        outputs=judged.outputs,
        modules=judged.modules,
        passing=judged.passing,
        case_tolerance=judged.case_tolerance,
    )


def _judge(
    old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource, policy: Policy
) -> tuple[Verdict, str, Metrics | None]:
    for side, case in (("baseline", old), ("candidate", new)):
        if case.error is not None or case.output is None:
            return Verdict.ERROR, f"failed on the {side}: {one_line(case.error or 'no output')}", None
    inputs = [
        name for name, a, b in (("input", old.input_digest, new.input_digest), ("weight", old.weight_digest, new.weight_digest)) if a != b
    ]
    if inputs:
        return Verdict.INPUTS_DIFFER, f"{' and '.join(inputs)} digests differ: compute cannot be judged", None
    a, b = old.output, new.output
    assert a is not None and b is not None
    if a.shape != b.shape:
        return Verdict.SHAPE_MISMATCH, f"shape {list(a.shape)} → {list(b.shape)}", None
    if a.dtype != b.dtype:
        return Verdict.DTYPE_MISMATCH, f"dtype {a.dtype} → {b.dtype}", None
    tolerance = policy.for_dtype(a.dtype)
    if a.sha256 == b.sha256:
        return Verdict.IDENTICAL, "bitwise identical", Metrics.identical(a.shape, a.dtype, tolerance, old.time_axis)
    time_axis = old.time_axis if old.time_axis == new.time_axis else None
    metrics = compare_arrays(old_arrays.load(a), new_arrays.load(b), a.dtype, policy, time_axis)
    return _verdict_of(metrics), describe(metrics), metrics


def _verdict_of(metrics: Metrics) -> Verdict:
    if metrics.nonfinite_mismatch:
        return Verdict.NONFINITE_MISMATCH
    if metrics.mismatched:
        return Verdict.DRIFT
    return Verdict.WITHIN_TOLERANCE


def describe(m: Metrics) -> str:
    """The key figures of a comparison in one short line."""
    parts = []
    if m.nonfinite_mismatch:
        parts.append(
            f"{m.nonfinite_mismatch} non-finite mismatch{'es' if m.nonfinite_mismatch > 1 else ''} (first at {_index(m.nonfinite_index)})"
        )
    if m.mismatched:
        parts.append(f"{m.mismatched} / {m.n} mismatched ({m.mismatched_fraction:.1%}) under {m.tolerance}")
    else:
        parts.append(f"{m.changed} / {m.n} changed, all within {m.tolerance}")
    parts.append(f"max {m.ulp_max} ULP, max abs {m.max_abs:.3g} at {_index(m.max_abs_index)}")
    return "; ".join(parts)


def _index(index: tuple[int, ...] | None) -> str:
    return "-" if index is None else "(" + ", ".join(str(i) for i in index) + ")"


def _layers(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource) -> tuple[LayerDivergence, ...]:
    """Per-layer divergence in forward order; layers decoded only when their digests differ.

    When the outputs are identical no layer is decoded at all: a layer that
    differs is reported by digest only.
    """
    decode = old.output is None or new.output is None or old.output.sha256 != new.output.sha256
    theirs = dict(new.layers)
    out = []
    for name, a in old.layers:
        b = theirs.get(name)
        if b is None:
            out.append(LayerDivergence(name, False, note="missing in candidate"))
        elif a.sha256 == b.sha256:
            out.append(LayerDivergence(name, True, 0.0, 0))
        elif a.shape != b.shape or a.dtype != b.dtype:
            out.append(LayerDivergence(name, False, note=f"{a.dtype}{list(a.shape)} → {b.dtype}{list(b.shape)}"))
        elif not decode:
            out.append(LayerDivergence(name, False, note="digests differ"))
        else:
            m = compare_arrays(old_arrays.load(a), new_arrays.load(b), a.dtype, Policy("bitwise"))
            out.append(LayerDivergence(name, False, m.max_abs, m.ulp_max))
    known = {name for name, _ in old.layers}
    out.extend(LayerDivergence(name, False, note="missing in baseline") for name, _ in new.layers if name not in known)
    return tuple(out)
