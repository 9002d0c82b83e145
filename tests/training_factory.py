"""Synthetic training cases without torch: traces whose drift starts at a known step and grows at a known rate.

The "training" is plain numpy in the case dtype: parameters walk a fixed path,
and a candidate may be pushed off it from step ``start`` on by a difference
that doubles every ``doubling`` steps. The recorded figures are computed the
way ``core/training_run.py`` records them (float64 norms, sha256 of the stored
bytes), so the comparison sees what it would see from a real capture.
"""

from __future__ import annotations

import math

import numpy as np

from driftboard.core import inputs
from driftboard.core.run import CaseResult, MemoryArrays, TensorStats, TrainingTrace, encode_array

SIZE = 64


def _norm(values: np.ndarray) -> float:
    return math.sqrt(math.fsum((values.astype(np.float64) ** 2).tolist()))


def training_case(arrays: MemoryArrays, case_id: str = "train_toy", dtype: str = "float32", *, steps: int = 50,
                  start: int | None = None, doubling: float = 7.0, size: float = 1e-6,
                  optimizer: str = "SGD(lr=0.1)", full: bool = False) -> CaseResult:
    """A training case; with ``start``, its parameters are pushed off the shared path from that step (1-based) on."""
    storage = np.dtype(dtype)
    theta0 = inputs.uniform(f"{case_id}/theta0", (SIZE,)).astype(storage)
    direction = inputs.uniform(f"{case_id}/direction", (SIZE,)) * 0.01
    bump = inputs.uniform(f"{case_id}/bump", (SIZE,))
    losses, grads, distances, digests = [], [], [], []
    theta = theta0
    for step in range(1, steps + 1):
        loss = storage.type(np.sum(theta.astype(np.float64) ** 2))
        losses.append(float(loss))
        grads.append(_norm(2 * theta))
        path = theta0.astype(np.float64) + step * direction
        if start is not None and step >= start:
            path = path + size * 2.0 ** ((step - start) / doubling) * bump
        theta = path.astype(storage)
        distances.append(_norm(theta.astype(np.float64) - theta0.astype(np.float64)))
        digests.append(encode_array(theta, dtype)[0].sha256)
    output = arrays.add(theta, dtype)
    stats = TensorStats((SIZE,), dtype, output.sha256, 0, float(theta.min()), float(theta.max()),
                        float(theta.astype(np.float64).mean()), _l1(theta), _norm(theta))
    trace = TrainingTrace(optimizer=optimizer, loss_fn="sum of squares", loss=tuple(losses), grad_norm=tuple(grads),
                          param_distance=tuple(distances), param_digests=tuple(digests),
                          parameters=(("weight", stats),), batches=1)
    layers = (("weight", output),) if full else ()
    digest = inputs.digest([theta0.astype(np.float64)])
    return CaseResult(case_id, "cpu", dtype, digest, digest, output, layers=layers, repeats=2, training=trace)


def _l1(values: np.ndarray) -> float:
    return math.fsum(np.abs(values.astype(np.float64)).tolist())


def first_divergent_step(a: TrainingTrace, b: TrainingTrace) -> int | None:
    """The first step (1-based) whose loss, gradient norm or parameter digest differs, or None: recomputed bit for
    bit from the traces, the tests' own answer to check ``core.compare.training`` against."""
    for i in range(min(a.steps, b.steps)):
        if (np.float64(a.loss[i]).tobytes() != np.float64(b.loss[i]).tobytes()
                or np.float64(a.grad_norm[i]).tobytes() != np.float64(b.grad_norm[i]).tobytes()
                or a.param_digests[i] != b.param_digests[i]):
            return i + 1
    return None
