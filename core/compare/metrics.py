"""Element-wise comparison of two stored arrays: ULP, absolute and relative error.

``compare_arrays`` walks the flattened arrays in cache-sized chunks so every
temporary stays in L2: a chunk of finite values takes a fast path (float64
copies, in-place ufuncs, integer views for ULPs); a chunk holding NaN/Inf, or
values of opposite signs, takes the exact general path. Both feed one
accumulator, so the result does not depend on where chunk borders fall.

Memory: besides the two arrays themselves, every function here needs
O(``CHUNK``) scratch whatever the array size (a 64 MiB output is compared with
a few MiB more, not with float64 copies of it): the ULP statistics come from a
bounded histogram, the per-timestep maxima and the worst elements are folded
chunk by chunk, and no figure keeps a value per element.

Conventions (as ``torch.testing``, with the baseline as "expected"):

- values are compared in float64; ``abs = |candidate - baseline|``,
  ``rel = abs / |baseline|`` (0 where both are 0, inf where only the baseline is);
- a position is *comparable* when both values are finite, or both are the same
  non-finite value (NaN and NaN, +inf and +inf): those count as equal. Any other
  pairing involving NaN/Inf is a *non-finite mismatch*: counted apart, always a
  mismatch under every policy, and left out of the ULP/abs/rel statistics;
- ULP statistics (max, mean, p99) are over comparable positions, all exact. The
  mean is an integer sum divided once. p99 is the smallest distance that at
  least 99 % of them do not exceed (inverted CDF): distances up to 1024 are
  counted in a histogram; larger ones are kept while there are at most
  ``LARGE_KEEP`` of them, and beyond that counted by bit length, the exact
  value then found by a few more passes over the arrays that narrow the bucket
  holding it (radix selection), each pass O(``CHUNK``) in memory;
- ``timestep_max_abs`` has one entry per index along the time axis, up to
  ``TIMESTEP_CAP`` entries; a longer axis is folded into groups of
  ``timestep_group`` consecutive timesteps, each entry the group's maximum
  (the JSON then says ``timestep_group``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftboard.core.compare.policy import DEFAULT_POLICY, Policy, Tolerance
from driftboard.core.compare.ulp import FLOAT_BITS, FloatBits, bit_length, stored, ulp_distance
from driftboard.core.run import to_float64

CHUNK = 1 << 16  # elements per chunk: a float64 scratch buffer is 512 KiB, inside L2
_BINS = 1024  # ULP distances up to this are counted in a histogram; larger ones are kept
_FEW = 6  # up to this many distinct non-zero distances, count each with one pass
TIMESTEP_CAP = 4096  # entries of timestep_max_abs at most: a 16 Mi-step axis would be 0.5 GB of floats
LARGE_KEEP = 1 << 16  # distances above _BINS kept exactly (512 KiB); past it p99 is found by selection passes
_REFINE = 1 << 12  # sub-buckets per selection pass: each pass narrows the p99 bucket 4096-fold

Chunks = Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]  # a fresh pass over (baseline, candidate) chunks


@dataclass(frozen=True)
class Metrics:
    """How two arrays of one case differ; every figure a report or chart needs."""

    shape: tuple[int, ...]
    dtype: str
    tolerance: Tolerance
    n: int  # elements in each array
    mismatched: int  # elements outside the tolerance, non-finite mismatches included
    changed: int  # elements whose bits differ at all
    ulp_max: int
    ulp_mean: float
    ulp_p99: int
    max_abs: float
    max_abs_index: tuple[int, ...] | None  # None when nothing differs
    max_rel: float
    max_rel_index: tuple[int, ...] | None
    nonfinite_mismatch: int  # positions where NaN/Inf appear on one side or differ
    nonfinite_index: tuple[int, ...] | None  # the first of them
    time_axis: int | None = None
    timestep_max_abs: tuple[float, ...] | None = None  # per index along time_axis (per group: timestep_group)
    timestep_group: int = 1  # consecutive timesteps per entry: above TIMESTEP_CAP steps they are folded

    @property
    def mismatched_fraction(self) -> float:
        return self.mismatched / self.n if self.n else 0.0

    @classmethod
    def identical(cls, shape: tuple[int, ...], dtype: str, tolerance: Tolerance, time_axis: int | None = None) -> Metrics:
        """Figures of two bitwise-equal arrays, known without decoding either."""
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        group = timestep_group(shape[time_axis]) if time_axis is not None and shape else 1
        steps = (0.0,) * -(-shape[time_axis] // group) if time_axis is not None and shape else None
        return cls(shape, dtype, tolerance, n, 0, 0, 0, 0.0, 0, 0.0, None, 0.0, None, 0, None, time_axis, steps,
                   group)

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "tolerance": self.tolerance.to_json(),
            "n": self.n,
            "mismatched": self.mismatched,
            "mismatched_fraction": self.mismatched_fraction,
            "changed": self.changed,
            "ulp": {"max": self.ulp_max, "mean": self.ulp_mean, "p99": self.ulp_p99},
            "max_abs": json_float(self.max_abs),
            "max_abs_index": _index_json(self.max_abs_index),
            "max_rel": json_float(self.max_rel),
            "max_rel_index": _index_json(self.max_rel_index),
            "nonfinite_mismatch": self.nonfinite_mismatch,
            "nonfinite_index": _index_json(self.nonfinite_index),
            "time_axis": self.time_axis,
            "timestep_max_abs": None if self.timestep_max_abs is None else [json_float(v) for v in self.timestep_max_abs],
            **({"timestep_group": self.timestep_group} if self.timestep_group > 1 else {}),
        }


def timestep_group(steps: int) -> int:
    """Consecutive timesteps folded into one ``timestep_max_abs`` entry: 1 up to ``TIMESTEP_CAP`` steps."""
    return max(1, -(-steps // TIMESTEP_CAP))


def json_float(value: float | None) -> float | None:
    """JSON has no NaN or infinity: those become None."""
    return value if value is not None and math.isfinite(value) else None


def _index_json(index: tuple[int, ...] | None) -> list[int] | None:
    return None if index is None else list(index)


def compare_arrays(
    a: np.ndarray,
    b: np.ndarray,
    dtype: str,
    policy: Policy | None = None,
    time_axis: int | None = None,
) -> Metrics:
    """Compare baseline ``a`` with candidate ``b``, raw stored arrays of ``dtype``.

    bfloat16 arrays are uint16 bits, as ``ArraySource.load`` returns them. The
    shapes must be equal (a shape mismatch is a verdict, decided before this).
    """
    a = stored(a, dtype)
    b = stored(b, dtype)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    tolerance = (policy or DEFAULT_POLICY).for_dtype(dtype)
    acc = _Accumulator(dtype, tolerance)
    flat_a = np.ascontiguousarray(a).reshape(-1)
    flat_b = np.ascontiguousarray(b).reshape(-1)
    with np.errstate(all="ignore"):
        for start, chunk_a, chunk_b in _chunks(flat_a, flat_b):
            acc.add(chunk_a, chunk_b, start)
        steps = _timestep_max_abs(a, b, dtype, time_axis) if time_axis is not None else None
        return acc.finish(a.shape, time_axis, steps, lambda: ((x, y) for _, x, y in _chunks(flat_a, flat_b)))


def _chunks(flat_a: np.ndarray, flat_b: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(start, baseline chunk, candidate chunk) views of ``CHUNK`` elements, in order."""
    size = CHUNK
    for start in range(0, flat_a.size, size):
        yield start, flat_a[start : start + size], flat_b[start : start + size]


