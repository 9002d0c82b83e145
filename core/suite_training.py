"""Training cases of the reference suite (version 2): the seed posts' models trained for a few steps.

A forward pass one ULP apart is harmless; training feeds every difference back
into the weights, so it grows step by step. These cases train the seq-first
LSTM regression (Adam, MSE), the batch-first LSTM classifier (SGD with
momentum, cross-entropy) and the Kaiming MLP (AdamW, MSE) on fixed batches
from the bit-stable generator (``core.inputs``), with weights filled the same
way as the forward cases: nothing depends on torch's RNG, no dropout, no
shuffling, so two machines run the same arithmetic on the same numbers. The
optimizers are ``torch.optim``'s single-tensor updates written out
(``core/reference_optim.py``; bitwise equal to them here).
``core/training_run.py`` runs them and records the trace.

This module imports torch: only the capture path may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from driftboard.core import inputs, reference_optim, suite

# Learning rates are on the brisk side (the classifier memorises its four batches within 50 steps): training
# that moves fast feeds each rounding difference back into the weights, which is what these cases measure.
DEFAULT_STEPS = 50
MAX_STEPS = 10_000
BATCHES = 4  # distinct fixed batches, used in turn


@dataclass
class TrainingSetup:
    """A training case ready to run: model, optimizer, loss step, fixed batches, digests."""

    model: nn.Module
    optimizer: Any  # zero_grad() and step(): core/reference_optim.py
    optimizer_text: str
    loss_text: str
    step: Callable[[nn.Module, Any], torch.Tensor]  # (model, batch) -> loss
    batches: list[Any]
    weight_digest: str
    input_digest: str


@dataclass(frozen=True)
class TrainingCase:
    case_id: str
    title: str
    build: Callable[[torch.device, torch.dtype], TrainingSetup]


def _batches(case_id: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...], dtype: torch.dtype,
             device: torch.device, classes: int = 0) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], str]:
    """Fixed (input, target) batches from the bit-stable generator; integer class targets when ``classes``."""
    out, arrays = [], []
    for i in range(BATCHES):
        x = torch.from_numpy(inputs.uniform(f"{case_id}/batch{i}/x", x_shape)).to(dtype)
        u = inputs.uniform(f"{case_id}/batch{i}/y", y_shape, 0.0, 1.0)
        y = torch.from_numpy((u * classes).astype(np.int64)) if classes else torch.from_numpy(u * 2 - 1).to(dtype)
        arrays += [x.to(torch.float64).numpy(), y.numpy() if classes else y.to(torch.float64).numpy()]
        out.append((x.to(device), y.to(device)))
    return out, inputs.digest(arrays)


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def _last_step_cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x)[:, -1, :], y)  # the classifier reads the last timestep


def _lstm_seq_adam(device: torch.device, dtype: torch.dtype) -> TrainingSetup:
    case_id = "train_lstm_seq_adam"
    model = suite.LSTMRegression().to(device=device, dtype=dtype).train()
    weights = suite._fill(case_id, model, dtype, device)
    batches, digest = _batches(case_id, (10, 8, 5), (10, 8, 1), dtype, device)
    optimizer = reference_optim.Adam(model.parameters(), lr=0.05)
    return TrainingSetup(model, optimizer, "Adam(lr=0.05)", "MSELoss", _mse, batches, weights, digest)


def _lstm_batch_sgd(device: torch.device, dtype: torch.dtype) -> TrainingSetup:
    case_id = "train_lstm_batch_sgd"
    model = suite.LSTMModel(1).to(device=device, dtype=dtype).train()
    weights = suite._fill(case_id, model, dtype, device)
    batches, digest = _batches(case_id, (16, 20, 10), (16,), dtype, device, classes=5)
    optimizer = reference_optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    return TrainingSetup(model, optimizer, "SGD(lr=1.0, momentum=0.9)", "CrossEntropyLoss (last timestep)",
                         _last_step_cross_entropy, batches, weights, digest)


def _mlp_adamw(device: torch.device, dtype: torch.dtype) -> TrainingSetup:
    case_id = "train_mlp_adamw"
    model = suite.MLP().to(device=device, dtype=dtype).train()
    weights = suite.kaiming_fill(case_id, model, dtype, device)
    batches, digest = _batches(case_id, (64, 10), (64, 5), dtype, device)
    optimizer = reference_optim.Adam(model.parameters(), lr=0.01, weight_decay=0.01)  # AdamW: decoupled decay
    return TrainingSetup(model, optimizer, "AdamW(lr=0.01, weight_decay=0.01)", "MSELoss", _mse, batches,
                         weights, digest)


TRAINING_CASES: tuple[TrainingCase, ...] = (
    TrainingCase("train_lstm_seq_adam", "seq-first LSTM 5→10→1 regression, Adam + MSE, batch 8", _lstm_seq_adam),
    TrainingCase("train_lstm_batch_sgd", "batch-first LSTM 10→20→5 classifier, SGD + momentum + cross-entropy, "
                 "batch 16 × 20 steps", _lstm_batch_sgd),
    TrainingCase("train_mlp_adamw", "Kaiming MLP 10→64→64→5, AdamW + MSE, batch 64", _mlp_adamw),
)


def dtypes_for(device: str) -> list[str]:
    """Training runs in float32 and float64 (MPS: float32 only)."""
    return ["float32"] if device == "mps" else ["float32", "float64"]
