"""Real drift on this machine's CPU, and the verdicts driftboard gives it.

Captures run in fresh processes under settings that differ (oneDNN on and off,
a lower ATEN_CPU_CAPABILITY) and under settings that do not touch the computed
cases. The expected verdicts are never copied from a run: for every case the
test recomputes the outputs itself, under both settings, and derives whether
they must be identical; the error figures are recomputed from the raw bytes
with plain numpy and Python integers.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from driftboard.core.bundle import Bundle, read_bundle
from driftboard.core.compare import Verdict, compare_runs, parse_policy
from driftboard.core.processes import driftboard_command

torch = pytest.importorskip("torch")
from driftboard.core import capture as capture_mod  # noqa: E402  (imports torch)
from driftboard.core import suite  # noqa: E402

pytestmark = pytest.mark.slow


def _capture(path: Path, *args: str, env: dict[str, str] | None = None) -> Bundle:
    forward = [f"--case={case.case_id}" for case in suite.CASES]  # training cases: tests/test_training_drift.py
    subprocess.run([*driftboard_command(), "capture", "-q", "--repeats", "2", "-o", str(path), *forward, *args],
                   check=True, capture_output=True, env={**os.environ, **(env or {})})
    return read_bundle(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    tmp = tmp_path_factory.mktemp("drift")
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    found = {
        "default": _capture(tmp / "a.driftboard", env=env),
        "default-again": _capture(tmp / "b.driftboard", "--label", "another label", env=env),
        # An allowlisted variable that changes the fingerprint, not the CPU compute.
        "unrelated-env": _capture(tmp / "c.driftboard", env={**env, "PYTORCH_NO_CUDA_MEMORY_CACHING": "1"}),
        "onednn-off": _capture(tmp / "d.driftboard", "--variant", "onednn-off", env=env),
    }
    if capture_mod.cpu_capability() != "default":
        found["cpu-default"] = _capture(tmp / "e.driftboard", "--variant", "cpu-default",
                                        env={**env, "ATEN_CPU_CAPABILITY": "default"})
    return found


def _outputs_in_fresh_process(setting: str) -> dict[tuple[str, str], bytes]:
    """Every CPU case's output bytes computed directly with torch, not through capture."""
    code = f"""
import base64, json, sys
import torch
from driftboard.core import suite
if {setting!r} == "onednn-off":
    torch.backends.mkldnn.enabled = False
out = {{}}
for case in suite.CASES:
    for dtype in suite.dtypes_for(case, "cpu"):
        with torch.no_grad():
            t = case.prepare(torch.device("cpu"), suite.TORCH_DTYPES[dtype]).forward()
        out[case.case_id + "/" + dtype] = base64.b64encode(t.contiguous().numpy().tobytes()).decode()
json.dump(out, sys.stdout)
"""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    if setting == "cpu-default":
        env["ATEN_CPU_CAPABILITY"] = "default"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return {tuple(k.split("/")): base64.b64decode(v) for k, v in json.loads(done.stdout).items()}


