"""Determinism tiers and the repeat spread on real captures: two fresh processes on this machine."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from runs_factory import bump_ulps

from driftboard.cli import main
from driftboard.core.bundle import Bundle, read_bundle, write_bundle
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays, RepeatSpread

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

CASES = ("linear_10_5", "mlp_kaiming")  # the cheapest suite cases


def _capture(path: Path) -> Bundle:
    args = [f"--case={c}" for c in CASES]
    subprocess.run([*driftboard_command(), "capture", "-q", "--suite", "reference", "--device", "cpu", "--repeats",
                    "3", "-o", str(path), *args], check=True, capture_output=True, env=dict(os.environ))
    return read_bundle(path)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiers-real")
    first, second = root / "first.driftboard", root / "second.driftboard"
    _capture(first)
    _capture(second)
    # The second process's run with one element of one output moved: what no setting of this machine produced.
    bundle = read_bundle(second)
    arrays = MemoryArrays(dict(bundle.arrays.blobs))
    case = next(c for c in bundle.run.cases if c.case_id == "linear_10_5" and c.dtype == "float32")
    moved = bump_ulps(arrays.load(case.output), "float32", 1, (0, 0))
    cases = tuple(replace(c, output=arrays.add(moved, "float32")) if c is case else c for c in bundle.run.cases)
    planted = write_bundle(root / "planted.driftboard", replace(bundle.run, cases=cases, run_id="planted"), arrays)
    return {"first": first, "second": second, "planted": planted}


def run_cli(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    try:
        main(["compare", *map(str, args)])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().out


def test_capture_records_the_repeat_spread(captures: dict[str, Path]) -> None:
    for case in read_bundle(captures["first"]).run.cases:
        if case.error is None and case.repeat_identical:
            assert case.repeat_spread == RepeatSpread(0.0, 0.0, 0), case.key
        elif case.error is None:
            assert case.repeat_spread is not None and case.repeat_spread.max_abs > 0, case.key


def test_two_processes_of_this_machine_hold_the_processes_tier(capsys: pytest.CaptureFixture[str],
                                                               captures: dict[str, Path]) -> None:
    code, out = run_cli(capsys, captures["first"], captures["second"], "--fail-on", "tier:processes", "--json")
    assert code == 0
    cases = json.loads(out)["comparisons"][0]["cases"]
    assert cases and all(c["tiers"]["processes"] is True for c in cases if c["verdict"] == "identical")
    assert all(c["tiers"]["run_to_run"] is True for c in cases)
    assert all(c["tiers"]["machines"] is None and c["tiers"]["device_classes"] is None for c in cases)


def test_a_planted_difference_breaks_the_processes_tier(capsys: pytest.CaptureFixture[str],
                                                        captures: dict[str, Path]) -> None:
    code, out = run_cli(capsys, captures["first"], captures["planted"], "--fail-on", "tier:processes")
    assert code == 1 and "FAIL: 1 case(s) reach --fail-on tier:processes" in out
    assert run_cli(capsys, captures["first"], captures["planted"])[0] == 0  # one ULP: within the default policy
