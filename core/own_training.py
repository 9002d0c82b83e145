"""The training step a case of the team's own models declares (``driftboard.Training``), run and recorded.

Recorded as the suite's training cases are (``core/training_run.py``), as its
own case ``<name>/train``: the trace per step, the final flat parameters as its
one output (kept whole, so the final verdict is exact), per-parameter tensors
with ``--layers full``. It trains the model the forward was just recorded
from, after seeding random, numpy and torch (``--seed``). User code runs here
(the step, the optimizer factory): a failure is this case's error.

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from driftboard.core import training_run
from driftboard.core.case_spec import Training
from driftboard.core.run import CaseResult, MemoryArrays, OwnResult, TensorRecord

SUFFIX = "/train"


def train_case(name: str, key: tuple[str, str], model: torch.nn.Module, training: Training, own: OwnResult,
               steps: int, seed: int | None, layers: str, arrays: MemoryArrays,
               place: Callable[[Any], Any], weight_digest: Callable[[torch.nn.Module], str],
               inputs_digest: Callable[[Any], str]) -> CaseResult:
    """Train ``model`` (already on the case's device and dtype) and record it as the case ``<name>/train``."""
    device, dtype = key
    case_id = name + SUFFIX
    training_run.seed_everything(seed)
    batches = [place(batch) for batch in training.batches]
    weights, batch_digest = weight_digest(model), inputs_digest(batches)
    model.train()
    optimizer = training.optimizer(model.parameters())
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"Training(optimizer=...) returned {type(optimizer).__name__}, not a torch.optim.Optimizer")

    def step(m: torch.nn.Module, batch: Any) -> torch.Tensor:
        loss = training.step(m, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"Training(step=...) returned {type(loss).__name__}: expected a one-element loss tensor")
        return loss

    began = time.perf_counter()
    trained = training_run.train(model, optimizer, step, batches, training.steps or steps, dtype,
                                 optimizer_text=_describe(optimizer), loss_text=getattr(training.step, "__name__", "step"))
    seconds = time.perf_counter() - began
    # An own case keeps no layers (bundle.py): the final flat parameters, kept whole, are its one output.
    result = training_run.result_of(case_id, device, dtype, weights, batch_digest, [trained], [seconds], "statistics",
                                    arrays)
    assert result.output is not None
    final = TensorRecord("", _flat_stats(result, arrays), result.output)
    return CaseResult(case_id, device, dtype, batch_digest, weights, result.output, repeats=1, seconds=seconds,
                      own=OwnResult(source=own.source, layers=layers, outputs=(final,), title=own.title,
                                    tolerance=own.tolerance),
                      training=trained.trace)


def _flat_stats(result: CaseResult, arrays: MemoryArrays) -> Any:
    from driftboard.core.module_records import tensor_stats

    assert result.output is not None
    return tensor_stats(torch.from_numpy(arrays.load(result.output).copy()))[0]


def _describe(optimizer: torch.optim.Optimizer) -> str:
    """``Adam(lr=0.001, weight_decay=0)``: the class and the first group's numeric settings."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    shown = [f"{k}={v:g}" for k, v in group.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return f"{type(optimizer).__name__}({', '.join(shown[:6])})"[:200]
