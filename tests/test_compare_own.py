"""Comparing own cases: verdicts, the layer table, the first divergent module, the smallest passing tolerance.

Synthetic runs with known differences (``own_factory``): every figure the
comparison reports is recomputed here from the arrays with plain numpy and
Python integers. The command line's JSON is validated against its schema.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from own_factory import chain, own_case, stats_of
from runs_factory import bump_ulps, default_suite, make_run

from driftboard.cli import cli
from driftboard.core import documents
from driftboard.core.bundle import write_bundle
from driftboard.core.compare import Verdict, compare_runs, parse_policy
from driftboard.core.compare.tolerance import round_up
from driftboard.core.run import MemoryArrays

X = np.random.RandomState(3).uniform(-1, 1, (8, 16)).astype(np.float32)


def pair(base: list, cand: list, arrays: MemoryArrays, policy: str = "default"):
    result = compare_runs(make_run(base, run_id="base"), arrays, make_run(cand, run_id="cand"), arrays,
                          parse_policy(policy))
    return result


def ulps32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ULP distances of same-sign float32 values, with Python integers."""
    ia, ib = a.astype(np.float32).view(np.int32).astype(np.int64), b.astype(np.float32).view(np.int32).astype(np.int64)
    assert np.all((ia < 0) == (ib < 0))
    return np.abs(ia - ib)


# ---------------------------------------------------------------- module calls


def test_identical_runs_are_identical_without_a_divergent_module() -> None:
    arrays = MemoryArrays()
    case = own_case(arrays, "m", [("", X)], chain(X, 6))
    result = pair([case], [case], arrays)
    (c,) = result.cases
    assert c.verdict is Verdict.IDENTICAL and c.kind == "own" and c.first_divergent_module is None
    assert all(m.identical for m in c.modules) and len(c.modules) == 6
    assert c.passing.ulps == 0 and c.passing.rtol == 0.0


def test_statistics_mode_names_the_first_divergent_call_and_every_changed_one() -> None:
    arrays = MemoryArrays()
    before, after = chain(X, 8), chain(X, 8, bump={3: 1e-3})
    result = pair([own_case(arrays, "m", [("", before[-1][3])], before)],
                  [own_case(arrays, "m", [("", after[-1][3])], after)], arrays)
    (c,) = result.cases
    changed = [(m.name, m.call) for m in c.modules if not m.identical]
    expected = [(n, k) for (n, k, _, a), (_, _, _, b) in zip(before, after) if a.tobytes() != b.tobytes()]
    assert changed == expected and expected[0] == ("layers.1.act", 1)
    assert c.first_divergent_module.label == "layers.1.act (Tanh), call 1"
    assert "first divergent module layers.1.act (Tanh), call 1" in c.detail
    for m, (_, _, _, a), (_, _, _, b) in zip(c.modules, before, after):
        if m.identical:
            continue
        sa, sb = stats_of(a), stats_of(b)
        assert m.change.l2_rel == pytest.approx(abs(sb.l2 - sa.l2) / sa.l2, rel=1e-9)
        assert m.change.rel_error == m.change.l2_rel and not m.change.elementwise
        assert m.change.max_change == abs(sb.max - sa.max) and m.change.min_change == abs(sb.min - sa.min)
        assert m.change.mean_change == pytest.approx(abs(sb.mean - sa.mean), rel=1e-9, abs=1e-15)


def test_full_mode_compares_module_tensors_element_by_element() -> None:
    arrays = MemoryArrays()
    before, after = chain(X, 4), chain(X, 4, bump={2: 2e-4})
    result = pair([own_case(arrays, "m", [("", before[-1][3])], before, full=True)],
                  [own_case(arrays, "m", [("", after[-1][3])], after, full=True)], arrays)
    m = result.cases[0].first_divergent_module
    a, b = before[2][3].astype(np.float64), after[2][3].astype(np.float64)
    assert m.change.elementwise and m.label == "layers.1.linear (Linear), call 1"
    assert m.change.max_abs == np.abs(b - a).max()
    assert m.change.ulp_max == int(ulps32(before[2][3], after[2][3]).max())
    assert m.change.rel_error == pytest.approx(math.sqrt(((b - a) ** 2).sum() / (a ** 2).sum()), rel=1e-12)


