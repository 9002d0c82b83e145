"""The reference suite's weights and inputs are bit-stable: their digests are pinned here.

If one of these changes, every stored golden output becomes incomparable: bump
SUITE_VERSION instead of editing the pins.
"""

from __future__ import annotations

import numpy as np
import pytest

from driftboard.core import inputs

torch = pytest.importorskip("torch")
from driftboard.core import suite  # noqa: E402  (imports torch)

# (case id, dtype) -> (weight digest, input digest), first 16 hex digits.
PINNED = {
    ("lstm_seq_regression", "float32"): ("b33201b463963e15", "2f3c48405cf506c6"),
    ("lstm_seq_regression", "float64"): ("985677ff1f4ecbda", "0ab7efbaf57e8a9c"),
    ("linear_10_5", "float32"): ("47b84611925a8637", "afe4eb51a305aa41"),
    ("linear_10_5", "float64"): ("a4e16fac800307a2", "ec3204c5a4276408"),
    ("lstm_batch_first", "float32"): ("16e0c211cb6435cb", "dc17ccf4f515e630"),
    ("lstm_batch_first", "float64"): ("9c2498778709b6ca", "8aeb5e64913fd6fc"),
    ("lstm_2layer", "float32"): ("72b39a75ab750db4", "0e6977288201f6a7"),
    ("lstm_2layer", "float64"): ("4258f2c9bfcbbd2f", "56da20fd523053f2"),
    ("lstm_cell_loop", "float32"): ("fafe768f14fd756b", "7800a6b651fee99a"),
    ("lstm_cell_loop", "float64"): ("10ae6a2bc2cef716", "3b0caa9c04c68f11"),
    ("mlp_kaiming", "float32"): ("95895d667dc926dc", "65c46c168a601cc5"),
    ("mlp_kaiming", "float64"): ("1c3a2ce904cb11e6", "d68d8f637a28cfcf"),
    ("linear_1024", "float32"): ("5b189bc54d34dfda", "8197525c2249a0cc"),
    ("linear_1024", "float64"): ("01bcd80843a5d2b8", "6eac0b76efaf9e72"),
    ("numpy_f64_input", "float32"): ("bc6c8d84517d40a8", "371baff45d39ad21"),
    ("numpy_f64_input", "float64"): ("75a3558c56d15693", "371baff45d39ad21"),
    ("rng_manual_seed_init", "float32"): ("4bd8b9ad89f86712", "c553047c42fef9eb"),
    ("rng_randn", "float32"): ("fedbd1cb4f6cab2c", "9ba5096613d2b754"),
}


def _splitmix64_reference(x: int) -> int:
    """The published splitmix64 finaliser in plain Python integers."""
    mask = 2**64 - 1
    z = (x * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_generator_matches_reference_splitmix64() -> None:
    counters = np.array([0, 1, 2, 2**63, 2**64 - 1], dtype=np.uint64)
    assert [int(v) for v in inputs.splitmix64(counters)] == [_splitmix64_reference(int(c)) for c in counters]


def test_uniform_values_are_pinned_and_in_range() -> None:
    values = inputs.uniform("probe", (4,))
    assert values.tolist() == [-0.9916028202536844, -0.462576494132805, 0.0034476831911489647, -0.33387283520820965]
    many = inputs.uniform("range", (10_000,), 2.0, 3.0)
    assert many.min() >= 2.0 and many.max() < 3.0 and abs(many.mean() - 2.5) < 0.01
    assert not np.array_equal(inputs.uniform("a", (8,)), inputs.uniform("b", (8,)))


@pytest.mark.parametrize(("case_id", "dtype"), sorted(PINNED))
def test_weight_and_input_digests_are_pinned(case_id: str, dtype: str) -> None:
    prepared = suite.case_by_id(case_id).prepare(torch.device("cpu"), suite.TORCH_DTYPES[dtype])
    assert (prepared.weight_digest[:16], prepared.input_digest[:16]) == PINNED[(case_id, dtype)]


def test_every_case_and_cpu_dtype_is_pinned() -> None:
    planned = {(c.case_id, d) for c in suite.CASES for d in suite.dtypes_for(c, "cpu")}
    assert planned == set(PINNED)


def test_weights_do_not_depend_on_torch_rng_state() -> None:
    case = suite.case_by_id("linear_10_5")
    torch.manual_seed(1)
    first = case.prepare(torch.device("cpu"), torch.float32)
    torch.manual_seed(999)
    second = case.prepare(torch.device("cpu"), torch.float32)
    assert first.weight_digest == second.weight_digest
    assert torch.equal(first.forward(), second.forward())


def test_seed_post_shapes() -> None:
    cpu = torch.device("cpu")
    assert suite.case_by_id("lstm_seq_regression").prepare(cpu, torch.float32).forward().shape == (10, 1, 1)
    assert suite.case_by_id("linear_10_5").prepare(cpu, torch.float32).forward().shape == (1, 5)
    for case_id in ("lstm_batch_first", "lstm_2layer", "lstm_cell_loop"):
        assert suite.case_by_id(case_id).prepare(cpu, torch.float32).forward().shape == (64, 30, 5)
    assert suite.case_by_id("linear_1024").prepare(cpu, torch.float32).forward().shape == (64, 1024)


def test_lstm_cell_loop_matches_nn_lstm_with_the_same_weights() -> None:
    """The manual LSTMCell loop computes the same recurrence as nn.LSTM (to rounding)."""
    prepared = suite.case_by_id("lstm_cell_loop").prepare(torch.device("cpu"), torch.float64)
    cell = prepared.model.lstm_cell
    lstm = torch.nn.LSTM(10, 20, batch_first=True).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(cell.weight_ih)
        lstm.weight_hh_l0.copy_(cell.weight_hh)
        lstm.bias_ih_l0.copy_(cell.bias_ih)
        lstm.bias_hh_l0.copy_(cell.bias_hh)
        x = torch.from_numpy(inputs.uniform("lstm_cell_loop/input", (64, 30, 10)))
        expected = prepared.model.fc(lstm(x)[0])
        torch.testing.assert_close(prepared.forward(), expected, rtol=1e-12, atol=1e-12)


def test_gpu_dtypes_include_half_precision() -> None:
    case = suite.case_by_id("linear_10_5")
    assert suite.dtypes_for(case, "cuda") == ["float32", "float64", "float16", "bfloat16"]
    assert suite.dtypes_for(case, "mps") == ["float32", "float16", "bfloat16"]
    assert suite.dtypes_for(suite.case_by_id("rng_randn"), "cuda") == ["float32"]
