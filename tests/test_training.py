"""Training cases without torch: the step comparison, the bundle and store round trips, suite versions, the seeding recipe.

Traces come from ``training_factory`` (numpy "training" whose drift starts at a
known step and doubles at a known rate); every expected step is recomputed
here from the recorded figures, never copied from the comparison.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from training_factory import first_divergent_step as _first_step
from training_factory import training_case

from driftboard.core.bundle import bundle_bytes, read_bundle
from driftboard.core.compare import Verdict, compare_runs, parse_policy
from driftboard.core.compare.text_report import case_report, junit_xml
from driftboard.core.compare.training import compare_training, fit_growth
from driftboard.core.errors import BundleError
from driftboard.core.run import MemoryArrays
from driftboard.core.seeding import missing, summary
from driftboard.db.store import Store

V1_BUNDLE = Path(__file__).parent / "data" / "suite_v1_run.driftboard"  # captured by driftboard before suite v2


# ---------------------------------------------------------------- the step comparison


def test_first_divergent_step_beyond_policy_and_growth_rate() -> None:
    arrays = MemoryArrays()
    base = training_case(arrays)
    cand = training_case(arrays, start=12, doubling=7.0, size=1e-6)
    t = compare_training(base.training, cand.training, parse_policy("default").for_dtype("float32"), "float32")
    assert t.first_bitwise_step == _first_step(base.training, cand.training) == 12
    assert t.first_bitwise_figure == "param_digest"  # the step-12 update moved; its loss was computed before it
    rtol, atol = 1.3e-6, 1e-5
    beyond = [i + 1 for i in range(50) if abs(base.training.loss[i] - cand.training.loss[i])
              > atol + rtol * abs(base.training.loss[i])]
    assert beyond and t.first_beyond_step is not None and t.first_beyond_step <= beyond[0]
    assert t.loss_growth is not None and 6.0 < t.loss_growth.doubling_steps < 8.0
    assert t.distance_growth is not None and 6.0 < t.distance_growth.doubling_steps < 8.0
    assert "training differs from step 12 (parameters)" in t.text and "doubles every" in t.text
    doc = t.to_json()
    assert doc["first_bitwise_step"] == 12 and len(doc["loss_delta"]) == 50 and doc["loss_growth"]["points"] >= 3


def test_identical_traces_and_bitwise_policy() -> None:
    arrays = MemoryArrays()
    a, b = training_case(arrays), training_case(arrays)
    t = compare_training(a.training, b.training, parse_policy("bitwise").for_dtype("float32"), "float32")
    assert t.identical and t.first_bitwise_step is None and t.first_beyond_step is None
    assert t.text == "all 50 training steps bitwise identical" and t.loss_growth is None
    moved = training_case(arrays, start=30)
    t = compare_training(a.training, moved.training, parse_policy("bitwise").for_dtype("float32"), "float32")
    assert t.first_bitwise_step == 30 and t.first_beyond_step == 30  # bitwise: the first difference is beyond


def test_growth_fit_is_least_squares_of_log2() -> None:
    steps = np.arange(1, 41, dtype=np.float64)
    delta = 3e-9 * 2.0 ** (steps / 5.0)
    delta[:9] = 0.0  # before the divergence
    growth = fit_growth(delta, 10)
    assert growth is not None and math.isclose(growth.doubling_steps, 5.0, rel_tol=1e-9)
    assert (growth.first, growth.last, growth.points) == (10, 40, 31)
    assert fit_growth(np.array([0.0, 1e-7, 0.0]), 1) is None  # too few points for a rate
    shrinking = fit_growth(1e-3 * 2.0 ** (-steps / 4.0), 1)
    assert shrinking is not None and shrinking.doubling_steps is None and shrinking.text == "halves every 4 steps"


def test_nan_loss_travels_and_is_beyond() -> None:
    arrays = MemoryArrays()
    a = training_case(arrays)
    b = replace(a, training=replace(a.training, loss=(*a.training.loss[:-1], math.nan)))
    t = compare_training(a.training, b.training, parse_policy("default").for_dtype("float32"), "float32")
    assert t.first_bitwise_step == 50 and t.first_beyond_step == 50
    assert json.dumps(t.to_json(), allow_nan=False)  # NaN is written as "nan"


# ---------------------------------------------------------------- in a run comparison, the CLI's formats


def _runs(arrays: MemoryArrays, start: int | None = 12):
    from runs_factory import make_run

    base = make_run([training_case(arrays), training_case(arrays, dtype="float64")])
    cand = make_run([training_case(arrays, start=start), training_case(arrays, dtype="float64")], run_id="candidate")
    return base, cand


def test_run_comparison_judges_final_parameters_and_reports_steps() -> None:
    arrays = MemoryArrays()
    base, cand = _runs(arrays)
    result = compare_runs(base, arrays, cand, arrays)
    moved = result.case("train_toy", "cpu", "float32")
    assert moved.verdict in (Verdict.DRIFT, Verdict.WITHIN_TOLERANCE)  # the final parameters' verdict
    assert moved.finding.startswith("final parameters: ") and moved.training.first_bitwise_step == 12
    assert "training differs from step 12" in moved.detail
    same = result.case("train_toy", "cpu", "float64")
    assert same.verdict is Verdict.IDENTICAL and same.training.identical
    doc = result.to_json()["cases"]
    assert [c["training"]["first_bitwise_step"] for c in doc] == [12, None]
    report = case_report(moved)
    assert "Training (step by step):" in report and "first bitwise difference: step 12 (param_digest)" in report
    root = ET.fromstring(junit_xml([result], "drift"))
    props = {p.get("name"): p.get("value") for p in root.iter("testcase")
             if p.get("name") == "train_toy[cpu,float32]" for p in p.iter("property")}
    assert props["first_divergent_step"] == "12" and props["training_steps"] == "50"


def test_steps_are_not_compared_when_the_batches_differ() -> None:
    arrays = MemoryArrays()
    base, cand = _runs(arrays)
    other = replace(cand.cases[0], input_digest="0" * 64)
    result = compare_runs(base, arrays, replace(cand, cases=(other, cand.cases[1])), arrays)
    case = result.case("train_toy", "cpu", "float32")
    assert case.verdict is Verdict.INPUTS_DIFFER and case.training is None


def test_compare_cli_prints_a_line_per_training_case(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from driftboard.cli import cli
    from driftboard.core.bundle import write_bundle

    arrays = MemoryArrays()
    base, cand = _runs(arrays)
    a, b = write_bundle(tmp_path / "a.driftboard", base, arrays), write_bundle(tmp_path / "b.driftboard", cand, arrays)
    out = CliRunner().invoke(cli, ["compare", str(a), str(b), "--fail-on", "never"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "Training (step by step; the verdict is on the final parameters):" in text
    assert "train_toy/cpu/float32:" in text and "training differs from step 12 (parameters)" in text
    assert "train_toy/cpu/float64: identical; all 50 training steps bitwise identical" in text
    jsonschema = pytest.importorskip("jsonschema")
    out = CliRunner().invoke(cli, ["compare", str(a), str(b), "--fail-on", "never", "--json"])
    doc = json.loads(out.output)
    schema = json.loads((Path(__file__).parents[1] / "core" / "schemas" / "compare.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(doc)
    cases = {c["case_id"] + "/" + c["dtype"]: c for c in doc["comparisons"][0]["cases"]}
    assert cases["train_toy/float32"]["training"]["first_bitwise_step"] == 12
    assert cases["train_toy/float64"]["training"]["loss_growth"] is None


# ---------------------------------------------------------------- bundle


def test_bundle_round_trip_and_checks(tmp_path: Path) -> None:
    from runs_factory import make_run

    arrays = MemoryArrays()
    run = make_run([training_case(arrays, start=5, full=True), training_case(arrays, "train_other", "float64")])
    bundle = read_bundle(bundle_bytes(run, arrays))
    assert bundle.run.cases == run.cases
    assert bundle.run.case("train_toy").layers == (("weight", run.case("train_toy").output),)
    manifest = json.loads(_manifest(bundle_bytes(run, arrays)))
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "core" / "bundle.schema.json").read_text())
    jsonschema.validate(manifest, schema)
    broken = json.loads(json.dumps(manifest))
    broken["cases"][0]["training"]["param_digests"][-1] = "0" * 64
    with pytest.raises(BundleError, match=r"cases\[0\]\.output: expected the final parameters"):
        read_bundle(_with_manifest(bundle_bytes(run, arrays), broken))
    broken = json.loads(json.dumps(manifest))
    broken["cases"][0]["training"]["grad_norm"].pop()
    with pytest.raises(BundleError, match=r"cases\[0\]\.training\.grad_norm: 49 steps, but loss has 50"):
        read_bundle(_with_manifest(bundle_bytes(run, arrays), broken))
    broken = json.loads(json.dumps(manifest))
    broken["cases"][0]["training"]["loss"][3] = "NaN!"
    with pytest.raises(BundleError, match=r"training\.loss\[3\]: expected a number"):
        read_bundle(_with_manifest(bundle_bytes(run, arrays), broken))


def test_a_bundle_without_training_reads_as_before() -> None:
    bundle = read_bundle(V1_BUNDLE)
    assert bundle.run.suite_version == 1 and all(c.training is None for c in bundle.run.cases)
    assert all("training" not in case for case in json.loads(_manifest(V1_BUNDLE.read_bytes()))["cases"])


def _manifest(data: bytes) -> str:
    import io
    import zipfile

    return zipfile.ZipFile(io.BytesIO(data)).read("manifest.json").decode()


def _with_manifest(data: bytes, manifest: dict) -> bytes:
    import io
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for info in source.infolist():
            body = json.dumps(manifest).encode() if info.filename == "manifest.json" else source.read(info)
            zf.writestr(info.filename, body)
    return out.getvalue()


# ---------------------------------------------------------------- store, suite versions, goldens


def _v2_of(v1_bundle, arrays: MemoryArrays, run_id: str, start: int | None = None):  # noqa: ANN001
    """A suite-v2 run of the same machine: the v1 run's forward cases (unchanged since v1) plus training cases."""
    arrays.blobs.update(v1_bundle.arrays.blobs)
    cases = (*v1_bundle.run.cases, training_case(arrays, start=start), training_case(arrays, dtype="float64"))
    return replace(v1_bundle.run, run_id=run_id, suite_version=2, cases=cases,
                   created_at="2026-11-30T12:00:00+00:00")


