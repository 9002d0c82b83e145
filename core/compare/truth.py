"""Error against the float64 truth: measured at capture, compared between two runs in words.

A case captured in float32, float16 or bfloat16 is also run on the CPU in
float64 with the same weights and inputs exactly upcast (``core/truth_pass.py``).
``measure`` turns the case's outputs and that float64 result into a
``TruthError``; ``judge_truth`` sets the baseline's error beside the
candidate's and says which machine is closer to the true result, by the ratio
of their relative L2 errors against the thresholds of ``TruthRatio`` (the
policy table's ``TRUTH_RATIO`` unless overridden, ``--truth-ratio``).
numpy only: never torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftboard.core.compare.metrics import json_float
from driftboard.core.compare.ulp import FLOAT_BITS, ulp_distance
from driftboard.core.errors import PolicyError
from driftboard.core.run import CaseResult, TruthError, to_float64

TRUTH_DTYPES = ("float32", "float16", "bfloat16")  # the case dtypes that get a float64 truth
MISSING = "an older bundle, an imported environment or a capture with --no-truth"
NO_MODULE = "no float64 pass: the case runs no module (it probes torch's random stream)"  # not applicable

# Standings, closest first: what a person reads, and the JSON's ``standing``.
CLOSER, AS_CLOSE, SLIGHTLY_FURTHER, FURTHER, UNKNOWN = "closer", "as close", "slightly further", "further", "unknown"
STANDINGS = (CLOSER, AS_CLOSE, SLIGHTLY_FURTHER, FURTHER, UNKNOWN)


# ---------------------------------------------------------------- measuring (capture)


def round_to(truth: np.ndarray, dtype: str) -> np.ndarray:
    """Float64 values rounded to nearest-even in ``dtype``, in its stored form (bfloat16: uint16 bits).

    numpy rounds float64 to float32 and float16 directly. bfloat16 goes through
    float32 rounded to odd (an inexact result keeps its last bit set), which
    makes the second rounding exact: rounding twice to nearest could land on a
    midpoint the float64 value was not on.
    """
    if dtype in ("float32", "float16", "float64"):
        with np.errstate(over="ignore"):
            return np.asarray(truth, dtype=np.float64).astype(dtype)
    if dtype != "bfloat16":
        raise ValueError(f"no rounding to {dtype}")
    t = np.asarray(truth, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = t.astype(np.float32)
        inexact = np.isfinite(t) & (f.astype(np.float64) != t)
        away = inexact & (np.abs(f.astype(np.float64)) > np.abs(t))  # rounded away from zero: step back
        f = np.where(away, np.nextafter(f, np.float32(0)), f)
        bits = f.view(np.uint32) | inexact.astype(np.uint32)  # round to odd
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        nan = np.isnan(f)
    out = rounded.astype(np.uint16)
    out[nan] = np.uint16(0x7FC0)
    return out


@dataclass
class TruthAccumulator:
    """Figures over the output tensors of one case, added one tensor at a time."""

    max_abs: float = 0.0
    max_rel: float = 0.0
    squares: float = 0.0  # sum of squared errors
    truth_squares: float = 0.0
    ulp_max: int | None = None
    nonfinite: int = 0
    tensors: int = 0

    def add(self, stored: np.ndarray, dtype: str, truth: np.ndarray) -> None:
        """One output: its stored form (bfloat16 as uint16 bits) and the float64 pass's tensor of the same shape."""
        if dtype not in FLOAT_BITS:
            return  # an integer or boolean output has no rounding error to measure
        truth = np.asarray(truth, dtype=np.float64)
        if truth.shape != stored.shape:
            raise ValueError(f"the float64 pass gave shape {list(truth.shape)}, the case {list(stored.shape)}")
        out = to_float64(stored, dtype)
        with np.errstate(all="ignore"):
            finite = np.isfinite(out) & np.isfinite(truth)
            agree = finite | (out == truth) | (np.isnan(out) & np.isnan(truth))
            self.nonfinite += int(np.count_nonzero(~agree))
            diff = np.where(finite, np.abs(out - truth), 0.0)
            absolute = np.where(finite, np.abs(truth), 0.0)
            rel = np.divide(diff, absolute, out=np.zeros_like(diff), where=absolute > 0)
        self.tensors += 1
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.max_rel = max(self.max_rel, float(rel.max()))
            self.squares += float(np.dot(diff.reshape(-1), diff.reshape(-1)))
            self.truth_squares += float(np.dot(absolute.reshape(-1), absolute.reshape(-1)))
            ulps = ulp_distance(stored, round_to(truth, dtype), dtype)[finite]
            top = int(ulps.max()) if ulps.size else 0
            self.ulp_max = top if self.ulp_max is None else max(self.ulp_max, top)

    def result(self, seconds: float) -> TruthError:
        if not self.tensors:
            return TruthError(seconds=seconds, error="no floating output to measure")
        return TruthError(max_abs=self.max_abs, max_rel=self.max_rel, rel_l2=rel_l2(self.squares, self.truth_squares),
                          ulp_max=self.ulp_max if self.ulp_max is not None else 0, seconds=seconds,
                          nonfinite=self.nonfinite)


