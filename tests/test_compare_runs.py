"""compare_runs: every verdict, matching on the case key, lazy loading, JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from runs_factory import NeverLoad, bump_ulps, default_suite, make_case, make_run

from driftboard.core.compare import RunComparison, Verdict, compare_runs, parse_policy
from driftboard.core.run import MemoryArrays

OUT = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 12) + np.float32(0.1)


def compare_one(old_output: np.ndarray | None, new_output: np.ndarray | None, policy: str = "default", **new_kwargs) -> RunComparison:
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "linear_10_5", old_output)])
    case_kwargs = {k: v for k, v in new_kwargs.items() if k != "fingerprint_overrides"}
    new = make_run(
        [make_case(arrays, "linear_10_5", new_output, **case_kwargs)],
        run_id="candidate",
        fingerprint_overrides=new_kwargs.get("fingerprint_overrides"),
    )
    return compare_runs(old, arrays, new, arrays, parse_policy(policy))


def only_verdict(result: RunComparison) -> Verdict:
    (case,) = result.cases
    return case.verdict


def test_identical() -> None:
    result = compare_one(OUT, OUT.copy())
    case = result.cases[0]
    assert case.verdict is Verdict.IDENTICAL and case.detail == "bitwise identical"
    assert case.metrics is not None and case.metrics.ulp_max == 0 and case.metrics.n == 24
    assert result.worst is Verdict.IDENTICAL


def test_within_tolerance_and_drift_follow_the_policy() -> None:
    moved = bump_ulps(OUT, "float32", 4, where=(0, slice(0, 3)))
    assert only_verdict(compare_one(OUT, moved)) is Verdict.WITHIN_TOLERANCE
    assert only_verdict(compare_one(OUT, moved, "ulp:4")) is Verdict.WITHIN_TOLERANCE
    drift = compare_one(OUT, moved, "ulp:3")
    assert only_verdict(drift) is Verdict.DRIFT
    metrics = drift.cases[0].metrics
    assert metrics is not None and metrics.mismatched == 3 and metrics.ulp_max == 4
    assert "3 / 24 mismatched (12.5%) under ulp <= 3" in drift.cases[0].detail
    assert only_verdict(compare_one(OUT, moved, "bitwise")) is Verdict.DRIFT


def test_tolerance_near_zero_uses_rtol_atol_but_reports_ulps() -> None:
    tiny = np.array([1e-9, 2e-9], dtype=np.float32)
    moved = tiny * np.float32(1.001)  # thousands of ULPs, relative error 1e-3, far below atol
    result = compare_one(tiny, moved)
    assert only_verdict(result) is Verdict.WITHIN_TOLERANCE
    assert result.cases[0].metrics is not None and result.cases[0].metrics.ulp_max > 1000


def test_nonfinite_mismatch() -> None:
    broken = OUT.copy()
    broken[1, 5] = np.nan
    case = compare_one(OUT, broken).cases[0]
    assert case.verdict is Verdict.NONFINITE_MISMATCH
    assert case.metrics is not None and case.metrics.nonfinite_index == (1, 5)
    same_nan = compare_one(broken, broken.copy())
    assert only_verdict(same_nan) is Verdict.IDENTICAL


def test_shape_and_dtype_mismatch() -> None:
    assert only_verdict(compare_one(OUT, OUT.reshape(12, 2))) is Verdict.SHAPE_MISMATCH
    result = compare_one(OUT, OUT.astype(np.float64), output_dtype="float64")
    assert only_verdict(result) is Verdict.DTYPE_MISMATCH
    assert result.cases[0].detail == "dtype float32 → float64"


def test_inputs_differ_is_not_judged() -> None:
    result = compare_one(OUT, OUT + 1, weights="weights-v2")
    case = result.cases[0]
    assert case.verdict is Verdict.INPUTS_DIFFER and case.metrics is None
    assert "weight digests differ" in case.detail
    assert any(c.rule == "inputs_differ" for c in result.causes)


def test_error() -> None:
    case = compare_one(OUT, None, error="RuntimeError: oneDNN\nsomething").cases[0]
    assert case.verdict is Verdict.ERROR
    assert case.detail == "failed on the candidate: RuntimeError: oneDNN something"


def test_missing_on_either_side() -> None:
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "linear_10_5", OUT), make_case(arrays, "mlp_kaiming", OUT)])
    new = make_run(
        [make_case(arrays, "linear_10_5", OUT), make_case(arrays, "linear_10_5", OUT, dtype="float64", output_dtype="float32")],
        run_id="candidate",
    )
    result = compare_runs(old, arrays, new, arrays)
    verdicts = {c.key: c.verdict for c in result.cases}
    assert verdicts == {
        ("linear_10_5", "cpu", "float32"): Verdict.IDENTICAL,
        ("linear_10_5", "cpu", "float64"): Verdict.MISSING_IN_BASELINE,
        ("mlp_kaiming", "cpu", "float32"): Verdict.MISSING_IN_CANDIDATE,
    }
    assert [c.key for c in result.cases] == sorted(verdicts)  # sorted by key
    assert result.worst is Verdict.MISSING_IN_CANDIDATE


def test_two_versions_of_one_suite_compare_the_cases_both_have_and_name_the_new_ones() -> None:
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "linear_10_5", OUT)])
    new = make_run([make_case(arrays, "linear_10_5", OUT), make_case(arrays, "train_new", OUT)], run_id="candidate",
                   suite_version=2)
    for result, new_side in ((compare_runs(old, arrays, new, arrays), "candidate"),
                             (compare_runs(new, arrays, old, arrays), "baseline")):
        assert [(c.case_id, c.verdict) for c in result.cases] == [("linear_10_5", Verdict.IDENTICAL)]
        assert result.new_cases == (("train_new", "cpu", "float32"),)
        assert not result.suites_match and not result.fails("drift")
        assert "the cases both runs have are compared; new in v2, not compared: train_new" in result.notes[0]
        assert result.to_json()["new_cases"] == [["train_new", "cpu", "float32"]], new_side


def test_different_suites_match_nothing() -> None:
    arrays = MemoryArrays()
    old = make_run([make_case(arrays, "linear_10_5", OUT)])
    new = replace(make_run([make_case(arrays, "linear_10_5", OUT)], run_id="candidate"), suite_id="other")
    result = compare_runs(old, arrays, new, arrays)
    assert [c.verdict for c in result.cases] == [Verdict.MISSING_IN_BASELINE, Verdict.MISSING_IN_CANDIDATE]
    assert not result.suites_match and result.new_cases == ()
    assert "suites differ (baseline default v1, candidate other v1)" in result.notes[0]


def test_equal_digests_never_load_arrays() -> None:
    arrays = MemoryArrays()
    layers = [("layer0", OUT), ("layer1", OUT * 2)]
    cases = default_suite(arrays)
    cases.append(make_case(arrays, "mlp_layers", OUT, layers=layers))
    old = make_run(cases)
    new = make_run(cases, run_id="candidate", fingerprint_overrides={"numerics.intra_op_threads": 1})
    result = compare_runs(old, NeverLoad(), new, NeverLoad())
    assert result.counts()[Verdict.IDENTICAL] == len(cases)
    assert result.case("mlp_layers").layers[1].identical


def test_layers_and_first_divergent_layer() -> None:
    arrays = MemoryArrays()
    layers = [("embed", OUT), ("hidden", OUT * 2), ("head", OUT * 3)]
    moved = [("embed", OUT), ("hidden", bump_ulps(OUT * 2, "float32", 7)), ("head", OUT * 3 + 1)]
    old = make_run([make_case(arrays, "mlp_kaiming", OUT, layers=layers)])
    new = make_run([make_case(arrays, "mlp_kaiming", OUT + 1, layers=moved)], run_id="candidate")
    case = compare_runs(old, arrays, new, arrays).cases[0]
    assert case.first_divergent_layer == "hidden"
    assert [layer.identical for layer in case.layers] == [True, False, False]
    assert case.layers[1].ulp_max == 7
    assert case.layer_max_abs[2] == ("head", pytest.approx(1.0))
    assert "first divergent layer hidden" in case.detail


def test_nondeterminism_is_flagged_per_machine() -> None:
    result = compare_one(OUT, OUT.copy(), repeat_identical=False)
    case = result.cases[0]
    assert case.verdict is Verdict.IDENTICAL
    assert (case.baseline_repeat_identical, case.candidate_repeat_identical) == (True, False)
    assert result.nondeterministic == [case]
    assert "nondeterministic on the candidate" in case.detail
    assert any(c.rule == "nondeterministic_candidate" for c in result.causes)


def test_time_axis_profile() -> None:
    arrays = MemoryArrays()
    seq = np.ones((3, 5, 2), dtype=np.float32)
    moved = seq.copy()
    moved[:, 4, :] += np.float32(0.5)
    old = make_run([make_case(arrays, "lstm_2layer", seq, time_axis=1)])
    new = make_run([make_case(arrays, "lstm_2layer", moved, time_axis=1)], run_id="candidate")
    metrics = compare_runs(old, arrays, new, arrays).cases[0].metrics
    assert metrics is not None and metrics.timestep_max_abs == (0, 0, 0, 0, 0.5)


def test_counts_severity_and_json() -> None:
    arrays = MemoryArrays()

    def change(case_id: str, dtype: str, stored: np.ndarray) -> np.ndarray:
        if case_id == "lstm_2layer" and dtype == "float32":
            out = stored.copy()
            out[0, 0, 0] = np.inf
            return out
        return bump_ulps(stored, dtype, 2) if case_id.startswith("linear") else stored

    old = make_run(default_suite(arrays))
    new = make_run(default_suite(arrays, change=change), run_id="candidate")
    result = compare_runs(old, arrays, new, arrays, parse_policy("ulp:1"))
    counts = result.counts()
    assert list(counts) == sorted(Verdict, key=lambda v: v.severity)
    assert counts[Verdict.NONFINITE_MISMATCH] == 1 and counts[Verdict.DRIFT] == 6
    assert result.worst is Verdict.NONFINITE_MISMATCH
    payload = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert payload["worst"] == "non-finite mismatch"
    assert payload["counts"]["drift"] == 6
    assert len(payload["cases"]) == 30 and payload["policy"]["text"] == "ulp:1"
    assert [c["verdict"] for c in payload["cases"]].count("identical") == 23


def test_verdict_order_and_fail_on() -> None:
    order = [v.value for v in sorted(Verdict, key=lambda v: v.severity)]
    assert order[:2] == ["identical", "within tolerance"] and order[-1] == "error"
    assert not Verdict.WITHIN_TOLERANCE.crosses("drift") and Verdict.WITHIN_TOLERANCE.crosses("any-change")
    assert not Verdict.INPUTS_DIFFER.crosses("drift")
    assert Verdict.MISSING_IN_CANDIDATE.crosses("drift") and Verdict.DRIFT.crosses("drift")
    assert not Verdict.IDENTICAL.crosses("any-change") and not Verdict.ERROR.crosses("never")
    assert str(Verdict.NONFINITE_MISMATCH) == "non-finite mismatch"


def test_a_differing_layer_under_identical_outputs_is_said_once_without_contradiction() -> None:
    out = np.arange(6, dtype=np.float32)
    layer = np.linspace(0, 1, 6).astype(np.float32)
    old_arrays, new_arrays = MemoryArrays(), MemoryArrays()
    old = make_run([make_case(old_arrays, "lstm_seq_first", out, layers=[("lstm", layer)], repeat_identical=False)])
    new = make_run([make_case(new_arrays, "lstm_seq_first", out.copy(), layers=[("lstm", bump_ulps(layer, "float32", 1))])],
                   run_id="candidate")
    [case] = compare_runs(old, old_arrays, new, new_arrays, parse_policy("bitwise")).cases
    assert case.verdict is Verdict.IDENTICAL
    notes = case.notes()
    assert len(notes) == len(set(notes))
    assert notes == ["bitwise identical", "first divergent layer lstm (the output is unaffected)",
                     "nondeterministic on the baseline (3 repeats differed)"]
    assert case.detail == "; ".join(notes)