def test_store_keeps_traces_and_v1_runs_lose_nothing_when_v2_runs_arrive(fresh_db: str) -> None:
    v1 = read_bundle(V1_BUNDLE)
    arrays = MemoryArrays()
    first, second = _v2_of(v1, arrays, "v2-first"), _v2_of(v1, arrays, "v2-second", start=12)
    with Store(fresh_db) as store:
        store.ingest(V1_BUNDLE.read_bytes())
        store.set_golden(v1.run.run_id)
        before = store.load_run(v1.run.run_id)[0]
        store.ingest(bundle_bytes(first, arrays))
        store.ingest(bundle_bytes(second, arrays))
        # Nothing of the v1 run is lost or changed, and its golden stays its own.
        after, v1_arrays = store.load_run(v1.run.run_id)
        assert after == before and after.cases == v1.run.cases and after.suite_version == 1
        for case in after.cases:
            np.testing.assert_array_equal(v1_arrays.load(case.output), v1.arrays.load(case.output))
        assert store.golden_for(v1.run.run_id).run_id == v1.run.run_id
        # A v2 run reads back whole, traces included; no v2 golden until one is set, and that one is separate.
        stored, stored_arrays = store.load_run("v2-second")
        assert stored.cases == second.cases and stored.case("train_toy").training == second.case("train_toy").training
        assert store.golden_for("v2-second") is None
        store.set_golden("v2-first")
        assert {(g.key.suite_version, g.run_id) for g in store.goldens()} == {(1, v1.run.run_id), (2, "v2-first")}
        assert store.golden_for(v1.run.run_id).run_id == v1.run.run_id
        assert store.golden_for("v2-second").run_id == "v2-first"
        # v2 against the v1 golden: the cases both have, the new ones named.
        across = store.compare(v1.run.run_id, "v2-second")
        assert {c.case_id for c in across.cases} == {c.case_id for c in v1.run.cases}
        assert all(c.verdict is Verdict.IDENTICAL for c in across.cases)
        assert {k[0] for k in across.new_cases} == {"train_toy"} and "new in v2, not compared: train_toy" in across.notes[0]
        # v2 against the v2 golden: steps compared, as from the bundles.
        stored_cmp = store.compare("v2-first", "v2-second")
        direct = compare_runs(first, arrays, second, arrays)
        assert stored_cmp.case("train_toy").training == direct.case("train_toy").training
        assert stored_cmp.case("train_toy").training.first_bitwise_step == 12
        np.testing.assert_array_equal(stored_arrays.load(stored.case("train_toy").output),
                                      arrays.load(second.case("train_toy").output))


