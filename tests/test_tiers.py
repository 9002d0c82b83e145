"""Determinism tiers: run to run, processes, machines, device classes; the label, the evidence, the gates."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from cli_runner import run_cli
from db_factory import make_bundle
from db_factory import make_run as stored_run
from runs_factory import bump_ulps, default_suite, make_run

from driftboard.core.bundle import write_bundle
from driftboard.core.compare import compare_runs
from driftboard.core.compare.tiers import Side, Tiers, case_tiers, parse_fail_on
from driftboard.core.errors import PolicyError
from driftboard.core.run import MemoryArrays
from driftboard.db.store import Store

KEY = ("linear_10_5", "cpu", "float32")


def linear_moved(case_id: str, dtype: str, stored):  # noqa: ANN001, ANN201  (runs_factory's change hook)
    return bump_ulps(stored, dtype, 1, 0) if (case_id, dtype) == ("linear_10_5", "float32") else stored


def synthetic(name: str, *, host: str = "box-a", change=None, repeat_identical: bool = True,  # noqa: ANN001
              overrides: dict | None = None):  # noqa: ANN202
    arrays = MemoryArrays()
    cases = default_suite(arrays, change=change)
    if not repeat_identical:
        cases = [replace(c, repeat_identical=False) if c.key == KEY else c for c in cases]
    run = make_run(cases, run_id=name, fingerprint_overrides={"identity.hostname": host, **(overrides or {})})
    return run, arrays


def tiers_of(a, b) -> Tiers:  # noqa: ANN001
    (ra, aa), (rb, ab) = a, b
    return compare_runs(ra, aa, rb, ab).case(*KEY).tiers


def test_pair_of_one_machine_and_environment_speaks_to_processes() -> None:
    base = synthetic("a")
    assert tiers_of(base, synthetic("b")) == Tiers(True, True, None, None)
    assert tiers_of(base, synthetic("b", change=linear_moved)) == Tiers(True, False, None, None)


def test_pair_of_two_machines_speaks_to_machines_and_not_processes() -> None:
    base = synthetic("a")
    found = tiers_of(base, synthetic("b", host="box-b", change=linear_moved))
    assert found == Tiers(True, None, False, None)
    assert found.label == "bitwise: run-to-run ✓, processes ?, machines ✗, device classes ?"
    # Same machine, another environment: neither a second process of one setup nor another machine.
    assert tiers_of(base, synthetic("b", overrides={"numerics.mkldnn_enabled": False})) == Tiers(True, None, None, None)


def test_nondeterministic_repeats_break_run_to_run_and_one_repeat_is_unknown() -> None:
    assert tiers_of(synthetic("a"), synthetic("b", repeat_identical=False)).run_to_run is False
    (run, arrays), other = synthetic("a"), synthetic("b")
    once = replace(run, cases=tuple(replace(c, repeats=1) for c in run.cases))
    other_once = replace(other[0], cases=tuple(replace(c, repeats=1) for c in other[0].cases))
    assert tiers_of((once, arrays), (other_once, other[1])).run_to_run is None


def test_unrecorded_machine_is_unknown_not_a_pass() -> None:
    base = synthetic("a", host="")
    found = tiers_of(base, synthetic("b", host=""))
    assert (found.processes, found.machines) == (None, None)
    assert "processes ?" in found.label and "machines ?" in found.label


def test_stored_evidence_breaks_what_the_pair_alone_would_pass() -> None:
    run, _ = synthetic("a")
    case = run.case(*KEY)
    side = Side.of(run)
    from driftboard.core.compare.tiers import TierEvidence

    assert case_tiers(case, case, side, side).processes is True
    assert case_tiers(case, case, side, side, TierEvidence(processes=False)).processes is False
    assert case_tiers(case, None, side, side, TierEvidence(machines=True)) == Tiers(True, None, True, None)


@pytest.mark.parametrize("text", ["tier:bogus", "drift,sometimes", "", "never,drift"])
def test_bad_fail_on_is_a_one_line_error(text: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_fail_on(text)
    assert "\n" not in str(info.value) and str(info.value).startswith("invalid --fail-on")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiers")
    found = {}
    for name, host, change in (("golden", "box-a", None), ("again", "box-a", linear_moved),
                               ("other_box", "box-b", None)):
        run, arrays = synthetic(name, host=host, change=change)
        found[name] = write_bundle(root / f"{name}.driftboard", run, arrays)
    return found


def test_fail_on_a_broken_tier_exits_1(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    golden, again, other = bundles["golden"], bundles["again"], bundles["other_box"]
    # One ULP: within the default tolerance, so the verdict gate passes; the processes tier broke.
    assert run_cli(capsys, golden, again)[0] == 0
    code, out, _ = run_cli(capsys, golden, again, "--fail-on", "tier:processes")
    assert code == 1 and "FAIL: 1 case(s) reach --fail-on tier:processes" in out
    assert run_cli(capsys, golden, again, "--fail-on", "drift,tier:processes")[0] == 1
    # Another machine, bitwise equal: the machines tier held; processes cannot be known from this pair.
    code, out, _ = run_cli(capsys, golden, other, "--fail-on", "tier:machines,tier:processes")
    assert code == 0
    assert "--fail-on tier:processes: 30 case(s) unknown" in out
    code, out, _ = run_cli(capsys, golden, other, "--json")
    case = next(c for c in json.loads(out)["comparisons"][0]["cases"] if [c["case_id"], c["device"], c["dtype"]] == list(KEY))
    assert case["tiers"] == {"run_to_run": True, "processes": None, "machines": True, "device_classes": None,
                             "label": "bitwise: run-to-run ✓, processes ?, machines ✓, device classes ?"}


def test_bad_fail_on_exits_2(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    code, _, err = run_cli(capsys, bundles["golden"], bundles["again"], "--fail-on", "tier:forever")
    assert code == 2 and "unknown gate 'tier:forever'" in err and "Traceback" not in err


def test_stored_runs_tell_the_tiers_the_pair_cannot(fresh_db: str) -> None:
    url = fresh_db
    with Store(url) as store:
        store.ingest(make_bundle(0, 0))
        store.ingest(make_bundle(0, 1))  # machine 0 again, same environment: bitwise equal
        store.ingest(make_bundle(0, 2, drift={"lstm_2layer": 1}))  # ... except lstm_2layer this time
        store.ingest(make_bundle(1, 0))  # machine 1: agrees
        store.ingest(make_bundle(2, 0, devices=("cpu", "cuda"), cuda="12.4", gpu="NVIDIA A100"))  # another class
        evidence = store.tier_evidence("driftboard-reference", 1)
        linear, lstm = evidence[("linear_10_5", "cpu", "float32")], evidence[("lstm_2layer", "cpu", "float32")]
        assert (linear.processes, linear.machines, linear.device_classes) == (True, True, True)
        assert (lstm.processes, lstm.machines, lstm.device_classes) == (False, False, False)
        # Two machines compared: the pair says machines; the stored runs of machine 0 say processes.
        result = store.compare("m0000-r00000-default", "m0001-r00000-default")
        assert result.case(*KEY).tiers == Tiers(True, True, True, True)
        assert result.case("lstm_2layer", "cpu", "float32").tiers.processes is False
        assert result.case("lstm_2layer", "cpu", "float32").fails("tier:processes")


def test_device_classes_come_from_the_pair(tmp_path: Path) -> None:
    cpu, cpu_arrays = stored_run(0, 0)
    gpu, gpu_arrays = stored_run(1, 0, devices=("cpu", "cuda"), cuda="12.4", gpu="NVIDIA A100")
    found = compare_runs(cpu, cpu_arrays, gpu, gpu_arrays).case(*KEY).tiers
    assert found.device_classes is True and found.machines is None
