"""What the element charts of a case draw, computed a chunk at a time: bounded whatever the arrays' size.

A chart of a 64 MiB output must not hold float64 copies of it. Each summary
here walks the two arrays as aligned flat chunks of ``CHUNK`` elements (views
of arrays in memory, or inflated from the database one chunk at a time by a
``ChunkSource``) and keeps only what is drawn:

- ``UlpBins``: elements per power-of-two ULP bin (at most 66 numbers);
- ``ScatterSample``: at most ``POINT_CAP`` (baseline, candidate) pairs, the
  largest differences then an even stride over the other finite pairs (two
  passes: the stride needs the count of finite pairs);
- ``HeatmapGrid``: the 2-D view (timesteps × the rest, or leading dims × the
  last) reduced to at most ``HEATMAP_MAX`` cells, each the difference of
  largest magnitude in its block (the first in the block, row by row, on a
  tie), so a single outlier stays visible.

``element_charts_from`` computes all three in two passes; ``ElementRequest``
is what a page asks for, paid from its ``DecodeBudget``. Pure numpy: no
Streamlit, no Plotly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from driftboard.core.compare.ulp import NAN_DISTANCE, bit_length, stored, ulp_distance
from driftboard.core.run import ArrayRef, ArraySource, to_float64
from driftboard.dashboard.decode_budget import DecodeBudget

CHUNK = 1 << 16  # elements per chunk: two float64 copies of one are 1 MiB
POINT_CAP = 20_000  # element points a scatter draws at most, whatever it is asked for
HEATMAP_MAX = (240, 480)  # rows, columns of a heatmap before blocks are reduced to their largest |difference|
ELEMENT_CHART_NAMES = "the ULP histogram, scatter and heatmap"

Chunk = tuple[int, np.ndarray, np.ndarray]  # (flat start, baseline chunk, candidate chunk), stored dtypes
PairChunks = Callable[[], Iterator[Chunk]]  # a fresh pass over two arrays of one shape, in C order


def values(array: np.ndarray, dtype: str | None) -> np.ndarray:
    """float64 values of a stored array (``dtype`` given: bfloat16 bits decoded) or of plain numbers."""
    array = np.asarray(array)
    return to_float64(array, dtype) if dtype is not None else array.astype(np.float64)


def pair_chunks(baseline: np.ndarray, candidate: np.ndarray, dtype: str | None) -> PairChunks:
    """Passes over two arrays in memory, as views of ``CHUNK`` elements."""
    a, b = (np.ascontiguousarray(x if dtype is None else stored(x, dtype)).reshape(-1) for x in (baseline, candidate))
    if a.size != b.size:
        raise ValueError(f"shapes differ: {np.shape(baseline)} vs {np.shape(candidate)}")

    def chunks() -> Iterator[Chunk]:
        size = CHUNK
        for start in range(0, a.size, size):
            yield start, a[start : start + size], b[start : start + size]

    return chunks


@runtime_checkable
class ChunkSource(Protocol):
    """An ``ArraySource`` that can also give an array as consecutive flat chunks (``db.array_stream``)."""

    def load(self, ref: ArrayRef) -> np.ndarray: ...

    def chunks(self, ref: ArrayRef, elements: int) -> Iterator[np.ndarray]: ...


def source_chunks(baseline: ChunkSource, baseline_ref: ArrayRef, candidate: ChunkSource,
                  candidate_ref: ArrayRef) -> PairChunks:
    """Passes over two stored arrays, each inflated one chunk at a time (their digests checked at the end)."""

    def chunks() -> Iterator[Chunk]:
        start = 0
        for a, b in zip(baseline.chunks(baseline_ref, CHUNK), candidate.chunks(candidate_ref, CHUNK), strict=True):
            yield start, a, b
            start += a.size

    return chunks


# ---------------------------------------------------------------- ULP histogram


@dataclass(frozen=True)
class UlpBins:
    """ULP distances counted per power-of-two bin: all the histogram draws."""

    counts: tuple[int, ...]  # [0]: distance 0; [k]: distances of bit length k (2**(k-1) to 2**k - 1)
    nan: int  # NaN against a number (core.compare's NaN marker)
    n: int  # elements
    top: int | None  # largest distance that is not the NaN marker; None when there is none


def _nan_marker(d: np.ndarray, dtype: str | None) -> np.ndarray:
    if dtype is None:  # unknown format: any float format's marker (no real distance equals one)
        return np.isin(d, np.array(sorted(NAN_DISTANCE.values()), dtype=np.uint64))
    if dtype in NAN_DISTANCE:
        return d >= np.uint64(NAN_DISTANCE[dtype])
    return np.zeros(d.shape, dtype=bool)  # integers and bool: |a - b|, no NaN


class _BinCounter:
    """Running power-of-two bin counts over chunks of distances."""

    def __init__(self, dtype: str | None) -> None:
        self.dtype = dtype
        self.counts = np.zeros(65, dtype=np.int64)
        self.nan = self.n = 0
        self.top: int | None = None

    def add(self, d: np.ndarray) -> None:
        d = d.reshape(-1)
        if d.dtype.kind == "f":  # float input may use NaN for the marker
            nan = ~np.isfinite(d)
            d = np.where(nan, 0, d).astype(np.uint64)
        else:
            d = d.astype(np.uint64, copy=False)
            nan = _nan_marker(d, self.dtype)
        self.n += d.size
        n_nan = int(np.count_nonzero(nan))
        self.nan += n_nan
        finite = d[~nan] if n_nan else d
        if finite.size:
            moved = finite[finite != 0]  # mostly few: bit lengths only for them
            self.counts[0] += finite.size - moved.size
            if moved.size:
                self.counts += np.bincount(bit_length(moved), minlength=65)
            biggest = int(finite.max())
            self.top = biggest if self.top is None else max(self.top, biggest)

    def bins(self) -> UlpBins:
        used = int(np.flatnonzero(self.counts).max()) + 1 if self.counts.any() else 1
        return UlpBins(tuple(int(c) for c in self.counts[:used]), self.nan, self.n, self.top)


def ulp_bins(distances: np.ndarray, dtype: str | None = None) -> UlpBins:
    """Bin counts of ULP distances already computed (``NAN_DISTANCE[dtype]`` or NaN: the NaN marker)."""
    d = np.asarray(distances).reshape(-1)
    counter = _BinCounter(dtype)
    for start in range(0, d.size, CHUNK):
        counter.add(d[start : start + CHUNK])
    return counter.bins()


def ulp_bins_of(baseline: np.ndarray, candidate: np.ndarray, dtype: str) -> UlpBins:
    """Bin counts of the ULP distances between two stored arrays, a chunk at a time."""
    counter = _BinCounter(dtype)
    for _, a, b in pair_chunks(baseline, candidate, dtype)():
        counter.add(ulp_distance(a, b, dtype))
    return counter.bins()


# ---------------------------------------------------------------- scatter sample


@dataclass(frozen=True)
class ScatterSample:
    """The points a baseline-vs-candidate scatter draws (at most ``POINT_CAP``) and the counts behind them."""

    shape: tuple[int, ...]
    finite: int  # positions where both values are finite (the others are left out)
    changed: int  # finite positions whose values differ
    index: np.ndarray  # flat indices of the points drawn, ascending
    x: np.ndarray  # baseline values (float64)
    y: np.ndarray  # candidate values
    ulps: np.ndarray | None  # their ULP distances (None without a dtype)
    lo: float  # smallest and largest finite value on either side: the ends of the y = x line
    hi: float

    @property
    def size(self) -> int:
        return math.prod(self.shape)


class _Picked:
    """Flat indices with the stored values at them, on both sides."""

    def __init__(self) -> None:
        self.index = np.zeros(0, dtype=np.int64)
        self.a: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def add(self, index: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        self.index = np.concatenate([self.index, index])
        self.a = a.copy() if self.a is None else np.concatenate([self.a, a])
        self.b = b.copy() if self.b is None else np.concatenate([self.b, b])

    def keep(self, order: np.ndarray) -> None:
        self.index = self.index[order]
        if self.a is not None and self.b is not None:
            self.a, self.b = self.a[order], self.b[order]


class _ScatterSampler:
    """Pass 1 (``add``): finite pairs per chunk, value range, the largest differences. Pass 2 (``finish``):
    an even stride over the other finite pairs, the same deterministic sample whatever the chunking."""

    def __init__(self, dtype: str | None, max_points: int) -> None:
        self.dtype = dtype
        self.max_points = max(1, min(int(max_points), POINT_CAP))
        self.keep_top = max(1, self.max_points // 10)
        self.per_chunk: list[int] = []
        self.finite = self.changed = 0
        self.lo, self.hi = math.inf, -math.inf
        self.top = _Picked()
        self.top_diff = np.zeros(0)

    def add(self, start: int, a: np.ndarray, b: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> None:
        at = _finite_at(fa, fb)
        xa, xb = (fa, fb) if at is None else (fa[at], fb[at])
        self.per_chunk.append(xa.size)
        self.finite += xa.size
        if not xa.size:
            return
        self.lo = min(self.lo, float(xa.min()), float(xb.min()))
        self.hi = max(self.hi, float(xa.max()), float(xb.max()))
        diff = np.abs(xb - xa)
        moved = np.flatnonzero(diff)
        self.changed += moved.size
        if not moved.size:
            return
        diff, where = diff[moved], (moved if at is None else at[moved])
        if where.size > self.keep_top:  # only the chunk's largest (and their ties) can enter the top
            keep = diff >= np.partition(diff, where.size - self.keep_top)[where.size - self.keep_top]
            diff, where = diff[keep], where[keep]
        self.top.add(where + start, a[where], b[where])
        self.top_diff = np.concatenate([self.top_diff, diff])
        order = np.lexsort((self.top.index, -self.top_diff))[: self.keep_top]  # largest first, ties by index
        self.top.keep(order)
        self.top_diff = self.top_diff[order]

    def finish(self, shape: tuple[int, ...], chunks: PairChunks) -> ScatterSample:
        if self.finite <= self.max_points:
            skip, ranks = None, np.arange(self.finite)
        else:
            skip = np.sort(self.top.index)
            ranks = np.linspace(0, self.finite - skip.size - 1, self.max_points - skip.size).astype(np.int64)
        shown = self._stride(chunks, skip, ranks)
        if skip is not None and self.top.a is not None:
            shown.add(self.top.index, self.top.a, self.top.b)  # type: ignore[arg-type]
        shown.keep(np.argsort(shown.index, kind="stable"))
        if shown.a is None:
            empty = np.zeros(0)
            return ScatterSample(shape, self.finite, self.changed, shown.index, empty, empty, None, self.lo, self.hi)
        assert shown.b is not None
        ulps = ulp_distance(shown.a, shown.b, self.dtype) if self.dtype is not None else None
        return ScatterSample(shape, self.finite, self.changed, shown.index, values(shown.a, self.dtype),
                             values(shown.b, self.dtype), ulps, self.lo, self.hi)

    def _stride(self, chunks: PairChunks, skip: np.ndarray | None, ranks: np.ndarray) -> _Picked:
        """The finite pairs at ``ranks`` (ascending) among those not in ``skip`` (pass 2)."""
        picked, seen, r = _Picked(), 0, 0
        for i, (start, a, b) in enumerate(chunks()):
            if r >= ranks.size:
                break
            count = self.per_chunk[i]
            if skip is not None:
                count -= int(np.count_nonzero((skip >= start) & (skip < start + a.size)))
            if ranks[r] >= seen + count:
                seen += count
                continue
            at = _finite_at(values(a, self.dtype), values(b, self.dtype))
            at = np.arange(a.size) if at is None else at
            here = skip[(skip >= start) & (skip < start + a.size)] - start if skip is not None else None
            if here is not None and here.size:
                at = at[~np.isin(at, here)]
            end = int(np.searchsorted(ranks, seen + count))
            pick = at[ranks[r:end] - seen]
            picked.add(pick + start, a[pick], b[pick])
            r, seen = end, seen + count
        return picked


def _finite_at(fa: np.ndarray, fb: np.ndarray) -> np.ndarray | None:
    """Positions where both values are finite; None when all are (the common case, no copy)."""
    finite = np.isfinite(fa)
    finite &= np.isfinite(fb)
    return None if finite.all() else np.flatnonzero(finite)


def scatter_sample(baseline: np.ndarray, candidate: np.ndarray, max_points: int = 5000,
                   dtype: str | None = None) -> ScatterSample:
    """Deterministic subsample of at most ``min(max_points, POINT_CAP)`` finite pairs of two arrays:
    the largest differences first (a tenth of the budget), then an even stride over the others."""
    chunks = pair_chunks(baseline, candidate, dtype)
    sampler = _ScatterSampler(dtype, max_points)
    with np.errstate(all="ignore"):
        for start, a, b in chunks():
            sampler.add(start, a, b, values(a, dtype), values(b, dtype))
        return sampler.finish(tuple(np.shape(baseline)), chunks)


# ---------------------------------------------------------------- heatmap grid


@dataclass(frozen=True)
class HeatmapGrid:
    """What a difference heatmap draws: the 2-D view's block maxima (at most ``HEATMAP_MAX``) and its labels."""

    z: np.ndarray  # signed difference of largest magnitude per block; NaN where a block is all NaN/Inf mismatches
    block: tuple[int, int]  # elements per cell (rows, columns)
    grid_shape: tuple[int, int]  # the 2-D view before reduction
    rows: str
    columns: str
    mismatches: int  # NaN/Inf mismatches, left blank


