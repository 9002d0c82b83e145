"""Run a training case and record its trace: loss, gradient norm, distance from the start, digests.

Every step records four numbers per parameter vector, not the weights: the
loss, the global gradient norm, the L2 distance of the parameters from their
initial values and the sha256 of their bytes. The norms are summed in float64
with ``math.fsum`` (exactly rounded, independent of BLAS and summation order),
so a recorded difference is a difference in the parameters, never in the
recording. Before each run the seeding recipe is applied and what was in force
recorded (``core/seeding.py`` says what is missing).

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from driftboard.core import inputs, suite_training
from driftboard.core.module_records import tensor_stats
from driftboard.core.run import ArrayRef, CaseResult, MemoryArrays, TrainingTrace, encode_array
from driftboard.core.suite import TORCH_DTYPES

DEFAULT_SEED = 0
# Training runs once per case (the forward cases' repeats catch run-to-run nondeterminism): fifty steps of
# small ops cost far more than a forward, most of it in thread hand-offs on a busy machine.
TRAINING_REPEATS = 1
# The suite's training cases run on one intra-op thread, then the capture's count is restored: their tensors are
# tiny, and on two busy cores the hand-offs between threads made fifty steps take 18 s instead of 1 s
# (benchmarks/bench_training.py). Drift from the thread count shows in the forward cases (variant threads-1).
TRAINING_THREADS = 1


def seed_everything(seed: int | None) -> None:
    """The seed posts' recipe, RNG part: random, numpy, torch and (when present) every CUDA device."""
    if seed is None:
        return
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def recipe_in_force(seed: int | None) -> dict[str, Any]:
    """What the run's training used: seeded streams and the determinism knobs as they stand now."""
    cuda = torch.cuda.is_available()
    return {
        "seed": seed,
        "seeded": {"random": seed is not None, "numpy": seed is not None, "torch": seed is not None,
                   "cuda": seed is not None and cuda},
        "cuda_available": cuda,
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


@dataclass
class Trained:
    """One training run: the trace, the final flat parameters (stored form) and each final parameter tensor."""

    trace: TrainingTrace
    final: np.ndarray
    parameters: list[tuple[str, torch.Tensor]]


def _flat(params: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params]).to("cpu")


def _norm(values: np.ndarray) -> float:
    """L2 norm, exactly summed: the same float for the same values on every machine."""
    return math.sqrt(math.fsum((values * values).tolist()))


def train(model: torch.nn.Module, optimizer: Any, step: Callable[[torch.nn.Module, Any], torch.Tensor],
          batches: Sequence[Any], steps: int, dtype: str, *, optimizer_text: str, loss_text: str) -> Trained:
    """``steps`` optimizer steps over ``batches`` in turn, recording the trace after each.

    A parameter digest is the sha256 of the flat parameter vector as ``encode_array`` stores it, so the
    last one is the digest of the case's output.
    """
    from driftboard.core.capture import to_numpy

    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    start = _flat(params).to(torch.float64).numpy()
    loss_values, grad_norms, distances, digests = [], [], [], []
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = step(model, batches[i % len(batches)])
        loss.backward()
        grads = _flat([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
        grad_norms.append(_norm(grads.to(torch.float64).numpy()))
        loss_values.append(float(loss.detach().to("cpu").to(torch.float64).item()))
        optimizer.step()
        flat = _flat(params)
        distances.append(_norm(flat.to(torch.float64).numpy() - start))
        digests.append(encode_array(to_numpy(flat, dtype), dtype)[0].sha256)
    final = to_numpy(_flat(params), dtype)
    parameters = [(name, p.detach().to("cpu").clone()) for name, p in named]
    trace = TrainingTrace(optimizer=optimizer_text, loss_fn=loss_text, loss=tuple(loss_values),
                          grad_norm=tuple(grad_norms), param_distance=tuple(distances), param_digests=tuple(digests),
                          parameters=tuple((name, tensor_stats(t)[0]) for name, t in parameters),
                          batches=len(batches))
    return Trained(trace, final, parameters)


def run_case(case: suite_training.TrainingCase, device: str, dtype: str, steps: int, repeats: int, layers: str,
             seed: int | None, arrays: MemoryArrays) -> CaseResult:
    """A suite training case: built and trained ``repeats`` times from scratch; the first run is kept."""
    results, seconds = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(TRAINING_THREADS)
    try:
        for _ in range(max(1, min(repeats, TRAINING_REPEATS))):
            seed_everything(seed)
            setup = case.build(torch.device(device), TORCH_DTYPES[dtype])
            began = time.perf_counter()
            results.append(train(setup.model, setup.optimizer, setup.step, setup.batches, steps, dtype,
                                 optimizer_text=setup.optimizer_text, loss_text=setup.loss_text))
            seconds.append(time.perf_counter() - began)
    except Exception as exc:  # a case that cannot run here is a finding, not a crash
        failed = inputs.digest([])
        return CaseResult(case.case_id, device, dtype, failed, failed, None, repeats=max(1, min(repeats, TRAINING_REPEATS)),
                          error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    finally:
        torch.set_num_threads(threads)
    return result_of(case.case_id, device, dtype, setup.weight_digest, setup.input_digest, results, seconds, layers,
                     arrays)


def result_of(case_id: str, device: str, dtype: str, weight_digest: str, input_digest: str, results: list[Trained],
              seconds: list[float], layers: str, arrays: MemoryArrays) -> CaseResult:
    """The case result of one or more training runs: the first one's trace and parameters, whether all agreed."""
    from driftboard.core.capture import to_numpy

    first = results[0]
    identical = all(r.trace == first.trace for r in results[1:])
    output: ArrayRef = arrays.add(first.final, dtype)
    kept: tuple[tuple[str, ArrayRef], ...] = ()
    if layers == "full":
        kept = tuple((name, arrays.add(to_numpy(t, dtype), dtype)) for name, t in first.parameters)
    return CaseResult(case_id=case_id, device=device, dtype=dtype, input_digest=input_digest,
                      weight_digest=weight_digest, output=output, layers=kept, repeats=len(results),
                      repeat_identical=identical, seconds=statistics.median(seconds), training=first.trace)
