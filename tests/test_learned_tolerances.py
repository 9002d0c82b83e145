"""Learned tolerances: ``--policy repeats`` (the baseline's own noise) and ``--policy fleet`` (accepted runs)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from db_factory import make_bundle
from db_factory import make_run as stored_run
from runs_factory import bump_ulps, default_suite, make_run

from driftboard.core.bundle import bundle_bytes, read_bundle, write_bundle
from driftboard.core.compare import Verdict, compare_runs, parse_policy
from driftboard.core.compare.learned import repeat_spread
from driftboard.core.errors import PolicyError
from driftboard.core.run import MemoryArrays, RepeatSpread
from driftboard.db.store import Store

KEY = ("linear_10_5", "cpu", "float32")


# ---------------------------------------------------------------- policy text


@pytest.mark.parametrize("text,kind,factor,runs", [
    ("repeats", "repeats", 2.0, 3), ("repeats:factor=1.5", "repeats", 1.5, 3), ("fleet", "fleet", 2.0, 3),
    ("FLEET: factor=3, runs=5", "fleet", 3.0, 5),
])
def test_learned_policies_parse(text: str, kind: str, factor: float, runs: int) -> None:
    policy = parse_policy(text)
    assert (policy.kind, policy.factor, policy.min_runs) == (kind, factor, runs)
    assert parse_policy(str(policy)) == policy


@pytest.mark.parametrize("text,problem", [
    ("fleet:factor=0.5", "factor must be a finite number of at least 1"),
    ("fleet:runs=0", "runs must be a positive integer"),
    ("repeats:runs=3", "unknown setting 'runs=3' for repeats"),
    ("fleet:factor=2,factor=3", "factor given twice"),
    ("fleet:factor=nan", "factor must be a finite number"),
])
def test_bad_learned_policy_is_one_line(text: str, problem: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert problem in str(info.value) and "\n" not in str(info.value)


def test_bad_policy_on_the_command_line_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run, arrays = stored_run(0, 0)
    path = write_bundle(tmp_path / "a.driftboard", run, arrays)
    code, _, err = run_cli(capsys, path, path, "--policy", "fleet:factor=x")
    assert code == 2 and "factor must be a number, got 'x'" in err and err.count("\n") == 1


# ---------------------------------------------------------------- the repeat spread at capture


def test_repeat_spread_measures_every_repeat_against_the_first() -> None:
    first = np.array([0.5, -1.0, 2.0, 0.0], dtype=np.float32)
    near = bump_ulps(first, "float32", 3, 1)
    far = bump_ulps(first, "float32", 1, 2)
    found = repeat_spread(first, [near, far], "float32")
    ulp_at_1, ulp_at_2 = float(np.spacing(np.float32(1.0))), float(np.spacing(np.float32(2.0)))
    assert found == RepeatSpread(max(3 * ulp_at_1, ulp_at_2), max(3 * ulp_at_1, ulp_at_2 / 2), 3)
    assert repeat_spread(first, [first.copy()], "float32") == RepeatSpread(0.0, 0.0, 0)
    bf16 = (first.view(np.uint32) >> 16).astype(np.uint16)
    assert repeat_spread(bf16, [bf16 + np.uint16(1) * (np.arange(4) == 0)], "bfloat16").ulps == 1


def test_repeat_spread_round_trips_and_older_bundles_have_none(tmp_path: Path) -> None:
    run, arrays = stored_run(0, 0)
    spread = RepeatSpread(1e-7, 2e-7, 3)
    cases = tuple(replace(c, repeat_identical=False, repeat_spread=spread) if c.key == KEY else c for c in run.cases)
    back = read_bundle(bundle_bytes(replace(run, cases=cases), arrays)).run
    assert back.case(*KEY).repeat_spread == spread
    assert read_bundle(bundle_bytes(run, arrays)).run.case(*KEY).repeat_spread is None


# ---------------------------------------------------------------- --policy repeats


def noisy_pair(spread: RepeatSpread | None, ulps: int) -> tuple:  # (baseline, arrays, candidate, arrays)
    """A baseline whose linear_10_5 repeats differed by ``spread``; a candidate ``ulps`` away at one element."""
    def moved(case_id: str, dtype: str, stored: np.ndarray) -> np.ndarray:
        return bump_ulps(stored, dtype, ulps, (0, 0)) if (case_id, dtype) == KEY[::2] else stored

    base_arrays, cand_arrays = MemoryArrays(), MemoryArrays()
    cases = [replace(c, repeat_identical=False, repeat_spread=spread) if c.key == KEY else c
             for c in default_suite(base_arrays)]
    baseline = make_run(cases, run_id="baseline")
    candidate = make_run(default_suite(cand_arrays, change=moved), run_id="candidate")
    return baseline, base_arrays, candidate, cand_arrays


def test_repeats_policy_allows_the_baselines_noise_times_the_factor() -> None:
    b, ba, c, ca = noisy_pair(None, 0)
    stored = ba.load(b.case(*KEY).output).reshape(-1)[0]
    one_ulp = float(np.spacing(np.float32(abs(stored))))
    for ulps, verdict in ((2, Verdict.WITHIN_TOLERANCE), (3, Verdict.DRIFT)):
        b, ba, c, ca = noisy_pair(RepeatSpread(one_ulp, 0.0, 1), ulps)  # noise 1 ULP, x2: 2 ULPs pass
        case = compare_runs(b, ba, c, ca, parse_policy("repeats")).case(*KEY)
        assert case.verdict is verdict, ulps
        assert case.tolerance_source == "repeats spread on baseline × 2"
        assert case.tolerance_detail.startswith("max abs ") and "between 3 repeats: atol" in case.tolerance_detail
    # Repeats that were bitwise equal: no noise, so no change passes.
    b, ba, c, ca = noisy_pair(None, 1)
    quiet = replace(b, cases=tuple(replace(x, repeat_identical=True) for x in b.cases))
    case = compare_runs(quiet, ba, c, ca, parse_policy("repeats")).case(*KEY)
    assert case.verdict is Verdict.DRIFT and case.tolerance_detail == "3 repeats bitwise equal: atol 0"


def test_repeats_policy_without_a_recorded_spread_falls_back_and_says_so() -> None:
    b, ba, c, ca = noisy_pair(None, 1)
    result = compare_runs(b, ba, c, ca, parse_policy("repeats"))
    case = result.case(*KEY)
    assert case.verdict is Verdict.WITHIN_TOLERANCE  # the default policy's rtol/atol
    assert case.tolerance_source == "policy default (no repeat spread recorded)"
    assert any(note.startswith("policy repeats: per case, atol = 2 ×") for note in result.notes)
    once = replace(b, cases=tuple(replace(x, repeats=1, repeat_identical=True) for x in b.cases))
    source = compare_runs(once, ba, c, ca, parse_policy("repeats")).case(*KEY).tolerance_source
    assert source == "policy default (the baseline ran the case once: no repeat spread)"


def test_declared_and_plain_policies_name_their_source() -> None:
    b, ba, c, ca = noisy_pair(None, 1)
    assert compare_runs(b, ba, c, ca).case(*KEY).tolerance_source == "policy default"
    assert compare_runs(b, ba, c, ca, parse_policy("ulp:4")).case(*KEY).tolerance_source == "policy ulp:4"


# ---------------------------------------------------------------- --policy fleet, on a seeded database


def _outside_bundle(directory: Path, ulps: int) -> Path:
    """A run of machine 8 whose linear_10_5 float32 output is the golden's with its largest element ``ulps`` away."""
    run, arrays = stored_run(8, 0)
    case = run.case(*KEY)
    values = arrays.load(case.output)
    moved = bump_ulps(values, "float32", ulps, np.unravel_index(np.argmax(np.abs(values)), values.shape))
    cases = tuple(replace(c, output=arrays.add(moved, "float32")) if c.key == KEY else c for c in run.cases)
    return write_bundle(directory / f"outside-{ulps}.driftboard", replace(run, cases=cases, run_id=f"outside-{ulps}"),
                        arrays)