# ---------------------------------------------------------------- the seeding recipe


def test_seeding_recipe_says_what_is_missing() -> None:
    complete = {"seed": 0, "seeded": {"random": True, "numpy": True, "torch": True, "cuda": False},
                "cuda_available": False, "cudnn_deterministic": True, "cudnn_benchmark": False,
                "deterministic_algorithms": True, "cublas_workspace_config": ":4096:8"}
    assert missing(complete) == []
    assert summary({"seeding": complete}) == "seed 0: random, numpy, torch seeded; complete"
    lacking = {**complete, "seeded": {"random": False, "numpy": True, "torch": True, "cuda": False},
               "cuda_available": True, "cudnn_benchmark": True, "deterministic_algorithms": False,
               "cublas_workspace_config": None}
    assert missing(lacking) == ["random not seeded", "cuda not seeded", "cudnn.benchmark is on",
                                "use_deterministic_algorithms is off", "CUBLAS_WORKSPACE_CONFIG is unset"]
    assert "incomplete: random not seeded" in summary({"seeding": lacking})
    assert summary({}).startswith("not recorded")


# ---------------------------------------------------------------- charts


def test_charts_draw_both_loss_curves_and_the_growth_on_a_log_axis() -> None:
    from driftboard.dashboard import charts

    arrays = MemoryArrays()
    base, cand = _runs(arrays)
    case = compare_runs(base, arrays, cand, arrays).case("train_toy", "cpu", "float32")
    figures = charts.case_figures(case, arrays, arrays, base.case("train_toy"), cand.case("train_toy"))
    names = [name for name, _ in figures.figures]
    assert names[:2] == [charts.TRAINING_LOSS_CHART, charts.TRAINING_DELTA_CHART]
    loss, delta = figures.figures[0][1], figures.figures[1][1]
    assert [t.name for t in loss.data] == ["baseline", "candidate"] and len(loss.data[0].y) == 50
    assert delta.layout.yaxis.type == "log"
    assert [s.x0 for s in delta.layout.shapes][0] == 12  # the first divergent step, marked
    assert "first divergent step 12" in delta.layout.annotations[0].text
    assert min(delta.data[0].x) >= 12  # no |Δloss| before the divergence
    same = compare_runs(base, arrays, cand, arrays).case("train_toy", "cpu", "float64")
    shown = charts.case_figures(same, arrays, arrays, base.case("train_toy", "cpu", "float64"),
                                cand.case("train_toy", "cpu", "float64"))
    assert [name for name, _ in shown.figures] == [charts.TRAINING_LOSS_CHART]  # identical: no |Δ| to draw


