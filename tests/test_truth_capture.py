"""The float64 truth of real captures (fresh processes), recomputed here with numpy float64.

The reference suite's weights and inputs come from ``core.inputs`` (never
torch's RNG), so this test rebuilds them itself, rounds them to float32 as the
capture does, checks they are the recorded ones (weight and input digests),
computes the model in numpy float64 and measures the recorded output against
that: the figures must be the ones the capture recorded from its own float64
pass. The same for an own model recorded with whole layers, per module call.
"""

from __future__ import annotations

import math
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from driftboard.core import inputs
from driftboard.core.bundle import read_bundle
from driftboard.core.compare.truth import NO_MODULE, round_to
from driftboard.core.compare.ulp import ulp_distance
from driftboard.core.processes import driftboard_command

pytest.importorskip("torch")
DRIFTBOARD = driftboard_command()

CASES_FILE = textwrap.dedent('''
    import numpy as np
    import torch
    import driftboard

    RNG = np.random.RandomState(7)
    W1, B1 = RNG.uniform(-0.5, 0.5, (16, 8)), RNG.uniform(-0.5, 0.5, 16)
    W2, B2 = RNG.uniform(-0.5, 0.5, (4, 16)), RNG.uniform(-0.5, 0.5, 4)
    X = RNG.uniform(-1, 1, (5, 8))

    @driftboard.case(dtypes=["float32", "bfloat16"])
    def enc():
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
        with torch.no_grad():
            for param, value in zip(model.parameters(), (W1, B1, W2, B2)):
                param.copy_(torch.from_numpy(value))
        return model, torch.from_numpy(X).float()
''')


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three captures: suite cases and the own model (statistics), the own model with whole layers, --no-truth."""
    root = tmp_path_factory.mktemp("truth")
    cases = root / "cases.py"
    cases.write_text(CASES_FILE, encoding="utf-8")
    found = {}
    for name, args in {
        "stats": ["--case", "linear_10_5", "--case", "lstm_seq_regression", "--case", "rng_randn", "--case", "enc"],
        "full": ["--suite", "own", "--layers", "full"],
        "none": ["--suite", "own", "--no-truth"],
    }.items():
        found[name] = root / f"{name}.driftboard"
        subprocess.run([*DRIFTBOARD, "capture", "-q", "--repeats", "1", "--cases", str(cases), *args,
                        "-o", str(found[name])], capture_output=True, text=True, check=True, cwd=root)
    return found


def suite_weights(case_id: str, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The suite's ``_fill``: uniform in ±1/sqrt(fan) from the named stream, rounded to float32, exactly widened."""
    out = {}
    for name, shape in shapes.items():
        bound = 1.0 / math.sqrt(shape[1] if len(shape) > 1 else shape[0])
        out[name] = inputs.uniform(f"{case_id}/{name}", shape, -bound, bound).astype(np.float32).astype(np.float64)
    return out


def suite_input(case_id: str, shape: tuple[int, ...]) -> np.ndarray:
    return inputs.uniform(f"{case_id}/input", shape).astype(np.float32).astype(np.float64)


def figures(out: np.ndarray, exact: np.ndarray, dtype: str = "float32") -> dict[str, float]:
    """The truth figures, recomputed here: max abs, max rel (truth not 0), rel L2, ULPs to the rounded truth."""
    wide = out.astype(np.float64)
    diff = np.abs(wide - exact)
    nonzero = exact != 0
    return {"max_abs": float(diff.max()), "max_rel": float((diff[nonzero] / np.abs(exact[nonzero])).max()),
            "rel_l2": float(np.linalg.norm(diff) / np.linalg.norm(exact)),
            "ulp_max": int(ulp_distance(out, round_to(exact, dtype), dtype).max())}


def assert_recorded(truth, expected: dict[str, float]) -> None:
    assert truth is not None and truth.error is None and truth.seconds > 0
    assert truth.ulp_max == expected["ulp_max"]
    for name in ("max_abs", "max_rel", "rel_l2"):
        # numpy's float64 and torch's float64 differ in their last bits: the errors agree to ~1e-9 of themselves
        assert getattr(truth, name) == pytest.approx(expected[name], rel=1e-6, abs=1e-18), name


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_linear_truth_is_recomputed_with_numpy_float64(bundles: dict[str, Path]) -> None:
    bundle = read_bundle(bundles["stats"])
    case = bundle.run.case("linear_10_5", "cpu", "float32")
    w = suite_weights("linear_10_5", {"weight": (5, 10), "bias": (5,)})
    x = suite_input("linear_10_5", (1, 10))
    assert case.weight_digest == inputs.digest([w["weight"], w["bias"]])  # the very weights the capture used
    assert case.input_digest == inputs.digest([x])
    exact = x @ w["weight"].T + w["bias"]
    assert_recorded(case.truth, figures(bundle.arrays.load(case.output), exact))


