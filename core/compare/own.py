"""A case of the team's own models, baseline against candidate: outputs, then module calls in order.

Checks run in ``torch.testing``'s order: can the case be judged at all (errors;
the same model and autocast; weights and inputs digests, a verdict of their own,
never drift), then the outputs' structure, shapes and dtypes, then values.
An output tensor kept whole on both sides is compared element by element; one
kept as statistics is judged from them (equal digests are identical; a moved
extreme or sampled element past the tolerance proves drift).

Module calls are matched by (qualified name, call number) and walked in the
baseline's execution order: equal digests are identical without decoding
anything; otherwise each statistic's change (relative change of the L2 norm,
absolute change of min, max and mean), or, in full mode, ULP, abs and rel error
element by element. The first call that differs is the first divergent module.
numpy only: never torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftboard.core.compare.metrics import Metrics, compare_arrays, json_float
from driftboard.core.compare.policy import Policy, parse_policy
from driftboard.core.compare.tolerance import (
    IDENTICAL_PASS,
    PassingTolerance,
    from_arrays,
    from_stats,
    lower_bound_abs,
    policy_atol,
)
from driftboard.core.compare.verdict import Verdict
from driftboard.core.run import ArraySource, CaseResult, ModuleCall, OwnResult, TensorRecord, TensorStats, module_label, to_float64
from driftboard.core.text import one_line

RNG_NOTE = ("the factory draws its {what} from torch's random stream ({how}), which is not stable across CPU "
            "capabilities or torch releases: load a checkpoint or fill them from a fixed generator to compare compute")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Change:
    """How one tensor (or a module call's tensors, the worst of them) changed.

    ``rel_error`` is the figure charts plot along execution order: the relative
    L2 error ``‖b - a‖ / ‖a‖`` when elements were compared, else the relative
    change of the L2 norm (a lower bound of it).
    """

    identical: bool
    note: str = ""  # why figures are missing: a shape or dtype change, only on one side
    rel_error: float | None = None
    l2_rel: float | None = None
    min_change: float | None = None
    max_change: float | None = None
    mean_change: float | None = None
    elementwise: bool = False  # ulp_max, max_abs and max_rel come from every element (full mode)
    ulp_max: int | None = None
    max_abs: float | None = None
    max_rel: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "note": self.note,
            "rel_error": json_float(self.rel_error),
            "l2_rel": json_float(self.l2_rel),
            "min_change": json_float(self.min_change),
            "max_change": json_float(self.max_change),
            "mean_change": json_float(self.mean_change),
            "elementwise": self.elementwise,
            "ulp_max": self.ulp_max,
            "max_abs": json_float(self.max_abs),
            "max_rel": json_float(self.max_rel),
        }


@dataclass(frozen=True)
class ModuleChange:
    """One module call, baseline against candidate."""

    name: str
    call: int
    type: str
    change: Change
    baseline_truth: float | None = None  # each side's relative L2 error against the float64 pass's same call
    candidate_truth: float | None = None

    @property
    def identical(self) -> bool:
        return self.change.identical

    @property
    def label(self) -> str:
        return module_label(self.name, self.type, self.call)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "call": self.call, "type": self.type, "label": self.label, **self.change.to_json(),
                "baseline_truth_rel_error": json_float(self.baseline_truth),
                "candidate_truth_rel_error": json_float(self.candidate_truth)}


@dataclass(frozen=True)
class OutputChange:
    """One tensor of the model's output, baseline against candidate."""

    path: str
    change: Change

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, **self.change.to_json()}


@dataclass(frozen=True)
class OwnJudgement:
    """Everything comparing one own case found; ``runs.compare_case`` turns it into a ``CaseComparison``."""

    verdict: Verdict
    finding: str
    metrics: Metrics | None = None
    differs: tuple[str, ...] = ()
    outputs: tuple[OutputChange, ...] = ()
    modules: tuple[ModuleChange, ...] = ()
    passing: PassingTolerance | None = None
    case_tolerance: str | None = None
    remarks: tuple[str, ...] = field(default=())

    @property
    def first_divergent(self) -> ModuleChange | None:
        return next((m for m in self.modules if not m.identical), None)


