"""Compare two training traces step by step: where they part, where it matters, how fast it grows.

Steps are aligned by index (both runs train the same case on the same fixed
batches). Three findings, from the recorded per-step figures only (numpy, no
weights needed):

- the first step whose loss, gradient norm or parameter digest differs at all
  (bitwise): where the drift is born;
- the first step whose loss, gradient norm or parameter distance is beyond the
  policy's tolerance for the case's dtype: where it starts to matter;
- how fast it grows: a least-squares line through log2 |Δloss| (and log2
  |Δ parameter distance|) over the steps from the first divergence on, read as
  "doubles every N steps".

The verdict on the final parameters is the case's ordinary output verdict
(``runs.py``): a training case's output is its final flat parameter vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftboard.core.compare.policy import Policy, Tolerance
from driftboard.core.compare.ulp import ulp_distance
from driftboard.core.compare.verdict import Verdict
from driftboard.core.run import DTYPES, CaseResult, TrainingTrace

FIGURES = ("loss", "grad_norm", "param_distance")
_LABELS = {"loss": "loss", "grad_norm": "gradient norm", "param_distance": "parameter distance"}
MIN_FIT_POINTS = 3  # a growth rate needs at least this many nonzero differences after the divergence


@dataclass(frozen=True)
class Growth:
    """A fitted exponential: |Δ| ≈ 2 ** (intercept + per_step · step), over ``points`` steps."""

    per_step: float  # log2 growth per step: 1.0 doubles every step
    points: int
    first: int  # the fit's first and last step (1-based)
    last: int

    @property
    def doubling_steps(self) -> float | None:
        """Steps per doubling; None when the difference does not grow."""
        return 1.0 / self.per_step if self.per_step > 0 else None

    @property
    def text(self) -> str:
        if self.per_step > 0:
            return f"doubles every {_steps(1.0 / self.per_step)}"
        if self.per_step < 0:
            return f"halves every {_steps(-1.0 / self.per_step)}"
        return "stays level"

    def to_json(self) -> dict[str, Any]:
        return {"log2_per_step": self.per_step, "doubling_steps": self.doubling_steps, "points": self.points,
                "first_step": self.first, "last_step": self.last, "text": self.text}


def _steps(n: float) -> str:
    return f"{n:.3g} step" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class TrainingComparison:
    """Two training traces of one case, step by step (steps are 1-based, as people count them)."""

    steps: int  # steps both runs have
    baseline_steps: int
    candidate_steps: int
    tolerance: str  # the rule the figures were judged by
    first_bitwise_step: int | None  # None: identical at every compared step
    first_bitwise_figure: str | None  # loss, grad_norm or param_digest
    first_beyond_step: int | None  # None: every compared step within the tolerance
    first_beyond_figure: str | None
    baseline_loss: tuple[float, ...]
    candidate_loss: tuple[float, ...]
    loss_delta: tuple[float, ...]  # |Δloss| per compared step
    distance_delta: tuple[float, ...]  # |Δ parameter distance from the start| per compared step
    loss_growth: Growth | None = None
    distance_growth: Growth | None = None
    setup_differs: tuple[str, ...] = ()  # optimizer, loss function or batches recorded differently

    @property
    def identical(self) -> bool:
        return self.first_bitwise_step is None and self.baseline_steps == self.candidate_steps and not self.setup_differs

    @property
    def final_loss_delta(self) -> float | None:
        return self.loss_delta[-1] if self.loss_delta else None

    @property
    def largest_loss_delta(self) -> tuple[int, float] | None:
        """(step, |Δloss|) of the largest loss difference (NaN counts as largest); None without steps."""
        if not self.loss_delta:
            return None
        values = np.asarray(self.loss_delta)
        index = int(np.argmax(np.where(np.isnan(values), np.inf, values)))
        return index + 1, float(values[index])

    @property
    def text(self) -> str:
        """One line for people: where the traces part, where it matters, how fast it grows."""
        if self.setup_differs:
            return f"training set up differently ({', '.join(self.setup_differs)}): steps not comparable"
        if self.first_bitwise_step is None:
            same = f"all {self.steps} training steps bitwise identical"
            if self.baseline_steps != self.candidate_steps:
                same += f" (the runs trained {self.baseline_steps} and {self.candidate_steps} steps)"
            return same
        what = "parameters" if self.first_bitwise_figure == "param_digest" else _LABELS[self.first_bitwise_figure or "loss"]
        parts = [f"training differs from step {self.first_bitwise_step} ({what})"]
        if self.first_beyond_step is not None:
            parts.append(f"{_LABELS[self.first_beyond_figure or 'loss']} beyond {self.tolerance} from step "
                         f"{self.first_beyond_step}")
        else:
            parts.append(f"every step within {self.tolerance}")
        largest = self.largest_loss_delta
        if largest is not None and largest[1] > 0:
            final = self.final_loss_delta or 0.0
            parts.append(f"|Δloss| {final:.3g} at step {self.steps}" if final >= largest[1]
                         else f"|Δloss| up to {largest[1]:.3g} (step {largest[0]}), {final:.3g} at step {self.steps}")
        if self.loss_growth is not None:
            parts.append(f"|Δloss| {self.loss_growth.text}")
        elif self.distance_growth is not None:
            parts.append(f"|Δ parameter distance| {self.distance_growth.text}")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "baseline_steps": self.baseline_steps,
            "candidate_steps": self.candidate_steps,
            "tolerance": self.tolerance,
            "first_bitwise_step": self.first_bitwise_step,
            "first_bitwise_figure": self.first_bitwise_figure,
            "first_beyond_step": self.first_beyond_step,
            "first_beyond_figure": self.first_beyond_figure,
            "final_loss_delta": _json_float(self.final_loss_delta),
            "loss_growth": self.loss_growth.to_json() if self.loss_growth else None,
            "distance_growth": self.distance_growth.to_json() if self.distance_growth else None,
            "setup_differs": list(self.setup_differs),
            "baseline_loss": [_json_float(v) for v in self.baseline_loss],
            "candidate_loss": [_json_float(v) for v in self.candidate_loss],
            "loss_delta": [_json_float(v) for v in self.loss_delta],
            "distance_delta": [_json_float(v) for v in self.distance_delta],
            "text": self.text,
        }


def _json_float(value: float | None) -> float | str | None:
    """JSON has no NaN or infinity: those travel as the strings ``nan``, ``inf``, ``-inf``."""
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def compare_training(old: TrainingTrace, new: TrainingTrace, tolerance: Tolerance, dtype: str) -> TrainingComparison:
    """Step-aligned comparison of two traces of the same case under ``tolerance`` (the policy's for ``dtype``)."""
    n = min(old.steps, new.steps)
    setup = tuple(name for name, a, b in (("optimizer", old.optimizer, new.optimizer),
                                          ("loss function", old.loss_fn, new.loss_fn),
                                          ("batches", old.batches, new.batches)) if a != b)
    a = {f: np.asarray(getattr(old, f)[:n], dtype=np.float64) for f in FIGURES}
    b = {f: np.asarray(getattr(new, f)[:n], dtype=np.float64) for f in FIGURES}
    first_bitwise, first_bitwise_figure = _first_bitwise(old, new, a, b, n)
    first_beyond, first_beyond_figure = _first_beyond(a, b, tolerance, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        loss_delta = np.abs(a["loss"] - b["loss"])
        distance_delta = np.abs(a["param_distance"] - b["param_distance"])
    start = first_bitwise or 1
    return TrainingComparison(
        steps=n, baseline_steps=old.steps, candidate_steps=new.steps, tolerance=str(tolerance),
        first_bitwise_step=first_bitwise, first_bitwise_figure=first_bitwise_figure,
        first_beyond_step=first_beyond, first_beyond_figure=first_beyond_figure,
        baseline_loss=old.loss, candidate_loss=new.loss,
        loss_delta=tuple(float(v) for v in loss_delta), distance_delta=tuple(float(v) for v in distance_delta),
        loss_growth=fit_growth(loss_delta, start) if first_bitwise else None,
        distance_growth=fit_growth(distance_delta, start) if first_bitwise else None,
        setup_differs=setup,
    )


def _same_bits(x: float, y: float) -> bool:
    return np.float64(x).tobytes() == np.float64(y).tobytes() or (math.isnan(x) and math.isnan(y))


def _first_bitwise(old: TrainingTrace, new: TrainingTrace, a: dict[str, np.ndarray], b: dict[str, np.ndarray],
                   n: int) -> tuple[int | None, str | None]:
    """The first step (1-based) where any recorded figure differs in its bits, and which one (loss first)."""
    for i in range(n):
        for figure in ("loss", "grad_norm"):
            if not _same_bits(float(a[figure][i]), float(b[figure][i])):
                return i + 1, figure
        if old.param_digests[i] != new.param_digests[i]:
            return i + 1, "param_digest"
    return None, None


def beyond(a: np.ndarray, b: np.ndarray, tolerance: Tolerance, dtype: str) -> np.ndarray:
    """Per element: is the pair beyond ``tolerance``? NaN against NaN is not; NaN against a number is."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    with np.errstate(invalid="ignore", over="ignore"):
        if tolerance.kind == "bitwise":
            out = a.view(np.uint64) != b.view(np.uint64)
        elif tolerance.kind == "ulp":
            out = _ulps(a, b, dtype) > tolerance.ulps
        else:
            out = ~(np.abs(a - b) <= tolerance.atol + tolerance.rtol * np.abs(a)) & ~(a == b)
    return np.where(nan_a & nan_b, False, np.where(nan_a | nan_b, True, out))


def _ulps(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """ULP distance in the case's dtype: the figures are exact widenings of values of that dtype (float32 losses)."""
    if dtype in ("float32", "float64", "float16"):
        storage = DTYPES[dtype]
        return ulp_distance(a.astype(storage), b.astype(storage), dtype)
    return ulp_distance(a, b, "float64")


def _first_beyond(a: dict[str, np.ndarray], b: dict[str, np.ndarray], tolerance: Tolerance,
                  dtype: str) -> tuple[int | None, str | None]:
    found: tuple[int | None, str | None] = (None, None)
    for figure in FIGURES:
        hits = np.flatnonzero(beyond(a[figure], b[figure], tolerance, dtype))
        if hits.size and (found[0] is None or hits[0] + 1 < found[0]):
            found = (int(hits[0]) + 1, figure)
    return found


def fit_growth(delta: np.ndarray, start: int) -> Growth | None:
    """Least squares of log2 |Δ| over the steps from ``start`` (1-based) on where |Δ| is finite and nonzero."""
    steps = np.arange(1, len(delta) + 1, dtype=np.float64)
    keep = (steps >= start) & np.isfinite(delta) & (delta > 0)
    if int(keep.sum()) < MIN_FIT_POINTS:
        return None
    x, y = steps[keep], np.log2(delta[keep])
    x_mean = x.mean()
    spread = float(((x - x_mean) ** 2).sum())
    if spread == 0:
        return None
    slope = float(((x - x_mean) * (y - y.mean())).sum() / spread)
    return Growth(per_step=slope, points=int(keep.sum()), first=int(x[0]), last=int(x[-1]))


def judge_training(old: CaseResult, new: CaseResult, policy: Policy, verdict: Verdict) -> TrainingComparison | None:
    """The step comparison of a matched training case; None when either side has no trace or its steps mean nothing.

    Steps are not compared when the final parameters could not be (an error, other weights or batches, another
    shape): the traces would then differ for a reason the trace cannot show.
    """
    if old.training is None or new.training is None or not (verdict.changed or verdict is Verdict.IDENTICAL):
        return None
    return compare_training(old.training, new.training, policy.for_dtype(old.dtype), old.dtype)