def rel_l2(squares: float, truth_squares: float) -> float | None:
    """``sqrt(squares / truth_squares)``; 0 when both are 0, None when only the truth is 0 (no scale)."""
    if truth_squares > 0:
        value = math.sqrt(squares / truth_squares)
        return value if math.isfinite(value) else None
    return 0.0 if squares == 0 else None


def measure(outputs: Iterable[tuple[np.ndarray, str, np.ndarray]], seconds: float = 0.0) -> TruthError:
    """The error of a case's outputs, (stored array, dtype, float64 truth) each, against the truth."""
    acc = TruthAccumulator()
    for stored, dtype, truth in outputs:
        acc.add(stored, dtype, truth)
    return acc.result(seconds)


# ---------------------------------------------------------------- comparing (two runs)


@dataclass(frozen=True)
class TruthRatio:
    """When the candidate counts as closer, as close, slightly further or further from the truth.

    ``r`` is the candidate's relative L2 error against the truth over the
    baseline's: ``r < 1/same`` closer, up to ``same`` as close, up to
    ``slightly`` slightly further, above it further.
    """

    same: float = 1.0
    slightly: float = 2.0

    def __str__(self) -> str:
        return f"{self.same:g},{self.slightly:g}"

    def to_json(self) -> dict[str, Any]:
        return {"as_close_up_to": self.same, "slightly_further_up_to": self.slightly}


def default_ratio() -> TruthRatio:
    from driftboard.core.compare.policy import TRUTH_RATIO

    return TruthRatio(*TRUTH_RATIO)