def seed_fleet(url: str, accepted: int) -> str:
    """A golden, ``accepted`` runs one ULP away from it (within the default tolerance), a drifting run and a
    drifting run tagged good; the golden's run id."""
    with Store(url) as store:
        golden = store.ingest(make_bundle(0, 0)).run_id
        store.set_golden(golden)
        for machine in range(1, accepted + 1):
            store.ingest(make_bundle(machine, 0, drift={"linear_10_5": machine}))
        # Not accepted: its verdict is drift (a failed case), and it is not tagged good.
        store.ingest(make_bundle(20, 0, error_case="linear_10_5"))
    return golden


def test_fleet_policy_passes_inside_the_spread_and_fails_outside(capsys: pytest.CaptureFixture[str],
                                                                 fresh_db: str, tmp_path: Path) -> None:
    golden = seed_fleet(fresh_db, accepted=4)
    inside, inside_arrays = stored_run(7, 0, drift={"linear_10_5": 2})  # the same error as accepted run 2
    inside_path = write_bundle(tmp_path / "inside.driftboard", inside, inside_arrays)
    code, out, _ = run_cli(capsys, golden, inside_path, "--policy", "fleet", "--db", fresh_db, "--json")
    assert code == 0, out
    comparison = json.loads(out)["comparisons"][0]
    case = next(c for c in comparison["cases"] if [c["case_id"], c["device"], c["dtype"]] == list(KEY))
    assert case["verdict"] == "within tolerance"
    assert case["tolerance_source"] == "fleet of 4 runs × 2"
    assert case["tolerance_detail"].startswith("max abs ") and "against golden m0000-r00000-default" in case["tolerance_detail"]
    rule = next(n for n in comparison["notes"] if n.startswith("policy fleet"))
    assert "atol = 2 × the largest |error| against golden 'default'" in rule and "over its 4 accepted run(s)" in rule
    assert "tagged good" not in rule or "--tag good" in rule

    # 50 ULPs at the largest element: within the default tolerance, far outside the fleet's spread.
    outside = _outside_bundle(tmp_path, 50)
    assert run_cli(capsys, golden, outside, "--db", fresh_db)[0] == 0
    code, out, _ = run_cli(capsys, golden, outside, "--policy", "fleet", "--db", fresh_db, "--case", "linear_10_5")
    assert code == 1
    assert "Tolerance from: fleet of 4 runs × 2 (max abs" in out and "policy fleet: per case" in out
    assert "FAIL: 1 case(s) reach --fail-on drift" in out