def test_calls_on_one_side_only_are_reported() -> None:
    arrays = MemoryArrays()
    calls = chain(X, 3)
    extra = [*calls[:2], ("extra", 1, "Dropout", calls[1][3]), calls[2]]
    c = pair([own_case(arrays, "m", [("", X)], calls)], [own_case(arrays, "m", [("", X)], extra)], arrays).cases[0]
    assert [(m.name, m.change.note) for m in c.modules if not m.identical] == [("extra", "only in the candidate")]
    assert c.verdict is Verdict.IDENTICAL and "(the output is unaffected)" in c.detail


# ---------------------------------------------------------------- outputs and the smallest tolerance


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_smallest_passing_tolerance_is_exactly_the_boundary(dtype: str) -> None:
    arrays = MemoryArrays()
    a = X.astype(dtype)
    b = bump_ulps(a, dtype, np.arange(a.size).reshape(a.shape) % 7, np.s_[:])
    result = pair([own_case(arrays, "m", [("", a)], dtype=dtype)], [own_case(arrays, "m", [("", b)], dtype=dtype)],
                  arrays)
    passing = result.cases[0].passing
    fa, fb = a.astype(np.float64), b.astype(np.float64)
    atol = {"float32": 1e-5, "float64": 1e-7}[dtype]
    assert passing.exact and passing.atol == atol and passing.ulps == 6
    over = np.abs(fb - fa) - atol
    assert passing.rtol == pytest.approx(max(0.0, float((over / np.abs(fa))[over > 0].max(initial=0))), rel=1e-12)
    base, cand = make_run([own_case(arrays, "m", [("", a)], dtype=dtype)]), make_run(
        [own_case(arrays, "m", [("", b)], dtype=dtype)], run_id="c")
    for text in passing.policies:
        assert compare_runs(base, arrays, cand, arrays, parse_policy(text)).cases[0].verdict is Verdict.WITHIN_TOLERANCE
    assert compare_runs(base, arrays, cand, arrays, parse_policy("ulp:5")).cases[0].verdict is Verdict.DRIFT
    if passing.rtol:
        tighter = f"rtol={passing.rtol * 0.999:.17g},atol={atol!r}"
        assert compare_runs(base, arrays, cand, arrays, parse_policy(tighter)).cases[0].verdict is Verdict.DRIFT


def test_round_up_keeps_the_bound_passing() -> None:
    for value in (1.234e-6, 9.99e-4, 1e-3, 3.0, 0.12345):
        assert value <= round_up(value) <= value * 1.1
    assert round_up(1.2e-6) == 1.2e-6


def test_a_suite_case_reports_its_smallest_tolerance_too() -> None:
    arrays = MemoryArrays()
    base = default_suite(arrays)
    cand = default_suite(arrays, change=lambda cid, dt, v: bump_ulps(v, dt, 3) if cid == "linear_10_5" and dt == "float32" else v)
    c = pair(base, cand, arrays).case("linear_10_5", "cpu", "float32")
    assert c.kind == "suite" and c.passing.ulps == 3 and c.to_json()["smallest_passing"]["ulps"] == 3


def test_outputs_kept_as_statistics_are_judged_from_them() -> None:
    arrays = MemoryArrays()
    big = np.linspace(-2, 2, 4000, dtype=np.float32)
    moved = big.copy()
    moved[-1] += np.float32(0.5)  # the maximum moves: some element moved that far, proven
    tiny = bump_ulps(big, "float32", 1, np.s_[1:2])  # one unsampled element, one ULP
    base = own_case(arrays, "m", [("", big)], whole_outputs=False)
    drift = pair([base], [own_case(arrays, "m", [("", moved)], whole_outputs=False)], arrays).cases[0]
    assert drift.verdict is Verdict.DRIFT and "judged from statistics" in drift.finding and drift.metrics is None
    assert not drift.passing.exact and drift.passing.ulps >= 1
    within = pair([base], [own_case(arrays, "m", [("", tiny)], whole_outputs=False)], arrays).cases[0]
    assert within.verdict is Verdict.WITHIN_TOLERANCE and "statistics within" in within.finding
    assert pair([base], [own_case(arrays, "m", [("", tiny)], whole_outputs=False)], arrays, "bitwise").cases[0].verdict \
        is Verdict.DRIFT