class _Accumulator:
    """Running figures over chunks, with scratch buffers reused by every chunk."""

    def __init__(self, dtype: str, tolerance: Tolerance) -> None:
        self.dtype = dtype
        self.tolerance = tolerance
        self.spec = FLOAT_BITS.get(dtype)
        self.hist = np.zeros(_BINS + 2, dtype=np.int64)  # [_BINS + 1] counts distances above _BINS
        self.large: list[np.ndarray] | None = []  # the distances above _BINS (uint64); None past LARGE_KEEP
        self.large_kept = 0
        self.large_bits = np.zeros(65, dtype=np.int64)  # distances above _BINS per bit length
        self.large_sum = 0  # their exact sum (a Python int)
        self.over_ulps = 0  # distances above an ``ulp:N`` tolerance's N when N > _BINS
        self.ulp_max = 0
        self.changed = 0
        self.close_mismatched = 0
        self.nonfinite = 0
        self.nonfinite_first: int | None = None
        self.max_abs, self.max_abs_at = 0.0, -1
        self.max_rel, self.max_rel_at = 0.0, -1
        if self.spec is not None:
            self.f_a = np.empty(CHUNK)
            self.f_b = np.empty(CHUNK)
            self.f_r = np.empty(CHUNK)
            self.i_d = np.empty(CHUNK, dtype=self.spec.signed)
            self.mask = np.empty(CHUNK, dtype=bool)
            self.u32 = np.empty(CHUNK, dtype=np.uint32) if dtype == "bfloat16" else None

    # ---------------------------------------------------------------- chunks

    def add(self, a: np.ndarray, b: np.ndarray, start: int) -> None:
        if self.spec is None or not self._add_fast(a, b, start):
            self._add_general(a, b, start)

    def _widen(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.u32 is not None:  # bfloat16: its bits are the high half of a float32
            wide = self.u32[: raw.size]
            np.copyto(wide, raw)
            np.left_shift(wide, 16, out=wide)
            raw = wide.view(np.float32)
        np.copyto(out, raw)
        return out

    def _add_fast(self, a: np.ndarray, b: np.ndarray, start: int) -> bool:
        """All-finite chunk: in-place float64 and integer ufuncs. False: use the general path."""
        spec = self.spec
        assert spec is not None
        m = a.size
        if not m:
            return True
        fa = self._widen(a, self.f_a[:m])
        diff = self._widen(b, self.f_b[:m])
        np.subtract(diff, fa, out=diff)
        np.abs(diff, out=diff)
        i = int(diff.argmax())
        if not math.isfinite(diff[i]):  # NaN/Inf somewhere (or float64 overflow)
            return False
        self._add_ulps(*self._chunk_ulps(a.view(spec.signed), b.view(spec.signed), spec, m))
        if diff[i] == 0:
            return True
        self._take_abs(float(diff[i]), start + i)
        absa = np.abs(fa, out=fa)
        rel = np.divide(diff, absa, out=self.f_r[:m])
        j = int(rel.argmax())
        if math.isnan(rel[j]):  # 0/0 where both are exactly 0: fmax turns NaN into 0, branch-free
            np.fmax(rel, 0.0, out=rel)
            j = int(rel.argmax())
        self._take_rel(float(rel[j]), start + j)
        tol = self.tolerance
        if tol.kind == "close" and diff[i] > tol.atol and rel[j] > tol.rtol:
            allowed = np.multiply(absa, tol.rtol, out=absa)
            np.add(allowed, tol.atol, out=allowed)
            self.close_mismatched += int(np.count_nonzero(np.greater(diff, allowed, out=self.mask[:m])))
        return True

    def _chunk_ulps(self, ia: np.ndarray, ib: np.ndarray, spec: FloatBits, m: int) -> tuple[np.ndarray, int, int]:
        """ULP distances of finite values: (distances, count, signed-zero pairs).

        Same-sign values are ordered like their bits, so the distance is the
        difference of the bits, which fits the signed width. Opposite signs
        (rare) are patched to the sum of magnitudes, in uint64.
        """
        d = self.i_d[:m]
        np.bitwise_xor(ia, ib, out=d)
        opposite = d < 0 if d.min() < 0 else None
        np.subtract(ib, ia, out=d)
        np.abs(d, out=d)
        if opposite is None:
            return d, m, 0
        # Whole-chunk ops with a where= mask: boolean indexing is several times slower.
        magnitude = spec.signed.type(spec.magnitude)
        wide = d.astype(np.uint64)
        across = (ia & magnitude).astype(np.uint64)
        across += (ib & magnitude).astype(np.uint64)
        np.copyto(wide, across, where=opposite)
        return wide, m, int(np.count_nonzero(opposite & (across == 0)))

    def _add_general(self, a: np.ndarray, b: np.ndarray, start: int) -> None:
        """Exact path for any chunk: NaN, Inf, signed zeros, opposite signs, integers."""
        fa = to_float64(a, self.dtype)
        fb = to_float64(b, self.dtype)
        d = ulp_distance(a, b, self.dtype)
        if self.spec is not None:
            self.changed += int(np.count_nonzero(a.view(self.spec.signed) != b.view(self.spec.signed)))
        else:
            self.changed += int(np.count_nonzero(a != b))
        finite = np.isfinite(fa) & np.isfinite(fb)
        same = finite | (np.isnan(fa) & np.isnan(fb)) | (fa == fb)
        mismatch = ~same
        bad = int(np.count_nonzero(mismatch))
        if bad:
            self.nonfinite += bad
            if self.nonfinite_first is None:
                self.nonfinite_first = start + int(mismatch.argmax())
            d = d[same]
        self._add_ulps(d, d.size, signed_zeros=None)
        diff = np.zeros(a.size)
        np.subtract(fb, fa, out=diff, where=finite)
        np.abs(diff, out=diff)
        if not diff.size or not diff.any():
            return
        i = int(diff.argmax())
        self._take_abs(float(diff[i]), start + i)
        absa = np.abs(fa)
        rel = np.zeros(a.size)
        np.divide(diff, absa, out=rel, where=diff != 0)
        j = int(rel.argmax())
        self._take_rel(float(rel[j]), start + j)
        tol = self.tolerance
        if tol.kind == "close":
            self.close_mismatched += int(np.count_nonzero(diff > tol.atol + tol.rtol * absa))

    def _add_ulps(self, d: np.ndarray, m: int, signed_zeros: int | None = 0) -> None:
        """Histogram non-negative ULP distances ``d`` (m of them).

        ``signed_zeros``: pairs at distance 0 whose bits differ (-0 vs +0), for
        ``changed``; None when the caller counts ``changed`` itself.
        """
        top = int(d.max()) if m else 0
        if signed_zeros is not None:
            self.changed += signed_zeros
        if top == 0:
            self.hist[0] += m
            return
        self.ulp_max = max(self.ulp_max, top)
        if top <= _FEW and d.dtype != np.uint64:
            # Drift is mostly a few ULPs: a handful of compare-and-count passes beat
            # bincount, whose increments of the same few bins serialise.
            mask = self.mask[:m]
            counts = np.zeros(top + 1, dtype=np.int64)
            for v in range(1, top + 1):
                counts[v] = np.count_nonzero(np.equal(d, v, out=mask))
            counts[0] = m - counts[1:].sum()
        elif top <= _BINS:
            counts = np.bincount(d if d.dtype != np.uint64 else d.astype(np.intp), minlength=top + 1)
        else:  # large distances are counted apart (and kept while few) for an exact p99
            above = d > _BINS
            self._add_large(d[above].astype(np.uint64, copy=False))
            small = d[~above]
            counts = np.bincount(small.astype(np.intp, copy=False), minlength=1)
        self.hist[: counts.size] += counts
        if signed_zeros is not None:
            self.changed += m - int(counts[0])

    def _add_large(self, large: np.ndarray) -> None:
        """Distances above _BINS: counted, summed exactly, bucketed by bit length, kept while few."""
        self.hist[_BINS + 1] += large.size
        # Two 32-bit halves: each sum stays far below 2**64 for any chunk, so the total is exact.
        self.large_sum += (int((large >> np.uint64(32)).sum()) << 32) + int((large & np.uint64(0xFFFFFFFF)).sum())
        self.large_bits += np.bincount(bit_length(large), minlength=65)
        tol = self.tolerance
        if tol.kind == "ulp" and tol.ulps > _BINS:
            self.over_ulps += int(np.count_nonzero(large > np.uint64(tol.ulps)))
        if self.large is not None:
            self.large_kept += large.size
            self.large.append(large)
            if self.large_kept > LARGE_KEEP:
                self.large = None  # too many to keep: p99 is selected with more passes (``_select_large``)

    def _take_abs(self, value: float, at: int) -> None:
        if value > self.max_abs:
            self.max_abs, self.max_abs_at = value, at

    def _take_rel(self, value: float, at: int) -> None:
        if value > self.max_rel:
            self.max_rel, self.max_rel_at = value, at

    # ---------------------------------------------------------------- result

    def finish(self, shape: tuple[int, ...], time_axis: int | None, steps: tuple[float, ...] | None,
               chunks: Chunks) -> Metrics:
        """The figures; ``chunks`` gives another pass over the arrays, needed only to select a p99 among
        more than ``LARGE_KEEP`` large distances."""
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        hist = self.hist
        comparable = int(hist.sum())
        small_sum = int(np.dot(hist[: _BINS + 1], np.arange(_BINS + 1, dtype=np.int64)))
        cumulative = np.cumsum(hist[: _BINS + 1])
        return Metrics(
            shape=tuple(int(s) for s in shape),
            dtype=self.dtype,
            tolerance=self.tolerance,
            n=n,
            mismatched=self._mismatched(comparable, cumulative),
            changed=self.changed,
            ulp_max=self.ulp_max,
            ulp_mean=(small_sum + self.large_sum) / comparable if comparable else 0.0,
            ulp_p99=self._p99(comparable, cumulative, chunks),
            max_abs=self.max_abs,
            max_abs_index=_unravel(self.max_abs_at, shape),
            max_rel=self.max_rel,
            max_rel_index=_unravel(self.max_rel_at, shape),
            nonfinite_mismatch=self.nonfinite,
            nonfinite_index=_unravel(self.nonfinite_first, shape),
            time_axis=time_axis,
            timestep_max_abs=steps,
            timestep_group=timestep_group(shape[time_axis]) if time_axis is not None and shape else 1,
        )

    def _mismatched(self, comparable: int, cumulative: np.ndarray) -> int:
        tol = self.tolerance
        if tol.kind == "bitwise":
            return self.changed
        if tol.kind == "close":
            return self.close_mismatched + self.nonfinite
        if tol.ulps > _BINS:  # every distance beyond it is one of the large ones, counted as they came
            return self.over_ulps + self.nonfinite
        return comparable - int(cumulative[tol.ulps]) + self.nonfinite

    def _p99(self, count: int, cumulative: np.ndarray, chunks: Chunks) -> int:
        if not count:
            return 0
        rank = (99 * count + 99) // 100  # ceil(0.99 * count), in integers
        at = int(np.searchsorted(cumulative, rank))
        if at <= _BINS:
            return at
        k = rank - int(cumulative[-1]) - 1  # 0-based rank among the large distances
        if self.large is not None:
            large = np.concatenate(self.large) if len(self.large) > 1 else self.large[0]
            large.partition(k)  # in place: ``large`` is the accumulator's own array
            return int(large[k])
        return self._select_large(k, chunks)

    def _select_large(self, k: int, chunks: Chunks) -> int:
        """The k-th smallest distance above _BINS (0-based), exactly, in O(CHUNK) memory: start from its
        bit-length bucket, then narrow the range 4096-fold per pass until few enough values remain to keep."""
        below = np.cumsum(self.large_bits)
        bits = int(np.searchsorted(below, k + 1))
        k -= int(below[bits - 1])
        lo, hi, count = max(_BINS + 1, 1 << (bits - 1)), (1 << bits) - 1, int(self.large_bits[bits])
        while lo < hi:
            if count <= LARGE_KEEP:
                inside = np.concatenate([d[(d >= np.uint64(lo)) & (d <= np.uint64(hi))]
                                         for d in self._large_distances(chunks)])
                inside.partition(k)
                return int(inside[k])
            shift = max(0, (hi - lo).bit_length() - _REFINE.bit_length() + 1)
            counts = np.zeros(((hi - lo) >> shift) + 1, dtype=np.int64)
            for d in self._large_distances(chunks):
                d = d[(d >= np.uint64(lo)) & (d <= np.uint64(hi))]
                slots = ((d - np.uint64(lo)) >> np.uint64(shift)).astype(np.intp)
                counts += np.bincount(slots, minlength=counts.size)
            below = np.cumsum(counts)
            slot = int(np.searchsorted(below, k + 1))
            k -= int(below[slot - 1]) if slot else 0
            count = int(counts[slot])
            lo, hi = lo + (slot << shift), min(hi, lo + ((slot + 1) << shift) - 1)
        return lo

    def _large_distances(self, chunks: Chunks) -> Iterator[np.ndarray]:
        """Per chunk, the comparable distances above _BINS (as the main pass counted them), as uint64."""
        for a, b in chunks():
            d = ulp_distance(a, b, self.dtype)
            if self.nonfinite:  # leave out the non-finite mismatches, as the main pass did
                fa, fb = to_float64(a, self.dtype), to_float64(b, self.dtype)
                d = d[(np.isfinite(fa) & np.isfinite(fb)) | (np.isnan(fa) & np.isnan(fb)) | (fa == fb)]
            yield d[d > np.uint64(_BINS)]


def _unravel(flat: int | None, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if flat is None or flat < 0:
        return None
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _timestep_max_abs(a: np.ndarray, b: np.ndarray, dtype: str, axis: int) -> tuple[float, ...]:
    """Largest absolute error at each index along ``axis`` (comparable positions only), or at each group
    of ``timestep_group`` consecutive indices when the axis is longer than ``TIMESTEP_CAP``.

    The arrays are viewed as (outer, steps, inner) and walked in slabs of about
    ``CHUNK`` elements, so only one slab is ever widened to float64.
    """
    shape = a.shape
    steps = shape[axis]
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1 :])
    group = timestep_group(steps)
    out = np.zeros(-(-steps // group))
    if not (steps and outer and inner):
        return tuple(float(v) for v in out)
    a3 = np.ascontiguousarray(a).reshape(outer, steps, inner)
    b3 = np.ascontiguousarray(b).reshape(outer, steps, inner)
    size = CHUNK
    if steps * inner <= size:
        ob, tb, cb = size // (steps * inner), steps, inner
    elif inner <= size:
        ob, tb, cb = 1, size // inner, inner
    else:
        ob, tb, cb = 1, 1, size
    for o in range(0, outer, ob):
        for t in range(0, steps, tb):
            for c in range(0, inner, cb):
                fa = to_float64(a3[o : o + ob, t : t + tb, c : c + cb], dtype)
                fb = to_float64(b3[o : o + ob, t : t + tb, c : c + cb], dtype)
                diff = np.zeros(fa.shape)
                np.subtract(fb, fa, out=diff, where=np.isfinite(fa) & np.isfinite(fb))
                np.abs(diff, out=diff)
                per_step = diff.max(axis=(0, 2))
                if group == 1:
                    np.maximum(out[t : t + tb], per_step, out=out[t : t + tb])
                else:
                    np.maximum.at(out, np.arange(t, t + per_step.size) // group, per_step)
    return tuple(float(v) for v in out)


@dataclass(frozen=True)
class WorstElement:
    """One element of the worst-elements table of a case report."""

    index: tuple[int, ...]
    baseline: float
    candidate: float
    abs: float
    rel: float
    ulp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "index": list(self.index),
            "baseline": json_float(self.baseline),
            "candidate": json_float(self.candidate),
            "abs": json_float(self.abs),
            "rel": json_float(self.rel),
            "ulp": self.ulp,
        }


def worst_elements(a: np.ndarray, b: np.ndarray, dtype: str, k: int = 10) -> tuple[WorstElement, ...]:
    """The ``k`` elements furthest apart in ULPs (non-finite mismatches first), worst first; ties by index.

    Chunk by chunk, keeping only the best ``k`` so far: memory is O(CHUNK + k).
    """
    a = stored(a, dtype)
    b = stored(b, dtype)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    flat_a = np.ascontiguousarray(a).reshape(-1)
    flat_b = np.ascontiguousarray(b).reshape(-1)
    best_d = np.zeros(0, dtype=np.uint64)
    best_i = np.zeros(0, dtype=np.int64)
    if k <= 0:
        return ()
    for start, chunk_a, chunk_b in _chunks(flat_a, flat_b):
        d = ulp_distance(chunk_a, chunk_b, dtype)
        at = np.flatnonzero(d)
        if not at.size:
            continue
        values = d[at]
        if at.size > k:  # only the chunk's k largest (and their ties) can enter the top k
            keep = values >= np.partition(values, at.size - k)[at.size - k]
            at, values = at[keep], values[keep]
        best_d = np.concatenate([best_d, values])
        best_i = np.concatenate([best_i, at + start])
        order = np.lexsort((best_i, ~best_d))[:k]  # ~d: descending distance, exact for all of uint64
        best_d, best_i = best_d[order], best_i[order]
    fa = to_float64(flat_a[best_i], dtype)
    fb = to_float64(flat_b[best_i], dtype)
    rows = []
    with np.errstate(all="ignore"):
        for x, y, flat, ulps in zip(fa.tolist(), fb.tolist(), best_i.tolist(), best_d.tolist()):
            diff = abs(y - x)
            rel = 0.0 if diff == 0 else (diff / abs(x) if x != 0 else math.inf)
            index = tuple(int(i) for i in np.unravel_index(flat, a.shape))
            rows.append(WorstElement(index, x, y, diff, rel, int(ulps)))
    return tuple(rows)


@dataclass(frozen=True)
class LayerDivergence:
    """One intermediate output of a layered case, baseline against candidate."""

    name: str
    identical: bool
    max_abs: float | None = None  # None when not decoded (digest decided) or not comparable
    ulp_max: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "identical": self.identical,
            "max_abs": json_float(self.max_abs),
            "ulp_max": self.ulp_max,
            "note": self.note,
        }
