"""Synthetic cases of the team's own models, without torch: statistics recomputed here with plain numpy.

``own_case`` builds a ``CaseResult`` whose outputs and module calls hold the
statistics (and, in full mode, the arrays) of given numpy arrays, so
comparison tests control exactly how two runs differ.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from driftboard.core.run import ArrayRef, CaseResult, MemoryArrays, ModuleCall, OwnResult, TensorRecord, TensorStats, sample_positions


def stats_of(values: np.ndarray, dtype: str = "float32", sample: int = 8) -> TensorStats:
    """Statistics as capture records them, recomputed with numpy (math.fsum, float64)."""
    stored = np.ascontiguousarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    flat = stored.astype(np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    picked = tuple(float(flat[i]) for i in sample_positions(flat.size, sample))
    if not finite.size:
        return TensorStats(tuple(stored.shape), dtype, _sha(stored), int(flat.size), sample=picked)
    return TensorStats(
        shape=tuple(stored.shape), dtype=dtype, sha256=_sha(stored), nonfinite=int(flat.size - finite.size),
        min=float(finite.min()), max=float(finite.max()), mean=math.fsum(finite) / finite.size,
        l1=math.fsum(np.abs(finite)), l2=math.sqrt(math.fsum(finite * finite)), sample=picked)


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def record(values: np.ndarray, arrays: MemoryArrays | None, path: str = "", dtype: str = "float32",
           sample: int = 8) -> TensorRecord:
    """A tensor record; kept whole when ``arrays`` is given."""
    stats = stats_of(values, dtype, sample)
    ref: ArrayRef | None = None
    if arrays is not None:
        ref = arrays.add(np.asarray(values, dtype=dtype), dtype)
        assert ref.sha256 == stats.sha256
    return TensorRecord(path, stats, ref)


def own_case(
    arrays: MemoryArrays,
    case_id: str,
    outputs: Sequence[tuple[str, np.ndarray]],
    modules: Iterable[tuple[str, int, str, np.ndarray]] = (),
    *,
    full: bool = False,
    whole_outputs: bool = True,
    dtype: str = "float32",
    weights: str = "w1",
    inputs: str = "i1",
    layers: str = "statistics",
    error: str | None = None,
    repeat_identical: bool = True,
    key_dtype: str | None = None,
    **own_options: Any,
) -> CaseResult:
    """An own case: ``outputs`` as (path, array), ``modules`` as (name, call, type, array), in execution order."""
    out = tuple(record(a, arrays if whole_outputs else None, path, dtype, 64 if not whole_outputs else 8)
                for path, a in outputs)
    calls = tuple(ModuleCall(name, call, kind, (record(a, arrays if full else None, "", dtype),))
                  for name, call, kind, a in modules)
    own = OwnResult(source=f"cases.py:{case_id}", layers="full" if full else layers, outputs=() if error else out,
                    modules=() if error else calls, **own_options)
    digest = hashlib.sha256
    return CaseResult(
        case_id=case_id, device="cpu", dtype=key_dtype or dtype,
        input_digest=digest(f"{inputs}/{case_id}".encode()).hexdigest(),
        weight_digest=digest(f"{weights}/{case_id}".encode()).hexdigest(),
        output=None if error or not out else out[0].array, repeats=3, repeat_identical=repeat_identical,
        seconds=0.01, error=error, own=own)


def chain(x: np.ndarray, n: int, bump: dict[int, float] | None = None) -> list[tuple[str, int, str, np.ndarray]]:
    """``n`` module calls, each a function of the previous one; ``bump[i]`` adds to call i and everything after."""
    bump = bump or {}
    calls = []
    h = np.asarray(x, dtype=np.float32)
    for i in range(n):
        h = np.tanh(h * np.float32(0.9) + np.float32(0.1)).astype(np.float32)
        if i in bump:
            h = (h + np.float32(bump[i])).astype(np.float32)
        calls.append((f"layers.{i // 2}.{'linear' if i % 2 == 0 else 'act'}", 1, "Linear" if i % 2 == 0 else "Tanh", h))
    return calls
