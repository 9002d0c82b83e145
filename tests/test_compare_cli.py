"""``driftboard compare``: exit codes, table, JSON, JUnit XML, the per-case report."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from runs_factory import bump_ulps, default_suite, make_run

from driftboard.core.bundle import write_bundle
from driftboard.core.run import MemoryArrays


def lstm_drift(case_id: str, dtype: str, stored: np.ndarray) -> np.ndarray:
    """Every float32 LSTM output 3 ULPs away: within the default tolerance, beyond ulp:2."""
    return bump_ulps(stored, dtype, 3) if case_id.startswith("lstm") and dtype == "float32" else stored


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    paths = {}
    for name, change, overrides in (
        ("golden", None, {}),
        ("same", None, {"identity.hostname": "box-b"}),
        ("onednn_off", lstm_drift, {"numerics.mkldnn_enabled": False}),
    ):
        arrays = MemoryArrays()
        run = make_run(default_suite(arrays, change=change), run_id=name, fingerprint_overrides=overrides)
        paths[name] = write_bundle(root / f"{name}.driftboard", run, arrays)
    paths["corrupt"] = root / "corrupt.driftboard"
    paths["corrupt"].write_bytes(b"PK\x03\x04 not really a zip")
    return paths


def test_identical_runs_exit_0(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    code, out, _ = run_cli(capsys, bundles["golden"], bundles["same"])
    assert code == 0
    assert "worst identical (30 identical)" in out
    assert "identity.hostname" in out and "OK: no case reaches --fail-on drift" in out


def test_fail_on_levels(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    golden, candidate = bundles["golden"], bundles["onednn_off"]
    assert run_cli(capsys, golden, candidate)[0] == 0  # 3 ULP: within the default tolerance
    assert run_cli(capsys, golden, candidate, "--fail-on", "any-change")[0] == 1
    code, out, _ = run_cli(capsys, golden, candidate, "--policy", "ulp:2")
    assert code == 1
    assert "FAIL: 4 case(s) reach --fail-on drift" in out
    assert "oneDNN setting or version changed" in out and "only lstm cpu cases changed" in out
    assert run_cli(capsys, golden, candidate, "--policy", "ulp:2", "--fail-on", "never")[0] == 0


@pytest.mark.parametrize(
    "args,message",
    [
        (["GOLDEN", "CANDIDATE", "--policy", "rtol=1e-5"], "invalid policy 'rtol=1e-5': rtol and atol must be given"),
        (["GOLDEN", "/nonexistent/run.driftboard"], "no such file: /nonexistent/run.driftboard"),
        (["GOLDEN", "CORRUPT"], "invalid bundle: file: truncated or corrupt archive"),
        (["GOLDEN", "CANDIDATE", "--case", "no_such_case"], "no case named no_such_case"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], bundles: dict[str, Path], args: list[str], message: str
) -> None:
    names = {"GOLDEN": bundles["golden"], "CANDIDATE": bundles["onednn_off"], "CORRUPT": bundles["corrupt"]}
    code, out, err = run_cli(capsys, *(names.get(a, a) for a in args))
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    code, _, err = run_cli(capsys, bundles["golden"])
    assert code == 2 and "Missing argument" in err
    code, _, err = run_cli(capsys, bundles["golden"], bundles["same"], "--fail-on", "sometimes")
    assert code == 2


def test_json_has_every_figure(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    code, out, _ = run_cli(capsys, bundles["golden"], bundles["onednn_off"], bundles["same"], "--json", "--policy", "ulp:2")
    assert code == 1
    payload = json.loads(out)
    assert payload["failed"] is True and payload["fail_on"] == "drift"
    first, second = payload["comparisons"]
    assert first["candidate"]["run_id"] == "onednn_off" and second["worst"] == "identical"
    assert first["counts"]["drift"] == 4 and len(first["failing"]) == 4
    lstm = next(c for c in first["cases"] if c["case_id"] == "lstm_2layer" and c["dtype"] == "float32")
    assert lstm["verdict"] == "drift"
    assert lstm["metrics"]["ulp"] == {"max": 3, "mean": 3.0, "p99": 3}
    assert lstm["metrics"]["tolerance"] == {"kind": "ulp", "text": "ulp <= 2", "ulps": 2}
    assert len(lstm["metrics"]["timestep_max_abs"]) == 12
    assert first["env"]["changes"][0]["key"] == "numerics.mkldnn_enabled"
    assert first["causes"][0]["rule"] == "onednn"


def test_junit_xml(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "drift.xml"
    code, _, _ = run_cli(capsys, bundles["golden"], bundles["onednn_off"], bundles["same"], "--policy", "ulp:2", "--junit", report)
    assert code == 1
    root = ET.parse(report).getroot()
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["4", "0"]
    assert [s.get("tests") for s in suites] == ["30", "30"]
    failures = suites[0].findall("testcase/failure")
    assert {f.get("type") for f in failures} == {"drift"}
    case = next(t for t in suites[0].findall("testcase") if t.find("failure") is not None)
    assert case.get("name").startswith("lstm_") and case.get("name").endswith("[cpu,float32]")
    assert "Mismatched elements:" in (case.find("failure").text or "")
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["policy"] == "ulp:2" and props["worst"] == "drift"


def test_junit_unwritable_exits_2(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, bundles["golden"], bundles["same"], "--junit", tmp_path / "no" / "dir.xml")
    assert code == 2 and "cannot write JUnit XML" in err


def test_case_report(capsys: pytest.CaptureFixture[str], bundles: dict[str, Path]) -> None:
    code, out, _ = run_cli(capsys, bundles["golden"], bundles["onednn_off"], "--case", "lstm_2layer")
    assert code == 0
    report = out[out.index("lstm_2layer/cpu/float32: within tolerance") :]
    assert "Mismatched elements: 0 / 768 (0.0%) under rtol=1.3e-06, atol=1e-05" in report
    assert "Greatest absolute difference:" in report and "(up to 1e-05 allowed)" in report
    assert "ULP distance: max 3, mean 3, p99 3" in report
    assert "Worst elements (10 of 768 changed, by ULP distance):" in report
    assert "lstm_2layer/cpu/bfloat16: identical" in out


def test_help_has_an_example() -> None:
    from click.testing import CliRunner

    from driftboard.cli import cli

    result = CliRunner().invoke(cli, ["compare", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "driftboard compare golden.driftboard laptop.driftboard" in result.output
    assert "--fail-on" in result.output and "Exit status" in result.output


def test_whole_process_never_imports_torch(bundles: dict[str, Path]) -> None:
    script = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr))\n"
        "from driftboard.cli import main\n"
        f"main(['compare', {str(bundles['golden'])!r}, {str(bundles['onednn_off'])!r}, '--json',"
        " '--fail-on', 'any-change'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().endswith("NO-TORCH")
    assert json.loads(done.stdout)["comparisons"][0]["worst"] == "within tolerance"


@pytest.mark.parametrize(("fail_on", "code"), [("drift", 1), ("any-change", 1), ("never", 0)])
def test_an_environment_only_run_compares_no_case_and_the_gate_fails_closed(
        capsys: pytest.CaptureFixture[str], bundles: dict[str, Path], tmp_path: Path, fail_on: str, code: int) -> None:
    import dataclasses
    import xml.etree.ElementTree as ET

    imported = dataclasses.replace(make_run([], run_id="imported"), imported=True)
    path = write_bundle(tmp_path / "imported.driftboard", imported, MemoryArrays())
    junit = tmp_path / "gate.xml"
    got, out, _ = run_cli(capsys, bundles["golden"], path, "--fail-on", fail_on, "--junit", junit)
    assert got == code
    assert "no cases compared" in out and "worst identical" not in out
    assert ("FAIL: no case was compared" in out) == (code == 1)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == str(code)
    got, out, _ = run_cli(capsys, bundles["golden"], path, "--fail-on", fail_on, "--json")
    document = json.loads(out)
    assert document["failed"] is (code == 1) and document["comparisons"][0]["cases_compared"] == 0


def test_the_help_documents_the_exit_status_for_every_fail_on(capsys: pytest.CaptureFixture[str]) -> None:
    from click.testing import CliRunner

    from driftboard.cli import cli

    text = CliRunner().invoke(cli, ["compare", "--help"]).output
    assert "was compared at all" in text and "with --fail-on never" in text