def judge_own(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource,
              policy: Policy) -> OwnJudgement:
    """One matched case of the team's own models (same key on both sides, at least one side own)."""
    if old.own is None or new.own is None:
        side = "baseline" if old.own is None else "candidate"
        return OwnJudgement(Verdict.INPUTS_DIFFER, f"the {side}'s case of this name is a reference-suite case: "
                            "not the same model", differs=("model",))
    declared = old.own.tolerance or new.own.tolerance
    rule = parse_policy(declared) if declared else policy
    remarks = _mode_remarks(old.own, new.own)
    modules = module_changes(old.own, old_arrays, new.own, new_arrays) if not (old.error or new.error) else ()
    base = {"modules": modules, "case_tolerance": declared, "remarks": remarks}
    for side, case in (("baseline", old), ("candidate", new)):
        if case.error is not None:
            return OwnJudgement(Verdict.ERROR, f"failed on the {side}: {one_line(case.error)}", **base)
    if old.own.autocast != new.own.autocast:
        return OwnJudgement(Verdict.INPUTS_DIFFER, f"autocast differs ({old.own.autocast or 'none'} → "
                            f"{new.own.autocast or 'none'}): the case runs differently, compute not judged",
                            differs=("autocast",), **base)
    differs = tuple(name for name, a, b in (("weights", old.weight_digest, new.weight_digest),
                                            ("inputs", old.input_digest, new.input_digest)) if a != b)
    if differs:
        finding = f"{' and '.join(differs)} differ: compute not judged"
        if "weights" in differs and (old.own.weights_rng or new.own.weights_rng):
            finding += "; " + RNG_NOTE.format(what="weights", how="seeded default init")
        elif "inputs" in differs and (old.own.inputs_rng or new.own.inputs_rng):
            finding += "; " + RNG_NOTE.format(what="inputs", how="torch.randn and the like")
        return OwnJudgement(Verdict.INPUTS_DIFFER, finding, differs=differs, **base)
    return _judge_outputs(old, old_arrays, new, new_arrays, rule, base)


def _judge_outputs(old: CaseResult, old_arrays: ArraySource, new: CaseResult, new_arrays: ArraySource,
                   rule: Policy, base: dict[str, Any]) -> OwnJudgement:
    assert old.own is not None and new.own is not None
    mine = {t.path: t for t in new.own.outputs}
    paths = [t.path for t in old.own.outputs]
    if paths != [t.path for t in new.own.outputs]:
        only = sorted(set(paths) ^ set(mine))
        words = ", ".join(p or "(top)" for p in only[:3]) or "their order"
        return OwnJudgement(Verdict.SHAPE_MISMATCH, f"the outputs' structure differs ({words})", **base)
    for a in old.own.outputs:
        b = mine[a.path]
        where = f"output {a.path}: " if len(paths) > 1 else ""
        if a.stats.shape != b.stats.shape:
            return OwnJudgement(Verdict.SHAPE_MISMATCH, f"{where}shape {list(a.stats.shape)} → {list(b.stats.shape)}",
                                **base)
        if a.stats.dtype != b.stats.dtype:
            return OwnJudgement(Verdict.DTYPE_MISMATCH, f"{where}dtype {a.stats.dtype} → {b.stats.dtype}", **base)
    judged = [_judge_output(a, old_arrays, mine[a.path], new_arrays, rule) for a in old.own.outputs]
    worst = max(range(len(judged)), key=lambda i: (judged[i][0].severity, -i))
    verdict, finding, metrics, change, passing = judged[worst]
    if len(paths) > 1 and verdict is not Verdict.IDENTICAL:
        finding = f"output {paths[worst] or '(top)'}: {finding}"
    total = judged[0][4]
    for item in judged[1:]:
        total = total.widened(item[4])
    outputs = tuple(OutputChange(a.path, j[3]) for a, j in zip(old.own.outputs, judged))
    return OwnJudgement(verdict, finding, metrics, outputs=outputs, passing=total, **base)