def grid_layout(shape: tuple[int, ...], time_axis: int | None) -> tuple[int, int, int, str, str] | None:
    """The heatmap's 2-D view of ``shape``: (pre, rows, post, row label, column label), where view element
    ``[r, p * post + q]`` is element ``[p, r, q]`` of the array reshaped to (pre, rows, post). Singleton
    dimensions are dropped first; None when fewer than two dimensions remain."""
    keep = [i for i, n in enumerate(shape) if n != 1]
    if len(keep) < 2:
        return None
    if time_axis is not None and time_axis in keep:
        t = keep.index(time_axis)
        rest = [f"dim {keep[i]}" for i in range(len(keep)) if i != t]
        return (math.prod(shape[i] for i in keep[:t]), shape[time_axis], math.prod(shape[i] for i in keep[t + 1 :]),
                f"timestep (dim {time_axis})", " × ".join(rest) + (" (flattened)" if len(rest) > 1 else ""))
    lead = [f"dim {i}" for i in keep[:-1]]
    return (1, math.prod(shape[i] for i in keep[:-1]), shape[keep[-1]],
            " × ".join(lead) + (" (flattened)" if len(lead) > 1 else ""), f"dim {keep[-1]}")


class _HeatmapCells:
    """The reduced grid, filled from flat chunks: each chunk is cut into a few 2-D tiles of the view, each
    tile reduced per block; a cell keeps the largest magnitude, ties broken by the position in its block
    (row by row), exactly as reducing the whole view at once would."""

    def __init__(self, layout: tuple[int, int, int, str, str]) -> None:
        self.pre, self.rows, self.post, self.row_label, self.col_label = layout
        self.cols = self.pre * self.post
        self.br = max(1, math.ceil(self.rows / HEATMAP_MAX[0]))
        self.bc = max(1, math.ceil(self.cols / HEATMAP_MAX[1]))
        out = (math.ceil(self.rows / self.br), math.ceil(self.cols / self.bc))
        self.z = np.full(out, np.nan)
        self.magnitude = np.full(out, -1.0)  # NaN counts as -1: it wins only in a block of NaN
        self.position = np.full(out, np.iinfo(np.int64).max)
        self.mismatches = 0

    def add(self, start: int, fa: np.ndarray, fb: np.ndarray) -> None:
        diff, bad = _difference(fa, fb)
        self.mismatches += bad
        for r0, c0, tile in self._tiles(start, diff):
            self._merge(r0, c0, tile)

    def _tiles(self, start: int, flat: np.ndarray) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first view row, first view column, 2-D tile) pieces of a flat chunk of the (pre, rows, post) array:
        runs of whole slabs side by side, else rows of one slab (a partial row at either end)."""
        rows, post = self.rows, self.post
        slab = rows * post
        at, end = start, start + flat.size
        while at < end:
            p, within = divmod(at, slab)
            if within == 0 and end - at >= slab:  # whole slabs: view columns p*post onwards, every row
                k = (end - at) // slab
                piece = flat[at - start : at - start + k * slab].reshape(k, rows, post)
                yield 0, p * post, piece.transpose(1, 0, 2).reshape(rows, k * post)
                at += k * slab
                continue
            stop = min(end, (p + 1) * slab)
            piece = flat[at - start : stop - start]
            r, q = divmod(within, post)
            if q:  # the rest of row r
                n = min(post - q, piece.size)
                yield r, p * post + q, piece[:n].reshape(1, n)
                piece, r = piece[n:], r + 1
            if piece.size >= post:  # whole rows
                full = piece.size // post
                yield r, p * post, piece[: full * post].reshape(full, post)
                piece, r = piece[full * post :], r + full
            if piece.size:  # the start of row r
                yield r, p * post, piece.reshape(1, -1)
            at = stop

    def _merge(self, r0: int, c0: int, tile: np.ndarray) -> None:
        br, bc = self.br, self.bc
        top, left = r0 % br, c0 % bc
        n_r, n_c = math.ceil((top + tile.shape[0]) / br), math.ceil((left + tile.shape[1]) / bc)
        rows, cols = slice(r0 // br, r0 // br + n_r), slice(c0 // bc, c0 // bc + n_c)
        if br == 1 and bc == 1:  # no reduction: one element per cell
            self.z[rows, cols] = tile
            return
        padded = np.full((n_r * br, n_c * bc), np.nan)  # aligned on the block grid; NaN padding never wins
        padded[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
        blocks = padded.reshape(n_r, br, n_c, bc).transpose(0, 2, 1, 3).reshape(n_r, n_c, br * bc)
        magnitude = np.abs(blocks)
        magnitude[np.isnan(magnitude)] = -1.0
        position = magnitude.argmax(axis=-1)  # the first largest, row by row within the block
        best = np.take_along_axis(magnitude, position[..., None], axis=-1)[..., 0]
        value = np.take_along_axis(blocks, position[..., None], axis=-1)[..., 0]
        held, held_at = self.magnitude[rows, cols], self.position[rows, cols]
        better = (best > held) | ((best == held) & (position < held_at))
        self.z[rows, cols][better] = value[better]
        held[better], held_at[better] = best[better], position[better]

    def grid(self) -> HeatmapGrid:
        return HeatmapGrid(self.z, (self.br, self.bc), (self.rows, self.cols), self.row_label, self.col_label,
                           self.mismatches)


def _difference(fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, int]:
    """candidate − baseline: 0 where both hold the same non-finite value, NaN for a mismatch (counted)."""
    diff = fb - fa
    if np.isfinite(diff).all():  # the common case: no NaN/Inf on either side
        return diff, 0
    same_nonfinite = ~np.isfinite(fa) & (fa == fb) | (np.isnan(fa) & np.isnan(fb))
    diff[same_nonfinite] = 0.0
    mismatch = ~np.isfinite(diff)
    diff[mismatch] = np.nan
    return diff, int(np.count_nonzero(mismatch))


def heatmap_grid(baseline: np.ndarray, candidate: np.ndarray, dtype: str | None = None,
                 time_axis: int | None = None) -> HeatmapGrid | None:
    """The heatmap's reduced grid of two arrays, a chunk at a time; None when the output has fewer than
    two non-singleton dimensions."""
    layout = grid_layout(tuple(np.shape(baseline)), time_axis)
    if layout is None:
        return None
    cells = _HeatmapCells(layout)
    with np.errstate(all="ignore"):
        for start, a, b in pair_chunks(baseline, candidate, dtype)():
            cells.add(start, values(a, dtype), values(b, dtype))
    return cells.grid()


# ---------------------------------------------------------------- one case


@dataclass(frozen=True)
class ElementCharts:
    """One case's element charts reduced to what they draw: about 1 MB whatever the arrays' size, so it
    can be cached by array digest and shared by every viewer of a comparison."""

    dtype: str
    shape: tuple[int, ...]
    ulp: UlpBins
    scatter: ScatterSample
    heatmap: HeatmapGrid | None  # None: fewer than two non-singleton dimensions


def element_charts_from(chunks: PairChunks, shape: tuple[int, ...], dtype: str, time_axis: int | None = None,
                        max_points: int = 5000) -> ElementCharts:
    """Histogram counts, scatter sample and heatmap grid in two passes over ``chunks``: the first feeds all
    three, the second picks the scatter's stride. Memory: O(CHUNK) plus what is kept."""
    counter = _BinCounter(dtype)
    sampler = _ScatterSampler(dtype, max_points)
    layout = grid_layout(shape, time_axis)
    cells = _HeatmapCells(layout) if layout is not None else None
    with np.errstate(all="ignore"):
        for start, a, b in chunks():
            counter.add(ulp_distance(a, b, dtype))
            fa, fb = values(a, dtype), values(b, dtype)
            sampler.add(start, a, b, fa, fb)
            if cells is not None:
                cells.add(start, fa, fb)
        scatter = sampler.finish(shape, chunks)
    return ElementCharts(dtype, shape, counter.bins(), scatter, cells.grid() if cells is not None else None)