def test_lstm_truth_is_recomputed_with_numpy_float64(bundles: dict[str, Path]) -> None:
    bundle = read_bundle(bundles["stats"])
    case = bundle.run.case("lstm_seq_regression", "cpu", "float32")
    shapes = {"lstm.weight_ih_l0": (40, 5), "lstm.weight_hh_l0": (40, 10), "lstm.bias_ih_l0": (40,),
              "lstm.bias_hh_l0": (40,), "linear.weight": (1, 10), "linear.bias": (1,)}
    w = suite_weights("lstm_seq_regression", shapes)
    x = suite_input("lstm_seq_regression", (10, 1, 5))
    assert case.weight_digest == inputs.digest(list(w.values()))
    h, c = np.zeros((1, 10)), np.zeros((1, 10))
    steps = []
    for t in range(10):  # torch's gate order: input, forget, cell, output
        gates = x[t] @ w["lstm.weight_ih_l0"].T + w["lstm.bias_ih_l0"] + h @ w["lstm.weight_hh_l0"].T + w["lstm.bias_hh_l0"]
        i, f, g, o = np.split(gates, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        steps.append(h @ w["linear.weight"].T + w["linear.bias"])
    exact = np.stack(steps)  # (10, 1, 1)
    assert_recorded(case.truth, figures(bundle.arrays.load(case.output), exact))
    assert case.truth.rel_l2 < 1e-6  # float32 is close to the truth, and not exactly on it
    assert bundle.run.case("lstm_seq_regression", "cpu", "float64").truth is None  # float64 is its own truth


def test_an_rng_probe_has_no_float64_pass(bundles: dict[str, Path]) -> None:
    case = read_bundle(bundles["stats"]).run.case("rng_randn")
    assert case.truth is not None and case.truth.error == NO_MODULE


def test_own_model_in_statistics_mode_knows_its_truth_per_layer(bundles: dict[str, Path]) -> None:
    run = read_bundle(bundles["stats"]).run
    f32, bf16 = run.case("enc", "cpu", "float32"), run.case("enc", "cpu", "bfloat16")
    for case in (f32, bf16):
        assert case.own.layers == "statistics"
        errors = {m.label: m.truth_rel_error for m in case.own.modules}
        assert all(e is not None and e > 0 for e in errors.values()), errors
        # the model's own call is its output: the same figure as the case's
        assert errors["(model) (Sequential), call 1"] == pytest.approx(case.truth.rel_l2, rel=1e-12)
    assert bf16.truth.rel_l2 > 100 * f32.truth.rel_l2  # 8 bits of mantissa against 24
    assert all(b.truth_rel_error > a.truth_rel_error for a, b in zip(f32.own.modules, bf16.own.modules, strict=True))


def test_own_model_per_layer_truth_is_recomputed_with_numpy_float64(bundles: dict[str, Path]) -> None:
    """With whole layers kept, each module call's recorded error equals the one numpy finds against float64."""
    namespace: dict = {}
    exec(compile(CASES_FILE.replace("import driftboard", "").replace("@driftboard.case", "# "), "cases", "exec"),
         namespace)
    w1, b1, w2, b2 = (namespace[k].astype(np.float32).astype(np.float64) for k in ("W1", "B1", "W2", "B2"))
    x = namespace["X"].astype(np.float32).astype(np.float64)
    first = x @ w1.T + b1
    exact = {"0": first, "1": np.tanh(first), "2": np.tanh(first) @ w2.T + b2, "": np.tanh(first) @ w2.T + b2}
    bundle = read_bundle(bundles["full"])
    case = bundle.run.case("enc", "cpu", "float32")
    assert case.own.layers == "full"
    for module in case.own.modules:
        kept = bundle.arrays.load(module.tensors[0].array)
        expected = figures(kept, exact[module.name])["rel_l2"]
        assert module.truth_rel_error == pytest.approx(expected, rel=1e-6), module.label
    assert_recorded(case.truth, figures(bundle.arrays.load(case.output), exact[""]))


def test_no_truth_captures_without_the_float64_pass(bundles: dict[str, Path]) -> None:
    run = read_bundle(bundles["none"]).run
    assert all(c.truth is None and all(m.truth_rel_error is None for m in c.own.modules) for c in run.cases)
