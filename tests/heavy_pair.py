"""The heaviest comparison a valid bundle allows: two runs whose float32 output is 64 MiB (16 Mi elements).

The values are mostly zeros, so each bundle is small on disk (the deflate
streams compress ~1000:1) while every comparison, chart and report has to
decode 2 x 64 MiB. The candidate differs from the baseline in ``CHANGED``
elements, moved by known ULP distances, so the figures are exact and known.
With ``layers=True`` each bundle also holds three intermediate layers, so it
carries the most decoded bytes a bundle may (256 MiB) in four arrays.
Used by ``tests/test_memory_bounds.py`` and ``benchmarks/bench_memory.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from runs_factory import bump_ulps, make_case, make_run

from driftboard.core.bundle import write_bundle
from driftboard.core.run import MemoryArrays, Run

SHAPE = (4096, 4096)  # 16 Mi float32 elements = 64 MiB, the per-array bound of a bundle
TIME_AXIS = 0  # an LSTM-like output: error per timestep is charted too
CASE_ID = "heavy_output"
CHANGED = 24  # elements that differ between baseline and candidate


def heavy_outputs(shape: tuple[int, ...] = SHAPE, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """(baseline, candidate) float32 arrays of ``shape``: zeros but a few thousand values, CHANGED moved."""
    rng = np.random.default_rng(seed)
    base = np.zeros(shape, dtype=np.float32)
    flat = base.reshape(-1)
    nonzero = rng.choice(flat.size, size=min(4096, flat.size), replace=False)
    flat[nonzero] = rng.standard_normal(nonzero.size).astype(np.float32)
    moved = np.sort(nonzero[:CHANGED])
    ulps = np.array([1, 2, 3, 5, 8, 13, 100, 1000, 5000, 1 << 20, 7, 1] * (CHANGED // 12 + 1))[:CHANGED]
    cand = bump_ulps(base, "float32", ulps, np.unravel_index(moved, shape)) if CHANGED else base.copy()
    return base, cand


def heavy_runs(shape: tuple[int, ...] = SHAPE, layers: bool = False) -> tuple[Run, Run, MemoryArrays]:
    """A baseline and a candidate run holding the heavy output (one case each), over one ``MemoryArrays``.

    ``layers``: the case also records three intermediate layers (64, 64 and 61 MiB, each differing in one
    element), so each bundle holds as many decoded bytes as a bundle may (256 MiB) in four arrays.
    """
    arrays = MemoryArrays()
    base, cand = heavy_outputs(shape)
    time_axis = TIME_AXIS if len(shape) > 1 else None
    old_layers: list[tuple[str, np.ndarray]] = []
    new_layers: list[tuple[str, np.ndarray]] = []
    if layers:
        for i, rows in enumerate((shape[0], shape[0], shape[0] * 61 // 64)):
            layer = bump_ulps(base[:rows], "float32", i + 1, (slice(0, 1), slice(0, 1)))  # distinct arrays
            old_layers.append((f"layer{i}", layer))
            new_layers.append((f"layer{i}", bump_ulps(layer, "float32", 3, (slice(5, 6), slice(0, 1)))))
    suffix = "-layered" if layers else ""
    old = make_run([make_case(arrays, CASE_ID, base, time_axis=time_axis, layers=old_layers)],
                   run_id=f"heavy-golden{suffix}")
    new = make_run([make_case(arrays, CASE_ID, cand, time_axis=time_axis, layers=new_layers)],
                   run_id=f"heavy-candidate{suffix}", fingerprint_overrides={"numerics.mkldnn_enabled": False})
    return old, new, arrays


def write_heavy_pair(directory: Path, shape: tuple[int, ...] = SHAPE, layers: bool = False) -> tuple[Path, Path]:
    """The two heavy bundles written into ``directory`` (reused when already there)."""
    directory.mkdir(parents=True, exist_ok=True)
    tag = "x".join(map(str, shape)) + ("-layered" if layers else "")
    paths = directory / f"heavy-golden-{tag}.driftboard", directory / f"heavy-candidate-{tag}.driftboard"
    if not all(p.exists() for p in paths):
        old, new, arrays = heavy_runs(shape, layers)
        write_bundle(paths[0], old, arrays)
        write_bundle(paths[1], new, arrays)
    return paths
