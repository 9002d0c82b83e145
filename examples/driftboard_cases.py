"""Your own models as driftboard cases: copy this file to your repository's root as driftboard_cases.py.

``driftboard capture`` picks it up (or name it in pyproject.toml under
``[tool.driftboard] cases = "path/to/file.py"``) and records, for each case,
the outputs and every module call's statistics. ``driftboard compare`` then
says whether two machines computed the same numbers and, if not, in which
module they first part.

A case is a function of no arguments returning ``(model, inputs)``: inputs a
tensor, a tuple or list of tensors (positional arguments) or a dict of them
(keyword arguments). Or return ``driftboard.Case(model, inputs, ...)`` to set
options there. Build real weights the way you do in production (load a
checkpoint, or fill them from a fixed seed as below): weights drawn from
torch's random stream differ between CPU capabilities and torch releases, and
a comparison then says "weights differ" instead of judging the compute.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import driftboard


def fill_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic weights on every machine: numpy's frozen legacy generator, not torch's random stream."""
    rng = np.random.RandomState(seed)
    with torch.no_grad():
        for param in model.parameters():
            bound = 1.0 / max(1, param.shape[-1]) ** 0.5
            param.copy_(torch.from_numpy(rng.uniform(-bound, bound, tuple(param.shape))))
    return model


def fixed_input(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).uniform(-1, 1, shape)).float()


@driftboard.case(title="Transformer encoder, 2 layers")
def encoder() -> tuple[nn.Module, torch.Tensor]:
    layer = nn.TransformerEncoderLayer(d_model=64, nhead=4, dim_feedforward=128, batch_first=True)
    model = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
    return fill_weights(model), fixed_input(4, 16, 64)


class ConvGRU(nn.Module):
    """A small sequence model: Conv1d features, a GRU over time, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 16, kernel_size=3, padding=1)
        self.gru = nn.GRU(16, 32, batch_first=True)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(x)).transpose(1, 2)
        out, _ = self.gru(features)
        return self.head(out)


@driftboard.case(dtypes=["float32", "float64"], tolerance="ulp:64")
def conv_gru() -> tuple[nn.Module, torch.Tensor]:
    """Run in float32 and float64; judged under 64 ULP whatever policy a comparison uses."""
    return fill_weights(ConvGRU()), fixed_input(4, 8, 30)


@driftboard.case(autocast="bfloat16")
def encoder_bf16() -> driftboard.Case:
    """Mixed precision: the same encoder's forward under torch.autocast(bfloat16)."""
    model, x = encoder()
    return driftboard.Case(model, x, title="encoder under bfloat16 autocast")
