"""The reference suite: small PyTorch models whose outputs are the golden numbers.

The models come from the posts driftboard started from (a seq-first LSTM
regression, ``nn.Linear(10, 5)``, batch-first LSTMs with one and two layers, an
``nn.LSTMCell`` loop, a Kaiming-initialised MLP) plus a Linear large enough
for BLAS blocking to matter, the numpy-float64-to-float32 input path and two
probes of torch's own random streams. Weights and inputs come from
``core.inputs`` (never torch's RNG) except in the RNG probes, whose whole
point is torch's RNG.

This module imports torch: only the capture path may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from driftboard.core import inputs

SUITE_ID = "driftboard-reference"
SUITE_VERSION = 2  # 2: training cases (core/suite_training.py); the forward cases are unchanged since 1

TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}


@dataclass
class Prepared:
    """A case ready to run: the model, its inputs and the digests of both."""

    forward: Callable[[], torch.Tensor]
    model: nn.Module | None
    weight_digest: str
    input_digest: str
    hooks: tuple[str, ...] = ()  # submodules whose outputs are recorded as layers
    inputs: tuple[torch.Tensor, ...] = ()  # what ``forward`` passes ``model``: the float64 truth upcasts them


@dataclass(frozen=True)
class Case:
    case_id: str
    title: str
    prepare: Callable[[torch.device, torch.dtype], Prepared]
    time_axis: int | None = None
    float_dtypes: bool = True  # False: runs in float32 only (RNG probes)


# ------------------------------------------------------------- weights and inputs


def _fill(case_id: str, model: nn.Module, dtype: torch.dtype, device: torch.device) -> str:
    """Overwrite every parameter from the bit-stable generator; return their digest.

    Bounds follow torch's own default init (uniform in ±1/sqrt(fan)), so the
    numbers have realistic magnitudes.
    """
    arrays = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            bound = 1.0 / math.sqrt(param.shape[1] if param.dim() > 1 else param.shape[0])
            values = inputs.uniform(f"{case_id}/{name}", tuple(param.shape), -bound, bound)
            tensor = torch.from_numpy(values).to(dtype)
            arrays.append(tensor.to(torch.float64).numpy())
            param.copy_(tensor.to(device))
    return inputs.digest(arrays)


def _input(case_id: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, str]:
    tensor = torch.from_numpy(inputs.uniform(f"{case_id}/input", shape)).to(dtype)
    return tensor.to(device), inputs.digest([tensor.to(torch.float64).numpy()])


def _prepare(case_id: str, model: nn.Module, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype,
             hooks: tuple[str, ...] = ()) -> Prepared:
    model = model.to(device=device, dtype=dtype).eval()
    weight_digest = _fill(case_id, model, dtype, device)
    x, input_digest = _input(case_id, shape, dtype, device)
    return Prepared(lambda: model(x), model, weight_digest, input_digest, hooks, inputs=(x,))


# ------------------------------------------------------------- models


class LSTMRegression(nn.Module):
    """Seq-first LSTM 5→10 and a Linear 10→1, predicting at every timestep."""

    def __init__(self, input_size: int = 5, hidden_size: int = 10, output_size: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.linear = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.linear(out)  # (T, B, 1): the post's out[-1] is the last timestep


class LSTMModel(nn.Module):
    """Batch-first LSTM 10→20 (one or more layers) and a Linear 20→5 at every timestep."""

    def __init__(self, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(10, 20, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(20, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.fc(out)


class LSTMCellModel(nn.Module):
    """The post's manual ``nn.LSTMCell`` loop over 30 timesteps."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm_cell = nn.LSTMCell(10, 20)
        self.fc = nn.Linear(20, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx = x.new_zeros(x.size(0), 20)
        cx = x.new_zeros(x.size(0), 20)
        outputs = []
        for i in range(x.size(1)):
            hx, cx = self.lstm_cell(x[:, i, :], (hx, cx))
            outputs.append(hx)
        return self.fc(torch.stack(outputs, dim=1))


class MLP(nn.Module):
    """10→64→64→5 with ReLU; weights drawn in the Kaiming-uniform range."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(10, 64)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(64, 64)
        self.act2 = nn.ReLU()
        self.fc3 = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


def kaiming_fill(case_id: str, model: nn.Module, dtype: torch.dtype, device: torch.device) -> str:
    """Like ``_fill``, with weights in the Kaiming-uniform range (ReLU); return their digest."""
    arrays = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            fan_in = param.shape[1] if param.dim() > 1 else param.shape[0]
            # kaiming_uniform_(a=0, nonlinearity="relu"): bound = sqrt(2) * sqrt(3 / fan_in)
            bound = math.sqrt(6.0 / fan_in) if param.dim() > 1 else 1.0 / math.sqrt(fan_in)
            tensor = torch.from_numpy(inputs.uniform(f"{case_id}/{name}", tuple(param.shape), -bound, bound)).to(dtype)
            arrays.append(tensor.to(torch.float64).numpy())
            param.copy_(tensor.to(device))
    return inputs.digest(arrays)


def _mlp(case_id: str, device: torch.device, dtype: torch.dtype) -> Prepared:
    model = MLP().to(device=device, dtype=dtype).eval()
    weight_digest = kaiming_fill(case_id, model, dtype, device)
    x, input_digest = _input(case_id, (64, 10), dtype, device)
    return Prepared(lambda: model(x), model, weight_digest, input_digest, ("fc1", "fc2", "fc3"), inputs=(x,))


def _numpy_f64_input(case_id: str, device: torch.device, dtype: torch.dtype) -> Prepared:
    """The post's path: a numpy float64 array cast by ``torch.tensor(..., dtype=...)``."""
    model = LSTMRegression().to(device=device, dtype=dtype).eval()
    weight_digest = _fill(case_id, model, dtype, device)
    array = inputs.uniform(f"{case_id}/input", (10, 1, 5), 0.0, 1.0)  # np.random.rand's range
    input_digest = inputs.digest([array])  # of the float64 source: the cast is part of the compute

    def forward() -> torch.Tensor:
        return model(torch.tensor(array, dtype=dtype).to(device))

    return Prepared(forward, model, weight_digest, input_digest, ("lstm",), inputs=(torch.tensor(array, dtype=dtype),))


def _rng_init(case_id: str, device: torch.device, dtype: torch.dtype) -> Prepared:
    """``torch.manual_seed(42)`` then default init: torch's own init stream."""

    def forward() -> torch.Tensor:
        torch.manual_seed(42)
        model = LSTMRegression()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).to(device)

    return Prepared(forward, None, _described("torch.manual_seed(42); LSTMRegression(5, 10, 1)"),
                    _described("no input"))


