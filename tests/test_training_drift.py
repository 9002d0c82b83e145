"""Training amplifies real drift: captures in fresh processes, oneDNN on and off, and the seeding recipe they record.

Under oneDNN off (the sweep's setting) the LSTM forward cases move by about an
ULP of their output's scale; fifty training steps feed that back into the
weights, and the losses end further apart. Every figure is recomputed here
from the recorded traces and outputs with plain numpy: the step of the first
divergence, the sizes of the differences. Identical settings in two processes
give identical traces.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from training_factory import first_divergent_step as _first_divergent_step

from driftboard.core.bundle import Bundle, read_bundle
from driftboard.core.compare import compare_runs
from driftboard.core.processes import driftboard_command
from driftboard.core.seeding import missing

pytestmark = pytest.mark.slow

FORWARD = ("lstm_seq_regression", "lstm_batch_first", "mlp_kaiming")
TRAINING = ("train_lstm_seq_adam", "train_lstm_batch_sgd", "train_mlp_adamw")
EPS32 = float(np.finfo(np.float32).eps)


def _capture(path: Path, *args: str) -> tuple[Bundle, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "CUBLAS_WORKSPACE_CONFIG")}
    subprocess.run([*driftboard_command(), "capture", "-q", "--suite", "reference", "--device", "cpu", "-o", str(path),
                    *args], check=True, capture_output=True, env=env)
    shown = subprocess.run([*driftboard_command(), "show", str(path)], check=True, capture_output=True, text=True,
                           env={**env, "COLUMNS": "400"})
    return read_bundle(path), " ".join(shown.stdout.split())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Bundle, str]]:
    tmp = tmp_path_factory.mktemp("training")
    cases = [f"--case={c}" for c in (*FORWARD, *TRAINING)]
    small = ["--case=train_mlp_adamw", "--case=train_lstm_seq_adam", "--steps", "3", "--repeats", "1"]
    return {
        "default": _capture(tmp / "a.driftboard", "--repeats", "2", *cases),
        "again": _capture(tmp / "b.driftboard", "--repeats", "2", *[f"--case={c}" for c in TRAINING]),
        "onednn-off": _capture(tmp / "c.driftboard", "--repeats", "2", "--variant", "onednn-off", *cases),
        "deterministic": _capture(tmp / "d.driftboard", "--variant", "deterministic", "--layers", "full", *small),
        "no-seed": _capture(tmp / "e.driftboard", "--no-seed", *small),
    }


def _scaled_ulps(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference in ULPs of the output's own scale (float32 spacing at its largest magnitude)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.max(np.abs(a - b)) / (EPS32 * np.max(np.abs(a))))


def test_onednn_off_forward_moves_a_few_ulps_training_losses_move_more(runs) -> None:  # noqa: ANN001
    (base, _), (cand, _) = runs["default"], runs["onednn-off"]
    forward = {}
    for case_id in FORWARD:
        a, b = base.run.case(case_id), cand.run.case(case_id)
        forward[case_id] = _scaled_ulps(base.arrays.load(a.output), cand.arrays.load(b.output))
    if not any(forward.values()):
        pytest.skip("oneDNN off changes no forward case on this machine (no oneDNN LSTM path here)")
    assert max(forward.values()) <= 8, forward  # a few ULP of the output's scale
    result = compare_runs(base.run, base.arrays, cand.run, cand.arrays)
    final = {}
    for case_id in TRAINING:
        a, b = base.run.case(case_id).training, cand.run.case(case_id).training
        assert a.steps == b.steps == 50 and len(a.param_digests) == 50
        compared = result.case(case_id).training
        first = _first_divergent_step(a, b)
        assert compared.first_bitwise_step == first  # recomputed here from the recorded traces
        if first is None:
            assert a == b
            continue
        final[case_id] = abs(a.loss[-1] - b.loss[-1]) / (EPS32 * abs(a.loss[-1]))
        params = _scaled_ulps(base.arrays.load(base.run.case(case_id).output),
                              cand.arrays.load(cand.run.case(case_id).output))
        assert params > 0
    assert final, "no training case differs under oneDNN off although its forward cases do"
    assert max(final.values()) > 10 * max(forward.values()), (final, forward)


def test_identical_settings_give_identical_traces(runs) -> None:  # noqa: ANN001
    (a, _), (b, _) = runs["default"], runs["again"]
    for case_id in TRAINING:
        for dtype in ("float32", "float64"):
            x, y = a.run.case(case_id, "cpu", dtype), b.run.case(case_id, "cpu", dtype)
            assert x.training == y.training and x.output == y.output
    result = compare_runs(a.run, a.arrays, b.run, b.arrays)
    assert all(c.training.identical for c in result.cases if c.training is not None)
    assert a.run.suite_version == 2 and a.run.settings["training"] == {"steps": 50, "intra_op_threads": 1}


def test_the_seeding_recipe_is_recorded_and_what_it_lacks_is_said(runs) -> None:  # noqa: ANN001
    bundle, shown = runs["default"]
    recipe = bundle.run.settings["seeding"]
    assert recipe["seed"] == 0 and recipe["seeded"] == {"random": True, "numpy": True, "torch": True, "cuda": False}
    assert "use_deterministic_algorithms is off" in missing(recipe)
    assert "seeding recipe: seed 0: random, numpy, torch seeded; incomplete:" in shown
    assert "use_deterministic_algorithms is off" in shown and "CUBLAS_WORKSPACE_CONFIG is unset" in shown
    bundle, shown = runs["deterministic"]
    assert missing(bundle.run.settings["seeding"]) == [] and "seeded; complete" in shown
    bundle, shown = runs["no-seed"]
    assert bundle.run.settings["seeding"]["seed"] is None
    assert "no random stream seeded; incomplete: random not seeded, numpy not seeded, torch not seeded" in shown


def test_steps_and_full_parameters_are_recorded(runs) -> None:  # noqa: ANN001
    bundle, _ = runs["deterministic"]
    case = bundle.run.case("train_mlp_adamw")
    trace = case.training
    assert trace.steps == 3 and trace.optimizer.startswith("AdamW") and trace.param_digests[-1] == case.output.sha256
    assert [name for name, _ in case.layers] == [name for name, _ in trace.parameters]  # --layers full
    flat = np.concatenate([bundle.arrays.load(ref).reshape(-1) for _, ref in case.layers])
    np.testing.assert_array_equal(flat, bundle.arrays.load(case.output))
    for (_, ref), (_, stats) in zip(case.layers, trace.parameters):
        assert ref.sha256 == stats.sha256
    steps_of_three, _ = runs["no-seed"]
    assert all(c.layers == () for c in steps_of_three.run.cases)  # statistics only by default