def test_a_run_tagged_good_joins_the_fleet_whatever_its_verdict(fresh_db: str) -> None:
    golden = seed_fleet(fresh_db, accepted=2)
    with Store(fresh_db) as store:
        before = store.fleet_spread("driftboard-reference", 1, "cpu")
        assert before.runs == 2 and before.cases[KEY].runs == 2  # the run with a failed case is not accepted
        store.ingest(make_bundle(21, 0, error_case="mlp_kaiming", tags=("good",)))
        assert store.verdict("m0021-r00000-default").worst == "error"
        after = store.fleet_spread("driftboard-reference", 1, "cpu")
        assert after.runs == 3 and after.cases[KEY].runs == 3
        assert ("mlp_kaiming", "cpu", "float32") not in after.cases or after.cases[("mlp_kaiming", "cpu", "float32")].runs == 2
        # Judged itself, a run never vouches for itself.
        assert "over its 2 accepted run(s)" in store.compare(golden, "m0021-r00000-default", "fleet").notes[0]


def test_too_few_fleet_runs_fall_back_to_the_default_and_say_so(fresh_db: str) -> None:
    golden = seed_fleet(fresh_db, accepted=2)
    with Store(fresh_db) as store:
        result = store.compare(golden, "m0002-r00000-default", "fleet")
        case = result.case(*KEY)
        assert case.tolerance_source == "policy default (fleet: 1 accepted run(s) with this case, 3 needed)"
        assert case.verdict is Verdict.WITHIN_TOLERANCE
        assert "over its 1 accepted run(s)" in result.notes[0]  # the candidate never vouches for itself
        assert store.compare(golden, "m0002-r00000-default", "fleet:runs=1").case(*KEY).tolerance_source \
            == "fleet of 1 runs × 2"


def test_fleet_without_a_golden_falls_back_and_says_so(fresh_db: str) -> None:
    with Store(fresh_db) as store:
        a = store.ingest(make_bundle(0, 0)).run_id
        b = store.ingest(make_bundle(1, 0)).run_id
        result = store.compare(a, b, "fleet")
    assert "no golden with accepted runs was found" in result.notes[0]
    assert result.case(*KEY).tolerance_source == "policy default (fleet: no golden with accepted runs at hand)"


def test_a_fleet_verdict_against_the_golden_uses_the_fleet_and_is_never_cached(fresh_db: str, tmp_path: Path) -> None:
    seed_fleet(fresh_db, accepted=3)
    with Store(fresh_db) as store:
        store.ingest(_outside_bundle(tmp_path, 50))
        assert store.verdict("outside-50").worst == "within tolerance"
        first = store.verdict("outside-50", policy="fleet")
        assert first.worst == "drift" and not first.cached
        assert not store.verdict("outside-50", policy="fleet").cached  # the fleet may have grown since


def test_a_stored_baseline_keeps_its_repeat_spread(fresh_db: str) -> None:
    run, arrays = stored_run(0, 0)
    spread = RepeatSpread(3e-8, 1e-7, 1)
    cases = tuple(replace(c, repeat_identical=False, repeat_spread=spread) if c.key == KEY else c for c in run.cases)
    with Store(fresh_db) as store:
        store.ingest(bundle_bytes(replace(run, cases=cases), arrays))
        store.ingest(make_bundle(1, 0, drift={"linear_10_5": 1}))
        back, _ = store.load_run(run.run_id)
        assert back.case(*KEY).repeat_spread == spread and back.settings == run.settings
        case = store.compare(run.run_id, "m0001-r00000-default", "repeats").case(*KEY)
    assert case.tolerance_source == "repeats spread on baseline × 2"
    assert case.tolerance_detail == "max abs 3e-08 between 3 repeats: atol 6e-08, rtol 0"


def test_a_bundle_may_not_bring_the_stores_spread_key(sqlite_url: str) -> None:
    from driftboard.core.errors import BundleError
    from driftboard.db.store.run_extras import SPREAD

    run, arrays = stored_run(0, 0)
    forged = replace(run, settings={**run.settings, SPREAD.key: [None] * len(run.cases)})
    with Store(sqlite_url) as store, pytest.raises(BundleError, match="reserved for the store"):
        store.ingest(bundle_bytes(forged, arrays))