def _float32_ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest ULP distance by the textbook definition, one element at a time in Python integers."""

    def ordered(x: float) -> int:
        (bits,) = struct.unpack("<i", struct.pack("<f", x))
        return bits if bits >= 0 else -(bits & 0x7FFFFFFF)

    return max((abs(ordered(float(x)) - ordered(float(y))) for x, y in zip(a.ravel(), b.ravel())), default=0)


@pytest.mark.parametrize("setting", ["onednn-off", "cpu-default"])
def test_verdicts_match_an_independent_recomputation(runs: dict[str, Bundle], setting: str) -> None:
    if setting not in runs:
        pytest.skip("this CPU already runs ATen's default kernels: no lower capability to compare")
    base, cand = runs["default"], runs[setting]
    expected_base = _outputs_in_fresh_process("default")
    expected_cand = _outputs_in_fresh_process(setting)
    result = compare_runs(base.run, base.arrays, cand.run, cand.arrays, parse_policy("default"))
    changed = []
    for case in result.cases:
        case_id, device, dtype = case.key
        if case_id.startswith("rng_") or device != "cpu":
            continue
        a = base.arrays.load(base.run.case(case_id, device, dtype).output)
        b = cand.arrays.load(cand.run.case(case_id, device, dtype).output)
        # The bundles hold what torch computes under each setting...
        assert a.tobytes() == expected_base[(case_id, dtype)], case.key
        assert b.tobytes() == expected_cand[(case_id, dtype)], case.key
        # ...and the verdict says whether those differ.
        if expected_base[(case_id, dtype)] == expected_cand[(case_id, dtype)]:
            assert case.verdict is Verdict.IDENTICAL, case.key
            continue
        changed.append(case.key)
        assert case.verdict in (Verdict.WITHIN_TOLERANCE, Verdict.DRIFT), case.key
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        assert case.metrics.max_abs == pytest.approx(float(diff.max()), rel=0, abs=0)
        assert np.unravel_index(int(diff.argmax()), a.shape) == case.metrics.max_abs_index
        assert case.metrics.changed == int(np.count_nonzero(a != b))
        if dtype == "float32":
            assert case.metrics.ulp_max == _float32_ulps(a, b)
        tol = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}[dtype]
        within = np.all(diff <= tol[1] + tol[0] * np.abs(a.astype(np.float64)))
        assert case.verdict is (Verdict.WITHIN_TOLERANCE if within else Verdict.DRIFT), case.key
    assert changed, f"{setting} changed no output on this machine: the test proves nothing here"
    if setting == "onednn-off":
        # oneDNN runs torch's CPU LSTMs (DRIFT_FACTS): only LSTM cases can move.
        assert all(key[0].startswith(("lstm", "numpy_f64")) for key in changed), changed
        causes = [c for c in result.causes if "numerics.mkldnn_enabled" in c.fields]
        assert causes and all(key in causes[0].cases for key in changed)


def test_bitwise_policy_calls_every_change_drift(runs: dict[str, Bundle]) -> None:
    base, cand = runs["default"], runs["onednn-off"]
    result = compare_runs(base.run, base.arrays, cand.run, cand.arrays, parse_policy("bitwise"))
    verdicts = {c.verdict for c in result.cases}
    assert Verdict.DRIFT in verdicts and Verdict.WITHIN_TOLERANCE not in verdicts


@pytest.mark.parametrize("other", ["default-again", "unrelated-env"])
def test_settings_that_do_not_touch_the_compute_give_identical_outputs(runs: dict[str, Bundle], other: str) -> None:
    base, cand = runs["default"], runs[other]
    result = compare_runs(base.run, base.arrays, cand.run, cand.arrays)
    assert {c.verdict for c in result.cases} == {Verdict.IDENTICAL}
    assert len(result.cases) == len(base.run.cases)
    if other == "unrelated-env":
        changed = {c.key for c in result.env.changes}
        assert "env.PYTORCH_NO_CUDA_MEMORY_CACHING" in changed
        assert base.run.fingerprint_digest != cand.run.fingerprint_digest
    else:
        assert base.run.fingerprint_digest == cand.run.fingerprint_digest


def test_outputs_are_close_to_a_float64_truth(runs: dict[str, Bundle]) -> None:
    """Drift is rounding, not a wrong answer: every float32 output is near its float64 twin."""
    for name in ("default", "onednn-off"):
        bundle = runs[name]
        for case in bundle.run.cases:
            if case.dtype != "float32" or case.case_id.startswith("rng_"):
                continue
            f32 = bundle.arrays.load(case.output).astype(np.float64)
            f64 = bundle.arrays.load(bundle.run.case(case.case_id, "cpu", "float64").output)
            np.testing.assert_allclose(f32, f64, rtol=1e-4, atol=1e-5, err_msg=str(case.key))
    assert runs["default"].run.suite_version == suite.SUITE_VERSION