def _judge_output(a: TensorRecord, old_arrays: ArraySource, b: TensorRecord, new_arrays: ArraySource,
                  rule: Policy) -> tuple[Verdict, str, Metrics | None, Change, PassingTolerance]:
    dtype = a.stats.dtype
    tolerance = rule.for_dtype(dtype)
    if a.stats.sha256 == b.stats.sha256:
        metrics = Metrics.identical(a.stats.shape, dtype, tolerance) if a.array is not None else None
        return Verdict.IDENTICAL, "bitwise identical", metrics, Change(True), IDENTICAL_PASS
    atol = policy_atol(rule, dtype)
    if a.array is not None and b.array is not None:
        x, y = old_arrays.load(a.array), new_arrays.load(b.array)
        metrics = compare_arrays(x, y, dtype, rule)
        from driftboard.core.compare.runs import _verdict_of, describe

        change = _elementwise(a.stats, b.stats, x, y, dtype)
        return _verdict_of(metrics), describe(metrics), metrics, change, from_arrays(x, y, dtype, atol)
    change = _from_stats(a.stats, b.stats)
    passing = from_stats(a.stats, b.stats, atol)
    verdict, finding = _judge_stats(a.stats, b.stats, tolerance, passing)
    return verdict, finding, None, change, passing


def _judge_stats(a: TensorStats, b: TensorStats, tolerance: Any, passing: PassingTolerance) -> tuple[Verdict, str]:
    """Judged without elements: drift when the statistics prove an element past the tolerance."""
    if a.nonfinite != b.nonfinite:
        return Verdict.NONFINITE_MISMATCH, f"{a.nonfinite} → {b.nonfinite} NaN/Inf elements (judged from statistics)"
    bound = lower_bound_abs(a, b)
    figures = f"at least {bound:.3g} max abs" if bound is not None else "digests differ"
    if tolerance.kind == "bitwise":
        proven = True
    elif tolerance.kind == "ulp":
        proven = passing.ulps is not None and passing.ulps > tolerance.ulps
    else:
        proven = passing.rtol is None or passing.rtol > tolerance.rtol
    if proven:
        return Verdict.DRIFT, f"beyond {tolerance}: {figures} (judged from statistics; --layers full compares every element)"
    return Verdict.WITHIN_TOLERANCE, (f"bits differ, statistics within {tolerance}: {figures} (judged from statistics; "
                                      "--layers full compares every element)")


# ---------------------------------------------------------------- module calls


def module_changes(old: OwnResult, old_arrays: ArraySource, new: OwnResult, new_arrays: ArraySource) -> tuple[ModuleChange, ...]:
    """Every module call, in the baseline's execution order, then those only the candidate made."""
    theirs = {(m.name, m.call): m for m in new.modules}
    out = []
    for m in old.modules:
        other = theirs.pop((m.name, m.call), None)
        change = Change(False, note="only in the baseline") if other is None else \
            _call_change(m, old_arrays, other, new_arrays)
        out.append(ModuleChange(m.name, m.call, m.type, change, m.truth_rel_error,
                                other.truth_rel_error if other is not None else None))
    out.extend(ModuleChange(m.name, m.call, m.type, Change(False, note="only in the candidate"),
                            candidate_truth=m.truth_rel_error) for m in theirs.values())
    return tuple(out)


def _call_change(a: ModuleCall, old_arrays: ArraySource, b: ModuleCall, new_arrays: ArraySource) -> Change:
    if len(a.tensors) == len(b.tensors) and all(x.stats.sha256 == y.stats.sha256 and x.path == y.path
                                                for x, y in zip(a.tensors, b.tensors)):
        return Change(True)
    if [t.path for t in a.tensors] != [t.path for t in b.tensors]:
        return Change(False, note="its outputs' structure differs")
    changes = [_tensor_change(x, old_arrays, y, new_arrays) for x, y in zip(a.tensors, b.tensors)]
    return _worst(changes)


