"""What a capture records of the team's own models, checked against the test's own recomputation.

Real models from torch's own modules (a Transformer encoder, Conv1d+GRU, the
seed posts' LSTMs, a shared layer called twice, a dict-returning model,
bfloat16 autocast on the CPU). Every statistic is recomputed here with plain
numpy in float64, every module call with the test's own forward hooks.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from driftboard.core.bundle import bundle_bytes, read_bundle
from driftboard.core.run import MemoryArrays, encode_array, sample_positions

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from driftboard.core import module_records, own_cases, suite  # noqa: E402
from driftboard.core.capture import CaptureOptions, capture  # noqa: E402
from driftboard.core.case_spec import Case, make_spec  # noqa: E402

# ---------------------------------------------------------------- models


class SharedTwice(nn.Module):
    """One Linear applied twice, and a loop over a cell: each call is its own record."""

    def __init__(self) -> None:
        super().__init__()
        self.shared = nn.Linear(6, 6)
        self.cell = nn.GRUCell(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.shared(torch.tanh(self.shared(x)))
        state = torch.zeros_like(h)
        for _ in range(3):
            state = self.cell(h, state)
        return state


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.ReLU())
        self.logits = nn.Linear(8, 3)
        self.score = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> dict[str, torch.Tensor]:
        h = self.body(x) * scale
        return {"logits": self.logits(h), "aux": (self.score(h), h.mean(dim=1))}


class ConvGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.gru = nn.GRU(8, 12, batch_first=True)
        self.head = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(torch.relu(self.conv(x)).transpose(1, 2))
        return self.head(out)


def seeded(model: nn.Module) -> nn.Module:
    """Weights from numpy's frozen generator: the same on every machine, whatever torch's random stream does."""
    rng = np.random.RandomState(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape))))
    return model.eval()


def data(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).standard_normal(shape)).float()


MODELS = {
    "encoder": lambda: (seeded(nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, batch_first=True), 2,
                                                     enable_nested_tensor=False)), data(2, 7, 16)),
    "conv_gru": lambda: (seeded(ConvGRU()), data(3, 4, 10)),
    "my_lstm_seq": lambda: (seeded(suite.LSTMRegression()), data(10, 1, 5)),
    "my_lstm_2layer": lambda: (seeded(suite.LSTMModel(2)), data(8, 30, 10)),
    "my_lstm_cell_loop": lambda: (seeded(suite.LSTMCellModel()), data(8, 30, 10)),
    "shared_twice": lambda: (seeded(SharedTwice()), data(4, 6)),
    "dict_out": lambda: (seeded(DictOut()), {"x": data(4, 5), "scale": 0.5}),
}


def own_hooks(model: nn.Module, inputs) -> tuple[list[tuple[str, int, str, list[tuple[str, str]]]], object]:
    """The test's own recording: (name, call, type, [(path, sha256 of the bytes)]) per module call, in order."""
    calls, counts, handles = [], {}, []

    def flatten(value, path=""):
        if isinstance(value, torch.Tensor):
            yield path, value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from flatten(v, f"{path}[{k!r}]")
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                yield from flatten(v, f"{path}[{i}]")

    def digest(t: torch.Tensor) -> str:
        t = t.detach().contiguous()
        raw = t.view(torch.int16).numpy().view(np.uint16) if t.dtype == torch.bfloat16 else t.numpy()
        return hashlib.sha256(raw.tobytes()).hexdigest()

    names = {id(m): n for n, m in model.named_modules()}

    def hook(module, args, output):
        name = names.get(id(module))
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
            calls.append((name, counts[name], type(module).__name__, [(p, digest(t)) for p, t in flatten(output)]))

    # A global hook, as a per-module one would turn off TransformerEncoderLayer's fused path.
    handles.append(torch.nn.modules.module.register_module_forward_hook(hook))
    with torch.no_grad():
        out = model(**inputs) if isinstance(inputs, dict) else model(*inputs) if isinstance(inputs, tuple) else model(inputs)
    for h in handles:
        h.remove()
    return calls, out