def element_charts(baseline: np.ndarray, candidate: np.ndarray, dtype: str, time_axis: int | None = None,
                   max_points: int = 5000) -> ElementCharts:
    """``element_charts_from`` two stored arrays in memory."""
    return element_charts_from(pair_chunks(baseline, candidate, dtype), tuple(np.shape(baseline)), dtype,
                               time_axis, max_points)


@dataclass(frozen=True)
class ElementRequest:
    """The two arrays one case's element charts need, and the page budget that pays for decoding them."""

    baseline_arrays: ArraySource
    baseline: ArrayRef
    candidate_arrays: ArraySource
    candidate: ArrayRef
    time_axis: int | None
    max_points: int
    budget: DecodeBudget

    @property
    def nbytes(self) -> int:
        return self.baseline.nbytes + self.candidate.nbytes

    def compute(self) -> ElementCharts:
        """Decode both arrays (charged to the budget, behind the process-wide gate) and summarise them:
        streamed a chunk at a time when both sources can (``ChunkSource``), else loaded whole and dropped
        before the gate opens for the next page."""
        dtype = self.baseline.dtype
        with self.budget.decoding(self.nbytes, ELEMENT_CHART_NAMES):
            if isinstance(self.baseline_arrays, ChunkSource) and isinstance(self.candidate_arrays, ChunkSource):
                chunks = source_chunks(self.baseline_arrays, self.baseline, self.candidate_arrays, self.candidate)
                return element_charts_from(chunks, tuple(self.baseline.shape), dtype, self.time_axis, self.max_points)
            a = self.baseline_arrays.load(self.baseline)
            b = self.candidate_arrays.load(self.candidate)
            summary = element_charts(a, b, dtype, self.time_axis, self.max_points)
            del a, b
        return summary