def _tensor_change(a: TensorRecord, old_arrays: ArraySource, b: TensorRecord, new_arrays: ArraySource) -> Change:
    sa, sb = a.stats, b.stats
    if sa.sha256 == sb.sha256:
        return Change(True)
    if sa.shape != sb.shape or sa.dtype != sb.dtype:
        return Change(False, note=f"{sa.dtype}{list(sa.shape)} → {sb.dtype}{list(sb.shape)}")
    if a.array is not None and b.array is not None:
        return _elementwise(sa, sb, old_arrays.load(a.array), new_arrays.load(b.array), sa.dtype)
    return _from_stats(sa, sb)


def _from_stats(a: TensorStats, b: TensorStats) -> Change:
    l2_rel = _rel(a.l2, b.l2)
    return Change(False, note="" if a.nonfinite == b.nonfinite else f"{a.nonfinite} → {b.nonfinite} NaN/Inf",
                  rel_error=l2_rel, l2_rel=l2_rel, min_change=_diff(a.min, b.min), max_change=_diff(a.max, b.max),
                  mean_change=_diff(a.mean, b.mean))


def _elementwise(sa: TensorStats, sb: TensorStats, x: np.ndarray, y: np.ndarray, dtype: str) -> Change:
    stats = _from_stats(sa, sb)
    if dtype not in ("float16", "bfloat16", "float32", "float64", "int64", "int32", "uint8", "bool"):
        return stats
    m = compare_arrays(x, y, dtype, Policy("bitwise"))
    return Change(False, note=stats.note, rel_error=_relative_l2(x, y, dtype), l2_rel=stats.l2_rel,
                  min_change=stats.min_change, max_change=stats.max_change, mean_change=stats.mean_change,
                  elementwise=True, ulp_max=m.ulp_max, max_abs=m.max_abs, max_rel=m.max_rel)


def _relative_l2(x: np.ndarray, y: np.ndarray, dtype: str) -> float | None:
    """``‖y - x‖₂ / ‖x‖₂`` over positions finite on both sides, in float64 chunks."""
    fx, fy = x.reshape(-1), y.reshape(-1)
    num = den = 0.0
    with np.errstate(all="ignore"):
        for start in range(0, fx.size, _CHUNK):
            a, b = to_float64(fx[start:start + _CHUNK], dtype), to_float64(fy[start:start + _CHUNK], dtype)
            keep = np.isfinite(a) & np.isfinite(b)
            a, b = a[keep], b[keep]
            num += float(np.dot(b - a, b - a))
            den += float(np.dot(a, a))
    if den == 0:
        return None if num else 0.0
    value = math.sqrt(num / den)
    return value if math.isfinite(value) else None


def _worst(changes: list[Change]) -> Change:
    if all(c.identical for c in changes):
        return Change(True)

    def top(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    changed = [c for c in changes if not c.identical]
    return Change(
        False,
        note=next((c.note for c in changed if c.note), ""),
        rel_error=top([c.rel_error for c in changed]),
        l2_rel=top([c.l2_rel for c in changed]),
        min_change=top([c.min_change for c in changed]),
        max_change=top([c.max_change for c in changed]),
        mean_change=top([c.mean_change for c in changed]),
        elementwise=all(c.elementwise for c in changed),
        ulp_max=top([c.ulp_max for c in changed]),
        max_abs=top([c.max_abs for c in changed]),
        max_rel=top([c.max_rel for c in changed]),
    )


def _rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if a == 0:
        return 0.0 if b == 0 else math.inf
    return abs(b - a) / abs(a)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else abs(b - a)


def _mode_remarks(old: OwnResult, new: OwnResult) -> tuple[str, ...]:
    out = []
    for side, own in (("baseline", old), ("candidate", new)):
        if own.layers == "none" and old.layers != new.layers:
            out.append(f"module calls not recorded on the {side} (--layers none)")
        if own.hooks_change_output:
            out.append(f"on the {side}, the forward with hooks computed other outputs than the plain forward (hooks "
                       "turn off fused paths such as TransformerEncoderLayer's): the module table describes the "
                       "hooked forward")
        if own.modules_dropped:
            out.append(f"{own.modules_dropped:,} module calls past the recording budget not recorded on the {side}")
    return tuple(out)
