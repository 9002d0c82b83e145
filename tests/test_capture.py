"""Capture end to end on this machine's CPU: real torch, real bundle, real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from driftboard.cli import cli
from driftboard.core.bundle import read_bundle
from driftboard.core.processes import driftboard_command

torch = pytest.importorskip("torch")
from driftboard.core import capture as capture_mod  # noqa: E402  (imports torch)
from driftboard.core import suite, suite_training  # noqa: E402

DRIFTBOARD = driftboard_command()


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real capture of the default suite through the CLI, shared by the tests below."""
    out = tmp_path_factory.mktemp("capture") / "run.driftboard"
    done = subprocess.run([*DRIFTBOARD, "capture", "--label", "ci box", "--tag", "t1", "--note", "hello",
                           "-o", str(out)], capture_output=True, text=True, check=True)
    assert "cases on cpu" in done.stdout
    return out


def test_capture_records_every_case_with_its_outputs(captured: Path) -> None:
    bundle = read_bundle(captured)
    run = bundle.run
    expected = {(c.case_id, "cpu", d) for c in suite.CASES for d in suite.dtypes_for(c, "cpu")}
    trained = {(c.case_id, "cpu", d) for c in suite_training.TRAINING_CASES for d in suite_training.dtypes_for("cpu")}
    assert {case.key for case in run.cases} == expected | trained
    assert {case.key for case in run.cases if case.training is not None} == trained
    assert run.suite_id == suite.SUITE_ID and run.suite_version == suite.SUITE_VERSION
    assert (run.label, run.tags, run.note) == ("ci box", ("t1",), "hello")
    assert all(case.error is None and case.repeats == (1 if case.training else 3) for case in run.cases)
    assert run.settings["intra_op_threads"] == run.fingerprint["numerics"]["intra_op_threads"]
    assert bundle.size <= 2_000_000


def test_captured_outputs_equal_a_direct_forward_pass(captured: Path) -> None:
    """The bundle holds exactly what the model computes in this process (same settings)."""
    bundle = read_bundle(captured)
    for case_id in ("linear_10_5", "mlp_kaiming", "lstm_batch_first"):
        case = bundle.run.case(case_id, "cpu", "float32")
        with torch.no_grad():
            direct = suite.case_by_id(case_id).prepare(torch.device("cpu"), torch.float32).forward().numpy()
        np.testing.assert_array_equal(bundle.arrays.load(case.output), direct)


def test_sequence_cases_keep_every_timestep_and_layers(captured: Path) -> None:
    run = read_bundle(captured).run
    seq = run.case("lstm_seq_regression", "cpu", "float64")
    assert seq.time_axis == 0 and seq.output.shape == (10, 1, 1)
    assert [name for name, _ in seq.layers] == ["lstm"]
    assert run.case("lstm_2layer").layers[0][1].shape == (2, 64, 20)  # h_n of both layers
    mlp = run.case("mlp_kaiming", "cpu", "float32")
    assert [name for name, _ in mlp.layers] == ["fc1", "fc2", "fc3"]


def test_rng_probes_match_torch_directly(captured: Path) -> None:
    bundle = read_bundle(captured)
    case = bundle.run.case("rng_randn")
    torch.manual_seed(42)
    expected = torch.cat([torch.randn(10, 1, 5).reshape(-1), torch.randn(4096)]).numpy()
    np.testing.assert_array_equal(bundle.arrays.load(case.output), expected)


def test_show_prints_summary(captured: Path) -> None:
    result = CliRunner().invoke(cli, ["show", str(captured)])
    assert result.exit_code == 0, result.output
    assert "lstm_2layer" in result.output and "ci box" in result.output
    as_json = CliRunner().invoke(cli, ["show", "--json", str(captured)])
    assert json.loads(as_json.output)["schema_version"] == 2  # 2: cases of the team's own models


def test_variants_apply_and_record_settings() -> None:
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    try:
        settings = capture_mod.apply_variant("onednn-off", False)
        assert settings["mkldnn_enabled"] is False and settings["variant"] == "onednn-off"
        settings = capture_mod.apply_variant("threads-1", False)
        assert settings["intra_op_threads"] == 1
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn


def test_unknown_variant_and_device_are_one_line_errors(tmp_path: Path) -> None:
    for args, words in ((["--variant", "turbo"], "unknown variant 'turbo'"),
                        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"],
                         "is not available here"),
                        (["--variant", "cpu-avx2"] if os.environ.get("ATEN_CPU_CAPABILITY") != "avx2"
                         else ["--variant", "cpu-default"], "needs ATEN_CPU_CAPABILITY"),
                        (["--case", "nope"], "unknown case 'nope'")):
        done = subprocess.run([*DRIFTBOARD, "capture", "-q", *args, "-o", str(tmp_path / "x.driftboard")],
                              capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("driftboard: error: ")
        assert words in done.stderr
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


def test_failing_case_is_recorded_not_fatal() -> None:
    broken = suite.Case("broken", "raises", lambda d, t: (_ for _ in ()).throw(RuntimeError("no kernel\nfor this")))
    result = capture_mod.run_case(broken, "cpu", "float32", 2, capture_mod.MemoryArrays())
    assert result.output is None and result.error == "RuntimeError: no kernel for this"


def test_repeat_nondeterminism_is_detected() -> None:
    """A case whose repeats differ is flagged, not hidden."""
    calls = iter(range(100))

    def prepare(device, dtype):
        return suite.Prepared(lambda: torch.full((3,), float(next(calls))), None, "0" * 64, "0" * 64)

    flaky = suite.Case("flaky", "changes every call", prepare)
    result = capture_mod.run_case(flaky, "cpu", "float32", 3, capture_mod.MemoryArrays())
    assert result.repeat_identical is False
    stable = suite.Case("stable", "same every call", lambda d, t: suite.Prepared(lambda: torch.ones(3), None,
                                                                                  "0" * 64, "0" * 64))
    assert capture_mod.run_case(stable, "cpu", "float32", 3, capture_mod.MemoryArrays()).repeat_identical


@pytest.mark.slow
def test_sweep_writes_one_run_per_variant(tmp_path: Path) -> None:
    done = subprocess.run([*DRIFTBOARD, "capture", "--sweep", "--repeats", "1", "--case", "linear_10_5",
                           "--case", "lstm_seq_regression", "-o", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    runs = [read_bundle(p).run for p in sorted(tmp_path.glob("*.driftboard"))]
    variants = {r.variant for r in runs}
    assert {"default", "threads-1", "onednn-off", "deterministic"} <= variants
    for run in runs:
        assert f"variant:{run.variant}" in run.tags
        if run.variant.startswith("cpu-"):
            assert run.settings["cpu_capability"] == run.variant[4:]
        if run.variant == "onednn-off":
            assert run.settings["mkldnn_enabled"] is False
        if run.variant == "deterministic":
            assert run.settings["deterministic_algorithms"] is True


def test_plan_on_a_gpu_machine_adds_half_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a GPU here, the device list is faked: every case on every device and supported dtype."""
    monkeypatch.setattr(suite, "devices", lambda: ["cpu", "cuda"])
    planned = capture_mod.plan(capture_mod.CaptureOptions())
    cuda = {(case.case_id, dtype) for case, device, dtype in planned if device == "cuda"}
    assert ("linear_1024", "bfloat16") in cuda and ("lstm_2layer", "float16") in cuda
    assert ("rng_randn", "float32") in cuda and ("rng_randn", "float16") not in cuda
    assert {d for _, d, _ in planned} == {"cpu", "cuda"}
    only_cuda = capture_mod.plan(capture_mod.CaptureOptions(devices=("cuda",), case_ids=("linear_10_5",)))
    assert [(c.case_id, d, t) for c, d, t in only_cuda] == [
        ("linear_10_5", "cuda", t) for t in ("float32", "float64", "float16", "bfloat16")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert capture_mod.sweep_variants()[-2:] == ["tf32-on", "tf32-off"]