def test_several_outputs_the_worst_decides_and_each_is_reported() -> None:
    arrays = MemoryArrays()
    a = own_case(arrays, "m", [("['logits']", X), ("['aux']", X[:2])])
    b = own_case(arrays, "m", [("['logits']", X), ("['aux']", X[:2] + 1)])
    c = pair([a], [b], arrays).cases[0]
    assert c.verdict is Verdict.DRIFT and c.finding.startswith("output ['aux']: ")
    assert [(o.path, o.change.identical) for o in c.outputs] == [("['logits']", True), ("['aux']", False)]


@pytest.mark.parametrize(("change", "verdict", "words"), [
    ({"outputs": [("['other']", X)]}, Verdict.SHAPE_MISMATCH, "the outputs' structure differs (['a'], ['other'])"),
    ({"outputs": [("['a']", X[:3])]}, Verdict.SHAPE_MISMATCH, "shape [8, 16] → [3, 16]"),
    ({"outputs": [("['a']", X)], "dtype": "float64", "key_dtype": "float32"}, Verdict.DTYPE_MISMATCH,
     "dtype float32 → float64"),
    ({"error": "RuntimeError: CUDA out of memory"}, Verdict.ERROR, "failed on the candidate: RuntimeError: CUDA"),
    ({"inputs": "other"}, Verdict.INPUTS_DIFFER, "inputs differ: compute not judged"),
    ({"autocast": "bfloat16"}, Verdict.INPUTS_DIFFER, "autocast differs (none → bfloat16)"),
])
def test_what_keeps_a_case_from_being_judged(change, verdict, words) -> None:
    arrays = MemoryArrays()
    outputs = change.pop("outputs", [("['a']", X)])
    base = own_case(arrays, "m", [("['a']", X)])
    cand = own_case(arrays, "m", outputs, **change)
    c = pair([base], [cand], arrays).cases[0]
    assert c.verdict is verdict and words in c.finding, c.finding


def test_weights_that_differ_are_never_drift_and_say_why_when_torchs_stream_made_them() -> None:
    arrays = MemoryArrays()
    base = own_case(arrays, "m", [("", X)], chain(X, 2), weights_rng=True)
    cand = own_case(arrays, "m", [("", X + 5)], chain(X, 2, {0: 1.0}), weights="w2", weights_rng=True)
    result = pair([base], [cand], arrays, "bitwise")
    c = result.cases[0]
    assert c.verdict is Verdict.INPUTS_DIFFER and c.differs == ("weights",)
    assert c.finding.startswith("weights differ: compute not judged; the factory draws its weights from torch's "
                                "random stream (seeded default init)")
    assert not result.fails("drift") and result.fails("any-change")
    plain = pair([own_case(arrays, "m", [("", X)])], [own_case(arrays, "m", [("", X)], weights="w2")], arrays).cases[0]
    assert plain.finding == "weights differ: compute not judged"


def test_the_case_tolerance_replaces_the_policy_for_that_case() -> None:
    arrays = MemoryArrays()
    moved = bump_ulps(X, "float32", 3)
    result = pair([own_case(arrays, "m", [("", X)], tolerance="ulp:4")], [own_case(arrays, "m", [("", moved)])], arrays,
                  "bitwise")
    c = result.cases[0]
    assert c.verdict is Verdict.WITHIN_TOLERANCE and c.case_tolerance == "ulp:4"
    assert "judged under the case's own tolerance ulp:4" in c.detail