def _rng_randn(case_id: str, device: torch.device, dtype: torch.dtype) -> Prepared:
    """``torch.randn`` after the seed, at the post's size and at a vectorised size."""

    def forward() -> torch.Tensor:
        torch.manual_seed(42)
        small = torch.randn(10, 1, 5, device=device).reshape(-1)
        large = torch.randn(4096, device=device)  # CPU randn takes another path from 16 elements on
        return torch.cat([small, large])

    return Prepared(forward, None, _described("torch.manual_seed(42)"), _described("torch.randn(10, 1, 5), torch.randn(4096)"))


def _described(text: str) -> str:
    return inputs.digest([np.frombuffer(text.encode(), dtype=np.uint8)])


# ------------------------------------------------------------- the suite

CASES: tuple[Case, ...] = (
    Case("lstm_seq_regression", "seq-first LSTM 5→10→1, 10 timesteps",
         lambda d, t: _prepare("lstm_seq_regression", LSTMRegression(), (10, 1, 5), d, t, ("lstm",)),
         time_axis=0),
    Case("linear_10_5", "nn.Linear(10, 5)",
         lambda d, t: _prepare("linear_10_5", nn.Linear(10, 5), (1, 10), d, t)),
    Case("lstm_batch_first", "batch-first LSTM 10→20→5, sequence 30, batch 64",
         lambda d, t: _prepare("lstm_batch_first", LSTMModel(1), (64, 30, 10), d, t, ("lstm",)),
         time_axis=1),
    Case("lstm_2layer", "batch-first 2-layer LSTM 10→20→5, sequence 30, batch 64",
         lambda d, t: _prepare("lstm_2layer", LSTMModel(2), (64, 30, 10), d, t, ("lstm",)),
         time_axis=1),
    Case("lstm_cell_loop", "nn.LSTMCell loop 10→20→5, sequence 30, batch 64",
         lambda d, t: _prepare("lstm_cell_loop", LSTMCellModel(), (64, 30, 10), d, t),
         time_axis=1),
    Case("mlp_kaiming", "MLP 10→64→64→5, Kaiming-uniform weights, batch 64",
         lambda d, t: _mlp("mlp_kaiming", d, t)),
    Case("linear_1024", "nn.Linear(1024, 1024), batch 64 (BLAS blocking)",
         lambda d, t: _prepare("linear_1024", nn.Linear(1024, 1024), (64, 1024), d, t)),
    Case("numpy_f64_input", "numpy float64 input cast to the model dtype, seq-first LSTM",
         lambda d, t: _numpy_f64_input("numpy_f64_input", d, t), time_axis=0),
    Case("rng_manual_seed_init", "torch.manual_seed(42) then default init of LSTMRegression",
         lambda d, t: _rng_init("rng_manual_seed_init", d, t), float_dtypes=False),
    Case("rng_randn", "torch.randn after torch.manual_seed(42)",
         lambda d, t: _rng_randn("rng_randn", d, t), float_dtypes=False),
)


def case_by_id(case_id: str) -> Case:
    for case in CASES:
        if case.case_id == case_id:
            return case
    raise KeyError(case_id)


def devices() -> list[str]:
    """Every device this torch can run on here: cpu, then cuda and mps when present."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found


def dtypes_for(case: Case, device: str) -> list[str]:
    if not case.float_dtypes:
        return ["float32"]
    names = ["float32", "float64"]
    if device == "mps":
        names = ["float32"]  # MPS has no float64
    if device in ("cuda", "mps"):
        names += ["float16", "bfloat16"]
    return names
