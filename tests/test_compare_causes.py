"""Likely-cause rules and drift rates by field value."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from runs_factory import bump_ulps, default_suite, fingerprint, make_case, make_run

from driftboard.core.compare import FIELD_RULES, LikelyCause, RunComparison, compare_runs, drift_rates
from driftboard.core.run import MemoryArrays


def scenario(changes: dict[str, object], drifts: Callable[[str, str], bool], extra_cases: bool = False) -> RunComparison:
    """Default-suite runs; the candidate's fingerprint differs by ``changes`` and
    the cases for which ``drifts(case_id, dtype)`` moved by 2 ULPs."""
    arrays = MemoryArrays()

    def change(case_id: str, dtype: str, stored: np.ndarray) -> np.ndarray:
        return bump_ulps(stored, dtype, 2) if drifts(case_id, dtype) else stored

    old_cases = default_suite(arrays)
    new_cases = default_suite(arrays, change=change)
    if extra_cases:
        out = np.ones((4, 4), dtype=np.float32)
        for device_cases, moved in ((old_cases, out), (new_cases, bump_ulps(out, "float32", 9))):
            device_cases.append(make_case(arrays, "lstm_2layer", moved, device="cuda"))
            device_cases.append(make_case(arrays, "linear_1024", moved, device="cuda"))
    old = make_run(old_cases)
    new = make_run(new_cases, run_id="candidate", fingerprint_overrides=changes)
    return compare_runs(old, arrays, new, arrays)


def by_rule(result: RunComparison) -> dict[str, LikelyCause]:
    return {c.rule: c for c in result.causes}


def test_onednn_disabled_and_only_lstm_drifted() -> None:
    result = scenario({"numerics.mkldnn_enabled": False}, lambda c, d: c.startswith("lstm") and d == "float32")
    cause = result.causes[0]
    assert cause.rule == "onednn" and cause.confidence == "high"
    assert cause.fields == ("numerics.mkldnn_enabled",)
    assert cause.evidence.startswith("oneDNN enabled yes → no (numerics.mkldnn_enabled); only lstm cpu cases changed (4 of 15: ")
    assert {key[0] for key in cause.cases} == {"lstm_2layer", "lstm_batch_first", "lstm_cell_loop", "lstm_seq_regression"}
    assert "only_dtype" not in by_rule(result)  # a confident field rule needs no pattern rule beside it


def test_numpy_f64_input_is_an_lstm_case() -> None:
    """Seen on this machine: oneDNN off moves the LSTM fed from numpy float64 too."""
    result = scenario({"numerics.mkldnn_enabled": False}, lambda c, d: c.startswith(("lstm", "numpy_f64")))
    cause = by_rule(result)["onednn"]
    assert cause.confidence == "high" and ("numpy_f64_input", "cpu", "float64") in cause.cases
    assert "only lstm cpu cases changed (15 of 15" in cause.evidence


def test_onednn_with_other_drift_is_medium() -> None:
    result = scenario({"numerics.mkldnn_enabled": False}, lambda c, d: c.startswith(("lstm", "rng")))
    cause = by_rule(result)["onednn"]
    assert cause.confidence == "medium" and "and 6 other cases" in cause.evidence


def test_threads_changed_blas_heavy_cases_drift() -> None:
    result = scenario({"numerics.intra_op_threads": 1}, lambda c, d: c in ("linear_1024", "mlp_kaiming"))
    cause = by_rule(result)["threads"]
    assert cause.confidence == "high"
    assert "intra-op threads 2 → 1 (numerics.intra_op_threads); only lstm/linear/mlp cpu cases changed" in (cause.evidence)
    assert "onednn" not in by_rule(result)


def test_cpu_capability_changed() -> None:
    result = scenario({"torch.cpu_capability": "AVX2", "cpu.isa.avx512f": False}, lambda c, d: c.startswith(("linear", "lstm")))
    cause = by_rule(result)["cpu_kernels"]
    assert cause.confidence == "high"
    assert cause.fields == ("torch.cpu_capability", "cpu.isa.avx512f")
    assert "ATen CPU capability AVX512 → AVX2" in cause.evidence


def test_torch_version_is_broad() -> None:
    result = scenario({"torch.version": "2.6.0+cpu"}, lambda c, d: True)
    rules = by_rule(result)
    assert rules["torch_build"].confidence == "medium"
    assert rules["rng"].confidence == "medium"  # the rng cases are only 6 of the 30 that drifted
    assert len(rules["torch_build"].cases) == 30


def test_gpu_and_tf32_rules_look_at_cuda_cases() -> None:
    result = scenario({"gpu.driver": "580.1", "numerics.cudnn_allow_tf32": False}, lambda c, d: False, extra_cases=True)
    rules = by_rule(result)
    assert rules["gpu_stack"].confidence == "high"
    assert {k[1] for k in rules["gpu_stack"].cases} == {"cuda"}
    assert rules["tf32"].confidence == "high"  # every drifted case is float32, the TF32 rule's scope
    assert "cuDNN TF32 yes → no" in rules["tf32"].evidence


def test_environment_identical_but_outputs_differ() -> None:
    result = scenario({"identity.hostname": "box-b"}, lambda c, d: c == "rng_randn")
    rules = by_rule(result)
    assert set(rules) == {"same_environment"}
    cause = rules["same_environment"]
    assert "nondeterminism or hidden state" in cause.evidence and cause.confidence == "medium"
    assert len(cause.cases) == 3


def test_environment_differs_but_nothing_drifted() -> None:
    result = scenario({"numerics.intra_op_threads": 1, "identity.hostname": "box-b"}, lambda c, d: False)
    assert [c.rule for c in result.causes] == ["no_drift"]
    assert result.causes[0].fields == ("numerics.intra_op_threads",)
    assert result.causes[0].cases == ()


def test_only_one_dtype_drifted() -> None:
    result = scenario({}, lambda c, d: d == "bfloat16")
    cause = by_rule(result)["only_dtype"]
    assert cause.title == "Only bfloat16 cases changed"
    assert "10 of 10 bfloat16 cases changed" in cause.evidence and "none of 20 cases on other dtypes" in cause.evidence


def test_unclaimed_numerics_change_falls_to_the_catch_all() -> None:
    result = scenario({"env.SOME_NUMERICS_VAR": "1"}, lambda c, d: c == "linear_10_5")
    cause = by_rule(result)["other_fields"]
    assert cause.confidence == "low" and cause.fields == ("env.SOME_NUMERICS_VAR",)


def test_causes_are_sorted_by_confidence_and_json_ready() -> None:
    result = scenario({"torch.version": "2.6.0", "numerics.mkldnn_enabled": False}, lambda c, d: c.startswith("lstm"))
    levels = [c.confidence for c in result.causes]
    assert levels == sorted(levels, key=["high", "medium", "low"].index)
    payload = result.causes[0].to_json()
    assert set(payload) == {"rule", "title", "evidence", "fields", "cases", "confidence"}


def test_rules_are_data() -> None:
    ids = [rule.id for rule in FIELD_RULES]
    assert len(ids) == len(set(ids))
    onednn = next(rule for rule in FIELD_RULES if rule.id == "onednn")
    assert onednn.matches("numerics.mkldnn_enabled") and not onednn.matches("numerics.cudnn_enabled")
    gpu = next(rule for rule in FIELD_RULES if rule.id == "gpu_stack")
    assert gpu.matches("gpu.devices[3].name") and gpu.covers(("lstm_2layer", "cuda:1", "float32"))


def test_drift_rates_single_out_the_field_that_tracks_drift() -> None:
    observations = []
    for i in range(12):
        onednn = i % 2 == 0
        fp = fingerprint(**{"numerics.mkldnn_enabled": onednn, "numerics.intra_op_threads": 1 + i % 3, "identity.hostname": f"box-{i}"})
        observations.append((fp, not onednn))
    rates = drift_rates(observations)
    top = rates[0]
    assert top.key == "numerics.mkldnn_enabled" and top.separation == 1.0
    assert [(v.value, v.runs, v.drifted, v.rate) for v in top.values] == [(False, 6, 6, 1.0), (True, 6, 0, 0.0)]
    threads = next(r for r in rates if r.key == "numerics.intra_op_threads")
    assert threads.separation < 1.0 and sum(v.runs for v in threads.values) == 12
    assert all(not r.key.startswith("identity.") for r in rates)  # numerics fields only
    assert rates[-1].separation == 0.0
    assert top.to_json()["values"][0]["rate"] == 1.0


def test_drift_rates_count_absent_fields() -> None:
    with_flag = fingerprint(**{"numerics.flush_denormal": True})
    rates = {r.key: r for r in drift_rates([(with_flag, True), (fingerprint(), False)])}
    values = {v.value: v.rate for v in rates["numerics.flush_denormal"].values}
    assert values == {True: 1.0, None: 0.0}