def parse_truth_ratio(text: str) -> TruthRatio:
    """``SAME,SLIGHTLY`` (e.g. ``1,2``; ``truth_ratio=1.2,3`` too): 1 <= SAME <= SLIGHTLY; else ``PolicyError``."""
    spec = str(text).strip().lower().removeprefix("truth_ratio").strip().removeprefix("=").strip()
    parts = [p.strip() for p in spec.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 2 or not all(math.isfinite(v) for v in values) or not 1 <= values[0] <= values[1]:
        raise PolicyError(f"invalid truth ratio {str(text)[:60]!r}: expected SAME,SLIGHTLY with "
                          "1 <= SAME <= SLIGHTLY (default 1,2: up to 1× as close, up to 2× slightly further)")
    return TruthRatio(values[0], values[1])


@dataclass(frozen=True)
class TruthComparison:
    """One case: each side's error against the float64 truth and where the candidate stands."""

    baseline: TruthError | None
    candidate: TruthError | None
    standing: str  # one of STANDINGS
    ratio: float | None  # candidate rel L2 error / baseline's; inf when only the baseline is exact
    words: str  # "further from the truth (×3.1)", "no float64 truth on the baseline: …"

    @property
    def short(self) -> str:
        """A table cell: ``further ×3.1``, ``as close``, ``closer ×0.5``; ``?`` when unknown."""
        if self.standing == UNKNOWN or self.ratio is None:
            return "?"
        if self.standing == AS_CLOSE and self.ratio == 1:
            return AS_CLOSE
        return f"{self.standing} ×{times(self.ratio)}" if math.isfinite(self.ratio) else f"{self.standing} (exact baseline)"

    def to_json(self) -> dict[str, Any]:
        return {"standing": self.standing, "ratio": json_float(self.ratio), "words": self.words,
                "baseline": truth_json(self.baseline), "candidate": truth_json(self.candidate)}


def truth_json(truth: TruthError | None) -> dict[str, Any] | None:
    """The manifest and report form of a ``TruthError`` (no NaN or infinity)."""
    return truth.to_json() if truth is not None else None


def applies(case: CaseResult) -> bool:
    """Whether a case has a float64 truth to speak of: a float32, float16 or bfloat16 forward case that ran."""
    return (case.dtype in TRUTH_DTYPES and case.error is None and getattr(case, "training", None) is None
            and not (case.truth is not None and case.truth.error == NO_MODULE))


def judge_truth(old: CaseResult, new: CaseResult, ratio: TruthRatio | None = None) -> TruthComparison | None:
    """Baseline against candidate; None when the case has no truth to speak of (float64, errors)."""
    if not (applies(old) and applies(new)):
        return None
    ratio = ratio or default_ratio()
    for side, truth in (("baseline", old.truth), ("candidate", new.truth)):
        if truth is None:
            return TruthComparison(old.truth, new.truth, UNKNOWN, None, f"no float64 truth on the {side}: {MISSING}")
        if truth.error is not None:
            return TruthComparison(old.truth, new.truth, UNKNOWN, None,
                                   f"no float64 truth on the {side}: {truth.error}")
    a, b = _figure(old.truth, new.truth)
    if a is None or b is None:
        return TruthComparison(old.truth, new.truth, UNKNOWN, None, "no comparable error against the truth")
    r = b / a if a else (1.0 if b == 0 else math.inf)  # an exact baseline: any error is infinitely further
    standing = standing_of(r, ratio)
    return TruthComparison(old.truth, new.truth, standing, r, words(standing, r))


def _figure(a: TruthError | None, b: TruthError | None) -> tuple[float | None, float | None]:
    """The relative L2 errors when both sides have one, else the greatest absolute errors."""
    assert a is not None and b is not None
    if a.rel_l2 is not None and b.rel_l2 is not None:
        return a.rel_l2, b.rel_l2
    return a.max_abs, b.max_abs


def standing_of(r: float, ratio: TruthRatio) -> str:
    if r < 1 / ratio.same:
        return CLOSER
    if r <= ratio.same:
        return AS_CLOSE
    if r <= ratio.slightly:
        return SLIGHTLY_FURTHER
    return FURTHER


def words(standing: str, r: float) -> str:
    if standing == AS_CLOSE:
        return "as close to the truth" + ("" if r == 1 else f" (×{times(r)})")
    if math.isinf(r):
        return f"{standing} from the truth (the baseline matches it exactly)"
    return f"{standing} {'to' if standing == CLOSER else 'from'} the truth (×{times(r)})"


def times(r: float) -> str:
    """A ratio as people read it: ×3.1, ×0.62, ×12."""
    return f"{r:.0f}" if r >= 10 else f"{r:.2g}"


@dataclass(frozen=True)
class TruthSummary:
    """A run comparison's truth in one line: in how many cases the candidate is further from the truth."""

    counts: dict[str, int]  # standing -> cases, every standing present
    ratio: TruthRatio

    @property
    def measured(self) -> int:
        return sum(n for s, n in self.counts.items() if s != UNKNOWN)

    @property
    def further(self) -> int:
        return self.counts[FURTHER] + self.counts[SLIGHTLY_FURTHER]

    @property
    def words(self) -> str:
        total = sum(self.counts.values())
        if not total:
            return "no float64 truth to compare: no float32, float16 or bfloat16 case ran on both sides"
        if not self.measured:
            return f"no float64 truth: {MISSING}"
        parts = [f"{self.counts[s]} {s}" for s in (FURTHER, SLIGHTLY_FURTHER, AS_CLOSE, CLOSER) if self.counts[s]]
        line = (f"the candidate is further from the truth in {self.further} of {self.measured} cases "
                f"({', '.join(parts)})")
        if self.counts[UNKNOWN]:
            line += f"; {self.counts[UNKNOWN]} without a float64 truth on one side"
        return line

    def to_json(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "measured": self.measured, "further": self.further,
                "thresholds": self.ratio.to_json(), "words": self.words}


def summarize(truths: Sequence[TruthComparison | None], ratio: TruthRatio | None = None) -> TruthSummary:
    counts = dict.fromkeys(STANDINGS, 0)
    for truth in truths:
        if truth is not None:
            counts[truth.standing] += 1
    return TruthSummary(counts, ratio or default_ratio())


def movement(summary: TruthSummary) -> tuple[str, str]:
    """Which way a change moved a machine, from the comparison of its run after against its run before:
    (``towards``, ``away``, ``both``, ``unchanged`` or ``unknown``, the sentence)."""
    closer, further, measured = summary.counts[CLOSER], summary.further, summary.measured
    if not measured:
        return UNKNOWN, f"no float64 truth on both sides of this change: {MISSING}"
    if further and closer:
        return "both", (f"it moved the machine away from the float64 truth in {further} and towards it in "
                        f"{closer} of {measured} cases")
    if further:
        return "away", f"it moved the machine away from the float64 truth in {further} of {measured} cases"
    if closer:
        return "towards", f"it moved the machine towards the float64 truth in {closer} of {measured} cases"
    return "unchanged", f"it left the machine as close to the float64 truth in all {measured} cases"