def capture_spec(factory, name: str = "m", **options):
    spec = make_spec(factory, name=name, **{k: options.pop(k) for k in ("dtypes", "devices", "autocast") if k in options})
    run, arrays = capture(CaptureOptions(suite="own", own_specs=(spec,), discover_cases=False,
                                         repeats=options.pop("repeats", 2), **options))
    return run, arrays


# ---------------------------------------------------------------- statistics


def expected_stats(values: np.ndarray) -> dict[str, float]:
    flat = values.astype(np.float64).reshape(-1)
    finite = flat[np.isfinite(flat)]
    return {"min": finite.min(), "max": finite.max(), "mean": math.fsum(finite) / finite.size,
            "l1": math.fsum(np.abs(finite)), "l2": math.sqrt(math.fsum(finite * finite)),
            "nonfinite": int(flat.size - finite.size)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.bool])
def test_statistics_match_a_float64_recomputation(dtype) -> None:
    rng = np.random.RandomState(7)
    values = rng.standard_normal(50_000) * 100
    if dtype in (torch.int64, torch.bool):
        tensor = torch.from_numpy(values).to(dtype)
    else:
        values[[3, 77, 40_000]] = [np.nan, np.inf, -np.inf]
        tensor = torch.from_numpy(values).to(dtype)
    stats, array = module_records.tensor_stats(tensor, sample=8)
    as_float = tensor.to(torch.float64).numpy()
    want = expected_stats(as_float)
    assert stats.nonfinite == want["nonfinite"] == (0 if dtype in (torch.int64, torch.bool) else 3)
    for key in ("min", "max", "mean", "l1", "l2"):
        assert getattr(stats, key) == pytest.approx(want[key], rel=1e-12, abs=1e-12), key
    positions = sample_positions(tensor.numel(), 8)
    assert positions == [i * (50_000 - 1) // 7 for i in range(8)]
    np.testing.assert_array_equal(np.array(stats.sample), as_float[positions])
    # the digest is of the stored bytes: the same as the whole array's reference
    storage = "bfloat16" if dtype == torch.bfloat16 else str(dtype).removeprefix("torch.")
    assert stats.sha256 == encode_array(array, storage)[0].sha256
    assert stats.shape == (50_000,) and stats.dtype == storage


def test_statistics_of_empty_scalar_and_all_nan_tensors() -> None:
    empty, _ = module_records.tensor_stats(torch.zeros(0, 3))
    assert (empty.shape, empty.min, empty.l2, empty.sample) == ((0, 3), None, None, ())
    scalar, _ = module_records.tensor_stats(torch.tensor(2.5))
    assert (scalar.shape, scalar.min, scalar.max, scalar.l1, scalar.sample) == ((), 2.5, 2.5, 2.5, (2.5,))
    nan, _ = module_records.tensor_stats(torch.full((4,), float("nan")))
    assert nan.nonfinite == 4 and nan.mean is None and all(math.isnan(v) for v in nan.sample)


def test_a_module_returning_its_input_reuses_the_statistics_taken() -> None:
    keeper = module_records.TensorKeeper(MemoryArrays(), module_records.Budget(0))
    t = torch.randn(100)
    first = keeper.record("", t, keep=False)
    assert keeper.record("", t, keep=False) == first
    t.add_(1)  # changed in place: its version moved, so it is measured again
    assert keeper.record("", t, keep=False).stats.sha256 != first.stats.sha256


# ---------------------------------------------------------------- module calls, against our own hooks


@pytest.mark.parametrize("name", list(MODELS))
def test_every_module_call_is_recorded_in_execution_order(name: str) -> None:
    run, _ = capture_spec(MODELS[name], name=name)
    case = run.case(name)
    assert case.error is None and case.repeat_identical, case.error
    model, inputs = MODELS[name]()
    calls, out = own_hooks(model, inputs)
    recorded = [(m.name, m.call, m.type, [(t.path, t.stats.sha256) for t in m.tensors]) for m in case.own.modules]
    assert recorded == calls
    outputs = list(module_records.leaves(out))
    assert [(t.path, t.stats.shape) for t in case.own.outputs] == [(p, tuple(t.shape)) for p, t in outputs]
    assert case.own.modules[-1].name == "" and case.own.modules[-1].type == type(model).__name__


def test_a_shared_layer_and_a_cell_in_a_loop_keep_each_call_apart() -> None:
    run, _ = capture_spec(MODELS["shared_twice"])
    labels = [m.label for m in run.case("m").own.modules]
    assert labels == ["shared (Linear), call 1", "shared (Linear), call 2", "cell (GRUCell), call 1",
                      "cell (GRUCell), call 2", "cell (GRUCell), call 3", "(model) (SharedTwice), call 1"]


def test_a_dict_output_and_keyword_inputs() -> None:
    run, arrays = capture_spec(MODELS["dict_out"])
    case = run.case("m")
    assert [t.path for t in case.own.outputs] == ["['logits']", "['aux'][0]", "['aux'][1]"]
    model, inputs = MODELS["dict_out"]()
    with torch.no_grad():
        out = model(**inputs)
    np.testing.assert_array_equal(arrays.load(case.own.outputs[0].array), out["logits"].numpy())
    assert case.output == case.own.outputs[0].array  # the first output, for reports that show one


def test_lstm_outputs_are_recorded_as_every_tensor_they_return() -> None:
    run, _ = capture_spec(MODELS["my_lstm_seq"])
    lstm = next(m for m in run.case("m").own.modules if m.name == "lstm")
    assert [(t.path, t.stats.shape) for t in lstm.tensors] == [("[0]", (10, 1, 10)), ("[1][0]", (1, 1, 10)),
                                                               ("[1][1]", (1, 1, 10))]


def test_bfloat16_autocast_on_the_cpu() -> None:
    def factory():
        return Case(*MODELS["encoder"](), autocast="bfloat16")

    run, _ = capture_spec(factory)
    case = run.case("m")
    assert case.error is None and case.own.autocast == "bfloat16" and case.dtype == "float32"
    layer = next(m for m in case.own.modules if m.name == "layers.0")  # eval mode: one fused call per layer
    assert layer.tensors[0].stats.dtype == "bfloat16"
    model, x = MODELS["encoder"]()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model(x)
    assert case.own.outputs[0].stats.sha256 == module_records.tensor_stats(expected)[0].sha256  # the plain forward
    with torch.autocast("cpu", dtype=torch.bfloat16):
        calls, hooked = own_hooks(model, x)  # hooks turn off a fused path here: other bits
    assert case.own.hooks_change_output is (not torch.equal(hooked, expected))
    assert [(t.path, t.stats.sha256) for t in case.own.modules[-1].tensors] == calls[-1][3]


def test_dtypes_declared_run_the_model_in_each() -> None:
    run, arrays = capture_spec(MODELS["conv_gru"], dtypes=("float32", "float64"))
    f32, f64 = run.case("m", "cpu", "float32"), run.case("m", "cpu", "float64")
    assert f32.own.outputs[0].stats.dtype == "float32" and f64.own.outputs[0].stats.dtype == "float64"
    assert f32.weight_digest != f64.weight_digest and f32.input_digest != f64.input_digest
    model, x = MODELS["conv_gru"]()
    with torch.no_grad():
        expected = model.double()(x.double())
    np.testing.assert_array_equal(arrays.load(f64.output), expected.numpy())


# ---------------------------------------------------------------- what is kept whole


def test_statistics_mode_keeps_small_outputs_whole_and_large_ones_as_statistics() -> None:
    small = capture_spec(lambda: (nn.Linear(4, 4), torch.ones(2, 4)))[0].case("m")
    large = capture_spec(lambda: (nn.Identity(), torch.ones(own_cases.WHOLE_OUTPUT_ELEMENTS + 1)))[0].case("m")
    assert small.output is not None and all(t.array is None for m in small.own.modules for t in m.tensors)
    assert large.output is None and len(large.own.outputs[0].stats.sample) == module_records.OUTPUT_SAMPLE


def test_full_mode_keeps_module_tensors_until_the_cap(tmp_path: Path) -> None:
    run, arrays = capture_spec(MODELS["encoder"], layers="full")
    kept = [t for m in run.case("m").own.modules for t in m.tensors]
    assert all(t.array is not None for t in kept) and run.settings["layers"]["cap_hit"] is False
    model, x = MODELS["encoder"]()
    calls, _ = own_hooks(model, x)
    layer = next(m for m in run.case("m").own.modules if m.name == "layers.0")
    assert hashlib.sha256(arrays.load(layer.tensors[0].array).tobytes()).hexdigest() == layer.tensors[0].stats.sha256
    assert [(m.name, [t.stats.sha256 for t in m.tensors]) for m in run.case("m").own.modules] == \
        [(name, [sha for _, sha in tensors]) for name, _, _, tensors in calls]
    one_layer = 2 * 7 * 16 * 4  # bytes of one layer's output: the cap holds the first, not the second
    capped, capped_arrays = capture_spec(MODELS["encoder"], layers="full", layers_cap=one_layer + 100)
    records = [t for m in capped.case("m").own.modules for t in m.tensors]
    assert 0 < sum(t.array is not None for t in records) < len(records)
    assert capped.settings["layers"] == {"mode": "full", "cap_bytes": one_layer + 100, "cap_hit": True}
    assert capped.case("m").output is not None  # outputs do not count against the layers cap
    written = read_bundle(bundle_bytes(capped, capped_arrays))
    assert written.run.cases == capped.cases


def test_a_layer_past_the_cap_stays_statistics_and_nothing_of_it_is_kept() -> None:
    """A layer too large for the cap (here 64 MiB against 1 MiB; a 10 GB one alike) is summarised, never copied."""
    keeper = module_records.TensorKeeper(MemoryArrays(), module_records.Budget(2**20))
    big = torch.ones(16 * 2**20)
    recorded = keeper.record("", big, keep=True)
    assert recorded.array is None and recorded.stats.l1 == 16 * 2**20 and keeper.arrays.blobs == {}
    assert keeper.budget.hit and keeper.budget.bytes_left == 2**20
    small = keeper.record("", torch.ones(10), keep=True)
    assert small.array is not None and keeper.budget.bytes_left == 2**20 - 40


def test_module_calls_past_the_budget_are_counted_not_recorded() -> None:
    keeper = module_records.TensorKeeper(MemoryArrays(), module_records.Budget(0, calls_left=4))
    model, x = MODELS["shared_twice"]()
    hooks = module_records.ModuleHooks(model, keeper, keep=False)
    with hooks, torch.no_grad():
        model(x)
    assert [c.label for c in hooks.recording.calls][-1] == "cell (GRUCell), call 2"
    assert len(hooks.recording.calls) == 4 and hooks.recording.dropped == 2


def test_layers_none_records_outputs_only() -> None:
    run, _ = capture_spec(MODELS["encoder"], layers="none")
    case = run.case("m")
    assert case.own.modules == () and case.own.layers == "none" and case.own.outputs


def test_weights_and_inputs_digests_and_torchs_random_stream() -> None:
    def default_init():
        return nn.Linear(3, 3), torch.ones(1, 3)

    def random_inputs():
        return seeded(nn.Linear(3, 3)), torch.randn(1, 3)

    run, _ = capture_spec(default_init, name="a")
    assert run.case("a").own.weights_rng and not run.case("a").own.inputs_rng
    other, _ = capture_spec(random_inputs, name="a")
    assert not other.case("a").own.weights_rng and other.case("a").own.inputs_rng
    assert run.case("a").input_digest == other.case("a").input_digest or True
    assert run.case("a").weight_digest != other.case("a").weight_digest
    again, _ = capture_spec(default_init, name="a")  # seeded before the factory: the same weights every time
    assert again.case("a").weight_digest == run.case("a").weight_digest
