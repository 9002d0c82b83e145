"""The smallest tolerance that would have passed: evidence for setting a policy.

For a changed output, two numbers: the smallest ULP bound every element meets
(the maximum ULP distance), and the smallest ``rtol`` that passes together
with the policy's ``atol`` for the dtype (``|b - a| <= atol + rtol * |a|``
everywhere, ``torch.testing``'s rule). Element-wise when both outputs are kept
whole; from statistics otherwise, as a lower bound that any passing tolerance
must reach (a sampled element is an element; a moved maximum means some
element moved at least as far).

Memory: the arrays are walked in chunks of ``CHUNK`` elements, O(CHUNK) scratch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftboard.core.compare.policy import DEFAULT_TOLERANCES, Policy
from driftboard.core.compare.ulp import stored, ulp_distance
from driftboard.core.run import TensorStats, to_float64

CHUNK = 1 << 16


@dataclass(frozen=True)
class PassingTolerance:
    """The smallest bounds under which a case's outputs would have passed.

    ``ulps`` or ``rtol`` None: no bound of that kind passes (a NaN/Inf on one
    side only; for rtol, a baseline 0 that moved by more than ``atol``).
    ``exact`` False: lower bounds from statistics (outputs not kept whole).
    """

    ulps: int | None
    rtol: float | None
    atol: float
    exact: bool = True

    @property
    def policies(self) -> tuple[str, ...]:
        """The bounds as ``--policy`` takes them, rtol rounded up to two significant digits."""
        found = []
        if self.ulps is not None:
            found.append(f"ulp:{self.ulps}")
        if self.rtol is not None:
            found.append(f"rtol={round_up(self.rtol):g},atol={self.atol:g}")
        return tuple(found)

    @property
    def text(self) -> str:
        if not self.policies:
            return "no tolerance passes (NaN/Inf on one side only)"
        words = " or ".join(self.policies)
        return f"passes at {words}" if self.exact else f"needs at least {words} (from statistics)"

    def to_json(self) -> dict[str, Any]:
        return {"ulps": self.ulps, "rtol": self.rtol, "atol": self.atol, "exact": self.exact,
                "policies": list(self.policies), "text": self.text}

    def widened(self, other: PassingTolerance) -> PassingTolerance:
        """Bounds that pass both (several output tensors of one case)."""
        return PassingTolerance(_worse(self.ulps, other.ulps), _worse(self.rtol, other.rtol), self.atol,
                                self.exact and other.exact)


def _worse(a: Any, b: Any) -> Any:
    return None if a is None or b is None else max(a, b)


IDENTICAL_PASS = PassingTolerance(0, 0.0, 0.0)


def round_up(value: float, digits: int = 2) -> float:
    """``value`` rounded up to ``digits`` significant digits, so the rounded bound still passes."""
    if value <= 0 or not math.isfinite(value):
        return value
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    rounded = math.ceil(value * scale * (1 - 1e-12)) / scale
    return rounded if rounded >= value else math.ceil(value * scale) / scale


def policy_atol(policy: Policy, dtype: str) -> float:
    """The atol that goes with a smallest rtol: the policy's, or the default table's for bitwise and ULP policies."""
    if policy.kind == "close":
        return policy.atol
    return DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))[1]


def from_arrays(a: np.ndarray, b: np.ndarray, dtype: str, atol: float) -> PassingTolerance:
    """Element-wise smallest bounds of two stored arrays of one shape."""
    flat_a = np.ascontiguousarray(stored(a, dtype)).reshape(-1)
    flat_b = np.ascontiguousarray(stored(b, dtype)).reshape(-1)
    ulps: int | None = 0
    rtol: float | None = 0.0
    with np.errstate(all="ignore"):
        for start in range(0, flat_a.size, CHUNK):
            ca, cb = flat_a[start:start + CHUNK], flat_b[start:start + CHUNK]
            fa, fb = to_float64(ca, dtype), to_float64(cb, dtype)
            same_nonfinite = (np.isnan(fa) & np.isnan(fb)) | (np.isinf(fa) & (fa == fb))
            finite = np.isfinite(fa) & np.isfinite(fb)
            if not np.all(finite | same_nonfinite):
                return PassingTolerance(None, None, atol)
            distance = ulp_distance(ca, cb, dtype)
            if distance.size:
                ulps = max(ulps or 0, int(distance[finite].max(initial=0)))
            excess = np.where(finite, np.abs(fb - fa) - atol, 0.0)
            over = excess > 0
            if np.any(over):
                base = np.abs(fa[over])
                if np.any(base == 0):
                    rtol = None
                elif rtol is not None:
                    rtol = max(rtol, float(np.max(excess[over] / base)))
    return PassingTolerance(ulps, rtol, atol)


def from_stats(a: TensorStats, b: TensorStats, atol: float) -> PassingTolerance:
    """Lower bounds from two tensors' statistics: their samples, and how far their extremes moved."""
    if a.nonfinite != b.nonfinite:
        return PassingTolerance(None, None, atol, exact=False)
    ulps = 0
    rtol = 0.0
    pairs = [(x, y) for x, y in zip(a.sample, b.sample) if math.isfinite(x) and math.isfinite(y)]
    if pairs and a.dtype == b.dtype:
        ulps = sample_ulps(pairs, a.dtype)
    for x, y in pairs:
        excess = abs(y - x) - atol
        if excess > 0:
            if x == 0:
                return PassingTolerance(ulps, None, atol, exact=False)
            rtol = max(rtol, excess / abs(x))
    scale = max((abs(v) for v in (a.min, a.max) if v is not None), default=0.0)
    for x, y in ((a.min, b.min), (a.max, b.max)):
        if x is None or y is None:
            continue
        excess = abs(y - x) - atol
        if excess > 0:
            if scale == 0:
                return PassingTolerance(ulps, None, atol, exact=False)
            rtol = max(rtol, excess / scale)
    return PassingTolerance(ulps, rtol, atol, exact=False)


def sample_ulps(pairs: list[tuple[float, float]], dtype: str) -> int:
    """The largest ULP distance between sampled elements (exact values of ``dtype``, held as floats)."""
    if dtype not in ("float16", "float32", "float64", "bfloat16"):
        return int(max(abs(y - x) for x, y in pairs))
    xs = np.array([x for x, _ in pairs], dtype=np.float32 if dtype == "bfloat16" else dtype)
    ys = np.array([y for _, y in pairs], dtype=xs.dtype)
    if dtype == "bfloat16":  # stored form: the top 16 bits of the float32, exact for bfloat16 values
        xs, ys = (xs.view(np.uint32) >> 16).astype(np.uint16), (ys.view(np.uint32) >> 16).astype(np.uint16)
    return int(ulp_distance(xs, ys, dtype).max())


def lower_bound_abs(a: TensorStats, b: TensorStats) -> float | None:
    """A proven lower bound on the largest element-wise |b - a|, from statistics alone.

    If a maximum, minimum or mean moved by d, some element moved by at least d;
    ``|‖b‖ - ‖a‖| <= ‖b - a‖ <= sqrt(n) · max|b - a|``; a sampled element is an element.
    """
    found = [abs(y - x) for x, y in zip(a.sample, b.sample) if math.isfinite(x) and math.isfinite(y)]
    for x, y in ((a.min, b.min), (a.max, b.max), (a.mean, b.mean)):
        if x is not None and y is not None:
            found.append(abs(y - x))
    if a.l2 is not None and b.l2 is not None and a.size:
        found.append(abs(b.l2 - a.l2) / math.sqrt(a.size))
    return max(found) if found else None
