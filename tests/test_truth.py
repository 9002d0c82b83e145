"""Error against the float64 truth without torch: measuring, words and thresholds, the bundle, the store, the report.

The capture side (a real float64 pass, recomputed here with numpy) is in
tests/test_truth_capture.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from db_factory import make_run

from driftboard.cli import cli
from driftboard.core.bundle import bundle_bytes, manifest_of, read_bundle
from driftboard.core.compare import compare_runs
from driftboard.core.compare.document import compare_document
from driftboard.core.compare.policy import DEFAULT_POLICY
from driftboard.core.compare.text_report import case_report
from driftboard.core.compare.truth import (
    MISSING,
    NO_MODULE,
    TruthRatio,
    judge_truth,
    measure,
    parse_truth_ratio,
    round_to,
)
from driftboard.core.errors import BundleError, PolicyError, StoreError
from driftboard.core.run import ModuleCall, TruthError
from driftboard.db.store import Store
from driftboard.db.store.run_extras import TRUTH


def truth(rel_l2: float | None, *, max_abs: float = 1e-7, error: str | None = None) -> TruthError:
    if error is not None:
        return TruthError(error=error)
    return TruthError(max_abs=max_abs, max_rel=2e-7, rel_l2=rel_l2, ulp_max=3, seconds=0.01)


def with_truth(run, values: dict[str, TruthError | None]):
    """``run`` with its float32 cases given the truth named by case id (others: none)."""
    return replace(run, cases=tuple(replace(c, truth=values.get(c.case_id)) if c.dtype == "float32" else c
                                    for c in run.cases))


# ---------------------------------------------------------------- measuring


def test_round_to_bfloat16_is_nearest_even_from_float64_not_through_float32() -> None:
    # 1 + 2**-8 + 2**-30: above the bfloat16 midpoint between 1 and 1+2**-7 by a hair that float32 rounding loses
    # (float32 gives exactly the midpoint 1 + 2**-8, which then rounds to even: 1.0). The right answer is 1+2**-7.
    value = np.array([1 + 2**-8 + 2**-30, 1 + 2**-8, -(1 + 3 * 2**-8), 3.0e38 * 2, np.nan])
    bits = round_to(value, "bfloat16")
    widened = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    assert widened[0] == 1 + 2**-7
    assert widened[1] == 1.0  # an exact midpoint rounds to even
    assert widened[2] == -(1 + 2**-6)  # a midpoint with an odd neighbour below rounds up to the even one
    assert math.isinf(widened[3]) and math.isnan(widened[4])


def test_measure_counts_ulps_in_the_case_dtype_and_relative_figures_against_the_truth() -> None:
    exact = np.array([[1.0, -2.0, 0.5, 0.0]])
    out = exact.astype(np.float32).copy()
    out.view(np.uint32)[0, 1] += 2  # two ULPs away from the truth
    out[0, 3] = np.float32(1e-9)  # the truth is 0: counts for max abs, not for max rel
    found = measure([(out, "float32", exact)], seconds=0.5)
    err1 = float(np.float32(-2.0) - out[0, 1])
    assert found.ulp_max == int(np.float32(1e-9).view(np.int32))  # from 0 to 1e-9: every float in between
    assert found.max_abs == pytest.approx(max(abs(err1), 1e-9), rel=1e-6)
    assert found.max_rel == pytest.approx(abs(err1) / 2.0, rel=1e-9)
    assert found.rel_l2 == pytest.approx(math.hypot(err1, 1e-9) / math.sqrt(1 + 4 + 0.25), rel=1e-6)
    assert (found.seconds, found.nonfinite, found.error) == (0.5, 0, None)


def test_measure_leaves_non_finite_elements_out_and_counts_them() -> None:
    exact = np.array([1.0, 2.0, np.inf])
    out = np.array([1.0, np.nan, np.inf], dtype=np.float32)
    found = measure([(out, "float32", exact)])
    assert found.nonfinite == 1 and found.max_abs == 0.0 and found.ulp_max == 0


# ---------------------------------------------------------------- words and thresholds


@pytest.mark.parametrize(("base", "cand", "standing", "words"), [
    (1e-7, 1e-7, "as close", "as close to the truth"),
    (2e-7, 1e-7, "closer", "closer to the truth (×0.5)"),
    (1e-7, 1.6e-7, "slightly further", "slightly further from the truth (×1.6)"),
    (1e-7, 2e-7, "slightly further", "slightly further from the truth (×2)"),
    (1e-7, 3.1e-7, "further", "further from the truth (×3.1)"),
    (0.0, 0.0, "as close", "as close to the truth"),
    (0.0, 1e-7, "further", "further from the truth (the baseline matches it exactly)"),
])
def test_the_ratio_of_relative_l2_errors_is_put_in_words(base: float, cand: float, standing: str, words: str) -> None:
    run, _ = make_run(1, 1)
    old = run.case("linear_10_5", "cpu", "float32")
    found = judge_truth(replace(old, truth=truth(base)), replace(old, truth=truth(cand)))
    assert (found.standing, found.words) == (standing, words)


def test_thresholds_are_overridable() -> None:
    run, _ = make_run(1, 1)
    old = run.case("linear_10_5", "cpu", "float32")
    a, b = replace(old, truth=truth(1e-7)), replace(old, truth=truth(1.6e-7))
    assert judge_truth(a, b, TruthRatio(2.0, 4.0)).words == "as close to the truth (×1.6)"
    assert judge_truth(a, replace(old, truth=truth(4.5e-7)), TruthRatio(2.0, 4.0)).standing == "further"
    assert judge_truth(a, replace(old, truth=truth(0.4e-7)), TruthRatio(2.0, 4.0)).standing == "closer"
    assert parse_truth_ratio("1.5,3") == TruthRatio(1.5, 3.0)
    assert parse_truth_ratio("truth_ratio=1,2") == TruthRatio(1.0, 2.0)
    for bad in ("2,1", "0.5,2", "1", "a,b", "1,inf"):
        with pytest.raises(PolicyError, match="invalid truth ratio"):
            parse_truth_ratio(bad)


def test_missing_truth_says_why() -> None:
    run, _ = make_run(1, 1)
    old = run.case("linear_10_5", "cpu", "float32")
    found = judge_truth(replace(old, truth=None), replace(old, truth=truth(1e-7)))
    assert (found.standing, found.words) == ("unknown", f"no float64 truth on the baseline: {MISSING}")
    failed = judge_truth(replace(old, truth=truth(1e-7)), replace(old, truth=truth(None, error="the float64 pass failed: X")))
    assert failed.words == "no float64 truth on the candidate: the float64 pass failed: X"
    # not applicable: float64 cases, RNG probes, cases that failed
    assert judge_truth(run.case("linear_10_5", "cpu", "float64"), run.case("linear_10_5", "cpu", "float64")) is None
    probe = replace(old, truth=TruthError(error=NO_MODULE))
    assert judge_truth(probe, probe) is None
    assert judge_truth(replace(old, error="RuntimeError: x"), old) is None


def test_the_run_summary_counts_the_cases_further_from_the_truth() -> None:
    base, arrays = make_run(1, 1)
    cand, cand_arrays = make_run(2, 1, drift={"linear_1024": 1})
    ids = sorted({c.case_id for c in base.cases if c.dtype == "float32"})
    old = with_truth(base, {i: truth(1e-7) for i in ids})
    values = {i: truth(1e-7) for i in ids} | {ids[0]: truth(3.1e-7), ids[1]: truth(1.6e-7), ids[2]: truth(0.5e-7)}
    new = with_truth(cand, values)
    result = compare_runs(old, arrays, new, cand_arrays)
    n = len(ids)
    assert result.truth.words == (f"the candidate is further from the truth in 2 of {n} cases "
                                  f"(1 further, 1 slightly further, {n - 3} as close, 1 closer)")
    assert result.case(ids[0]).truth.words == "further from the truth (×3.1)"
    assert result.case(ids[0], dtype="float64").truth is None
    # the same with thresholds that call ×3.1 slightly further
    wide = compare_runs(old, arrays, new, cand_arrays, truth_ratio=TruthRatio(1.0, 4.0))
    assert wide.truth.further == 2 and wide.truth.counts["further"] == 0
    assert "slightly further from the truth (×3.1)" in case_report(wide.case(ids[0]))
    # a baseline captured before truth existed
    older = compare_runs(base, arrays, new, cand_arrays)
    assert older.truth.words == f"no float64 truth: {MISSING}"
    assert older.case(ids[0]).truth.words == f"no float64 truth on the baseline: {MISSING}"


def test_truth_is_in_the_compare_document_and_matches_its_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from driftboard.core.documents import schema_path

    def schema(name: str) -> dict:
        return json.loads(schema_path(name).read_text(encoding="utf-8"))

    base, arrays = make_run(1, 1)
    cand, cand_arrays = make_run(2, 1)
    result = compare_runs(with_truth(base, {"linear_10_5": truth(1e-7)}), arrays,
                          with_truth(cand, {"linear_10_5": truth(2.5e-7)}), cand_arrays)
    from driftboard.dashboard.html_report import comparison_report_html

    page = comparison_report_html([result])
    assert "Against the float64 truth" in page and "further from the truth (×2.5)" in page
    doc = json.loads(json.dumps(compare_document([result], DEFAULT_POLICY, "drift"), allow_nan=False))
    jsonschema.Draft202012Validator(schema("driftboard.compare")).validate(doc)
    manifest = json.loads(json.dumps(manifest_of(with_truth(base, {"linear_10_5": truth(1e-7)}))))
    jsonschema.Draft202012Validator(schema("driftboard-run")).validate(manifest)
    case = next(c for c in doc["comparisons"][0]["cases"] if c["case_id"] == "linear_10_5" and c["dtype"] == "float32")
    assert case["truth"]["standing"] == "further" and case["truth"]["ratio"] == pytest.approx(2.5)
    assert case["truth"]["baseline"]["rel_l2"] == 1e-7
    assert doc["comparisons"][0]["truth"]["further"] == 1


def test_compare_prints_the_truth_column_and_summary_and_takes_truth_ratio(tmp_path) -> None:
    base, arrays = make_run(1, 1)
    cand, cand_arrays = make_run(2, 1)
    a, b = tmp_path / "a.driftboard", tmp_path / "b.driftboard"
    a.write_bytes(bundle_bytes(with_truth(base, {"linear_10_5": truth(1e-7)}), arrays))
    b.write_bytes(bundle_bytes(with_truth(cand, {"linear_10_5": truth(1.6e-7)}), cand_arrays))
    result = CliRunner().invoke(cli, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "vs truth" in result.output and "slightly further ×1.6" in result.output
    assert "Float64 truth: the candidate is further from the truth in 1 of 1 cases" in result.output
    wide = CliRunner().invoke(cli, ["compare", str(a), str(b), "--truth-ratio", "2,4"])
    assert "as close ×1.6" in wide.output and "further from the truth in 0 of 1 cases" in wide.output
    bad = CliRunner().invoke(cli, ["compare", str(a), str(b), "--truth-ratio", "3,1"])
    assert bad.exit_code != 0 and "invalid truth ratio" in bad.output


# ---------------------------------------------------------------- the bundle


def test_truth_travels_in_the_bundle_and_older_bundles_have_none() -> None:
    run, arrays = make_run(1, 1)
    run = with_truth(run, {"linear_10_5": truth(1e-7), "rng_randn": TruthError(error=NO_MODULE)})
    back = read_bundle(bundle_bytes(run, arrays)).run
    assert back.cases == run.cases
    assert back.case("linear_10_5").truth == truth(1e-7)
    manifest = manifest_of(run)
    assert "truth" not in next(c for c in manifest["cases"] if c["case_id"] == "lstm_2layer")
    assert read_bundle(bundle_bytes(make_run(1, 1)[0], arrays)).run.case("linear_10_5").truth is None


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("rel_l2", -1.0, "expected a finite non-negative number"),
    ("max_abs", "big", "expected int or float"),
    ("ulp_max", 1.5, "expected int"),
    ("error", "x" * 1001, "longer than 1000"),
])
def test_a_damaged_truth_in_a_bundle_is_refused_by_field(field: str, value, problem: str) -> None:
    from driftboard.core.bundle import run_from_manifest

    run, _ = make_run(1, 1)
    manifest = json.loads(json.dumps(manifest_of(with_truth(run, {"linear_10_5": truth(1e-7)}))))
    index = next(i for i, c in enumerate(manifest["cases"]) if c.get("truth"))
    manifest["cases"][index]["truth"][field] = value
    with pytest.raises(BundleError, match=problem) as caught:
        run_from_manifest(manifest)
    assert f"cases[{index}].truth.{field}" in str(caught.value)


def test_per_call_truth_travels_with_an_own_case() -> None:
    from own_factory import chain, own_case

    run, arrays = make_run(1, 1)
    x = np.random.RandomState(5).uniform(-1, 1, (6, 10)).astype(np.float32)
    case = own_case(arrays, "encoder", [("", chain(x, 3)[-1][3])], chain(x, 3))
    modules = tuple(replace(m, truth_rel_error=1e-7 * (i + 1)) for i, m in enumerate(case.own.modules))
    case = replace(case, own=replace(case.own, modules=modules), truth=truth(3e-7))
    back = read_bundle(bundle_bytes(replace(run, cases=(*run.cases, case)), arrays)).run.case("encoder")
    assert [m.truth_rel_error for m in back.own.modules] == [m.truth_rel_error for m in modules]
    assert back.truth == truth(3e-7)
    assert ModuleCall("a", 1, "Linear").truth_rel_error is None


# ---------------------------------------------------------------- the store


def test_truth_survives_ingest_and_load_run(fresh_db: str) -> None:
    run, arrays = make_run(1, 1)
    run = with_truth(run, {"linear_10_5": truth(1e-7), "lstm_2layer": truth(None, error="the float64 pass failed: X"),
                           "rng_randn": TruthError(error=NO_MODULE)})
    data = bundle_bytes(run, arrays)
    bundle = read_bundle(data)
    with Store(fresh_db) as store:
        store.ingest(data)
        back, _ = store.load_run(run.run_id)
        assert back.cases == bundle.run.cases
        assert back.settings == bundle.run.settings and TRUTH.key not in back.settings
        assert store.case_results(run.run_id) == bundle.run.cases
        # a run without any truth is stored as before: no key in its settings
        plain, plain_arrays = make_run(2, 1)
        store.ingest(bundle_bytes(plain, plain_arrays))
        assert all(c.truth is None for c in store.load_run(plain.run_id)[0].cases)


def test_a_bundle_may_not_bring_the_stores_truth_key(fresh_db: str) -> None:
    run, arrays = make_run(1, 1)
    data = bundle_bytes(replace(run, settings={**run.settings, TRUTH.key: []}), arrays)
    with Store(fresh_db) as store, pytest.raises(BundleError, match="reserved"):
        store.ingest(data)


def test_a_damaged_stored_truth_is_a_one_line_store_error(sqlite_url: str) -> None:
    from sqlalchemy import update

    from driftboard.db.models import RunRow
    from driftboard.db.session import make_engine, transaction

    run, arrays = make_run(1, 1)
    run = with_truth(run, {"linear_10_5": truth(1e-7)})
    with Store(sqlite_url) as store:
        store.ingest(bundle_bytes(run, arrays))
        engine = make_engine(sqlite_url)
        try:
            with transaction(engine, write=True) as session:
                session.execute(update(RunRow).values(settings={**run.settings, TRUTH.key: [{"rel_l2": -1}]}))
        finally:
            engine.dispose()
        with pytest.raises(StoreError, match="float64 truth of a stored run is corrupt") as caught:
            store.load_run(run.run_id)
        assert "\n" not in str(caught.value)


@pytest.mark.postgres
def test_a_pusher_stores_truth_through_the_push_function(postgres_url: str) -> None:
    from pg_cluster import migrate_and_grant, scratch_cluster

    run, arrays = make_run(4, 1)
    data = bundle_bytes(with_truth(run, {"linear_10_5": truth(1e-7), "mlp_kaiming": truth(2e-7)}), arrays)
    bundle = read_bundle(data)
    with scratch_cluster(postgres_url) as cluster:
        migrate_and_grant(cluster)
        with Store(cluster.urls["member"]) as store:
            assert store.ingest(data).created
        with Store(cluster.urls["app"]) as store:
            assert store.load_run(bundle.run.run_id)[0].cases == bundle.run.cases


def test_each_module_call_sets_both_machines_error_against_the_truth_side_by_side() -> None:
    from own_factory import chain, own_case

    from driftboard.dashboard.tables import TRUTH_COLUMN, module_frame

    x = np.random.RandomState(5).uniform(-1, 1, (6, 10)).astype(np.float32)

    def run_with(run_id: str, scale: float, bump: float | None):
        arrays = make_run(1, 1)[1]
        calls = chain(x, 3, {1: bump} if bump else None)
        case = own_case(arrays, "encoder", [("", calls[-1][3])], calls)
        modules = tuple(replace(m, truth_rel_error=scale * (i + 1)) for i, m in enumerate(case.own.modules))
        case = replace(case, own=replace(case.own, modules=modules), truth=truth(scale * len(modules)))
        base = make_run(1, 1)[0]
        return replace(base, run_id=run_id, cases=(case,)), arrays

    (a, arrays_a), (b, arrays_b) = run_with("a", 1e-7, None), run_with("b", 4e-7, 1e-3)
    result = compare_runs(a, arrays_a, b, arrays_b)
    case = result.case("encoder")
    assert [(m.baseline_truth, m.candidate_truth) for m in case.modules][0] == (1e-7, 4e-7)
    assert case.truth.words == "further from the truth (×4)"
    assert "vs float64 truth 1e-07 → 4e-07" in case_report(case)
    frame = module_frame(case.modules, case.first_divergent_module)
    assert TRUTH_COLUMN in frame.columns and "→" in frame[TRUTH_COLUMN].iloc[0]
    doc = case.to_json()
    assert doc["modules"][0]["candidate_truth_rel_error"] == 4e-7