# ---------------------------------------------------------------- dashboard


def test_compare_and_run_pages_show_the_steps_and_the_seeding_recipe(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from test_dashboard_pages import ENV_VAR, open_page, said

    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    v1 = read_bundle(V1_BUNDLE)
    arrays = MemoryArrays()
    recipe = {"seed": 0, "seeded": {"random": True, "numpy": True, "torch": True, "cuda": False},
              "cuda_available": False, "cudnn_deterministic": False, "cudnn_benchmark": False,
              "deterministic_algorithms": False, "cublas_workspace_config": None}
    first = _v2_of(v1, arrays, "v2-first")
    second = replace(_v2_of(v1, arrays, "v2-second", start=12), settings={**v1.run.settings, "seeding": recipe})
    with Store(url) as store:
        store.ingest(V1_BUNDLE.read_bytes())
        store.ingest(bundle_bytes(first, arrays))
        store.ingest(bundle_bytes(second, arrays))
    monkeypatch.setenv(ENV_VAR, url)
    try:
        at = open_page("compare", baseline="v2-first", candidate="v2-second")
        assert said(at, "**Training, step by step:** training differs from step 12 (parameters)")
        assert len(at.get("plotly_chart")) >= 2  # the loss curves and |Δ| on a log axis
        at = open_page("run", run="v2-second")
        assert said(at, "Seeding recipe: seed 0: random, numpy, torch seeded; incomplete: cudnn.deterministic is off")
        at = open_page("run", run=v1.run.run_id)
        assert said(at, "Seeding recipe: not recorded")
    finally:
        import streamlit as st

        from driftboard.db.store import close_shared_stores

        close_shared_stores()
        st.cache_resource.clear()
        st.cache_data.clear()