def test_own_cases_match_whatever_the_suite_and_a_suite_case_is_not_an_own_case() -> None:
    arrays = MemoryArrays()
    own = own_case(arrays, "m", [("", X)])
    base = make_run([own], run_id="a", suite_version=1)
    cand = make_run([own, *default_suite(arrays)[:1]], run_id="b", suite_version=2)
    result = compare_runs(base, arrays, cand, arrays)
    assert result.case("m").verdict is Verdict.IDENTICAL and not result.suites_match
    clash = next(c for c in default_suite(arrays) if c.dtype == "float32")  # a suite case, an own case of its name
    mine = own_case(arrays, clash.case_id, [("", X)])
    c = pair([mine], [clash], arrays).case(clash.case_id, "cpu", clash.dtype)
    assert c.verdict is Verdict.INPUTS_DIFFER and c.differs == ("model",)


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def own_bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("own_cli")
    arrays = MemoryArrays()
    before, after = chain(X, 6), chain(X, 6, bump={2: 1e-3})
    base = [own_case(arrays, "encoder", [("", before[-1][3])], before), own_case(arrays, "same", [("", X)], chain(X, 2)),
            *default_suite(arrays)[:2]]
    cand = [own_case(arrays, "encoder", [("", after[-1][3])], after), own_case(arrays, "same", [("", X)], chain(X, 2)),
            *default_suite(arrays)[:2]]
    return (write_bundle(root / "base.driftboard", make_run(base, run_id="base"), arrays),
            write_bundle(root / "cand.driftboard", make_run(cand, run_id="cand"), arrays))


def test_compare_json_carries_the_layer_table_and_matches_its_schema(own_bundles, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    done = CliRunner().invoke(cli, ["compare", *map(str, own_bundles), "--json", "--case", "encoder",
                                    "--junit", str(tmp_path / "j.xml")])
    assert done.exit_code == 1, done.output
    doc = json.loads(done.output)
    schema = json.loads(documents.schema_path("driftboard.compare").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []
    cases = {c["case_id"]: c for c in doc["comparisons"][0]["cases"]}
    enc = cases["encoder"]
    assert enc["kind"] == "own" and enc["verdict"] == "drift"
    assert enc["first_divergent_module"]["label"] == "layers.1.linear (Linear), call 1"
    assert [m["identical"] for m in enc["modules"]] == [True, True, False, False, False, False]
    assert enc["smallest_passing"]["exact"] is True and enc["first_divergent_layer"] == "layers.1.linear (Linear), call 1"
    suite_case = next(c for c in doc["comparisons"][0]["cases"] if c["kind"] == "suite")
    assert suite_case["modules"] == [] and suite_case["first_divergent_module"] is None
    (report,) = doc["comparisons"][0]["case_reports"]
    assert "Module calls (execution order): 6, 4 differ; first divergent: layers.1.linear (Linear), call 1" in report["text"]
    assert "layers.1.linear (Linear), call 1: L2 " in report["text"] and "<- first divergent" in report["text"]
    failure = ET.parse(tmp_path / "j.xml").getroot().find(".//testcase[@name='encoder[cpu,float32]']/failure")
    assert failure is not None and "first divergent module layers.1.linear (Linear), call 1" in failure.get("message")


def test_compare_table_and_report_json_show_own_cases(own_bundles, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    table = CliRunner().invoke(cli, ["compare", *map(str, own_bundles)])
    assert "first divergent module layers.1.linear (Linear), call 1" in " ".join(table.output.replace("│", " ").split())
    out = tmp_path / "r.json"
    done = CliRunner().invoke(cli, ["report", *map(str, own_bundles), "-o", str(tmp_path / "r.html"), "--json", str(out)])
    assert done.exit_code in (0, 1), done.output
    doc = json.loads(out.read_text())
    schema = json.loads(documents.schema_path("driftboard.comparison_report").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []
    assert any(c["modules"] for c in doc["comparisons"][0]["cases"])
