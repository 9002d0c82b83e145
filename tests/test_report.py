"""HTML/JSON report export and ``driftboard report``: self-contained, escaped, round-tripping."""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from runs_factory import bump_ulps, default_suite, make_case, make_run, store

from driftboard.cli import main
from driftboard.core.audit import audit_json, machine_audit
from driftboard.core.bundle import write_bundle
from driftboard.core.compare import Verdict, compare_runs
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays, Run
from driftboard.dashboard.html_report import (
    comparison_report_html,
    comparison_report_json,
    machine_report_html,
)

HOSTILE = "<script>alert(1)</script>"
WHEN = "2026-02-01T10:00:00+00:00"


def drift_lstm(case_id: str, dtype: str, stored: np.ndarray) -> np.ndarray:
    if case_id == "lstm_2layer" and dtype == "float32":
        return bump_ulps(stored, "float32", 1000, (slice(None), slice(3, None)))  # past rtol/atol
    if case_id == "rng_randn" and dtype == "float32":
        out = np.array(stored, copy=True)
        out[0, 0] = np.nan
        return out
    return stored


@pytest.fixture(scope="module")
def pair() -> tuple[Run, Run, MemoryArrays]:
    """A baseline and a hostile-labelled candidate of the synthetic suite, with LSTM drift."""
    arrays = MemoryArrays()
    base = make_run(default_suite(arrays), run_id="golden", label="golden box")
    cand_cases = default_suite(arrays, change=drift_lstm)
    cand_cases.append(make_case(arrays, HOSTILE, store(np.ones((3, 3)), "float32")))
    cand = make_run(cand_cases, run_id="cand-1", label=HOSTILE,
                    fingerprint_overrides={"identity.hostname": HOSTILE, "numerics.mkldnn_enabled": False,
                                           "env.NOTE": HOSTILE})
    return base, cand, arrays


def self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I), "a script is loaded from somewhere"
    assert not re.search(r"<link[^>]*\bhref\s*=", page, re.I), "a stylesheet or icon is linked"
    assert page.count("* plotly.js v") == 1  # the library's banner: inlined exactly once
    # Outside the library's own source (which names its website in strings), nothing points at the network.
    ours = re.sub(r"<script>/\*\*\s*\* plotly\.js v.*?</script>", "", page, count=1, flags=re.S)
    assert "plotly.js v" not in ours
    assert not re.search(r"\b(src|href)\s*=\s*['\"]?(https?:)?//", ours, re.I)
    assert "cdn.plot.ly" not in ours and "https://" not in ours and "http://" not in ours


def embedded_data(page: str) -> dict:
    match = re.search(r"<script type='application/json' id='driftboard-data'>(.*?)</script>", page, re.S)
    assert match
    return json.loads(match.group(1))


def test_comparison_report_is_self_contained_with_charts(pair) -> None:  # type: ignore[no-untyped-def]
    base, cand, arrays = pair
    result = compare_runs(base, arrays, cand, arrays)
    page = comparison_report_html([result], {r.run_id: (r, arrays) for r in (base, cand)}, generated_at=WHEN)
    self_contained(page)
    assert page.count("Plotly.newPlot(") >= 4  # histogram, scatter, heatmap, timesteps of the LSTM case
    assert "prefers-color-scheme: dark" in page
    assert "lstm_2layer/cpu/float32" in page and "drift" in page
    assert "Worst elements" in page
    assert "missing in baseline" in page and "only the candidate ran this case" in page


def test_comparison_report_escapes_hostile_text(pair) -> None:  # type: ignore[no-untyped-def]
    base, cand, arrays = pair
    result = compare_runs(base, arrays, cand, arrays)
    page = comparison_report_html([result], {r.run_id: (r, arrays) for r in (base, cand)},
                                  title=f"report {HOSTILE}", generated_at=WHEN)
    assert HOSTILE not in page
    assert "alert(1)</script>" not in page
    assert html.escape(HOSTILE) in page  # shown as text: label, hostname, case id, env value, title
    assert page.count(html.escape(HOSTILE)) >= 4


def test_comparison_json_round_trips_and_matches_embedded_data(pair) -> None:  # type: ignore[no-untyped-def]
    base, cand, arrays = pair
    result = compare_runs(base, arrays, cand, arrays)
    data = comparison_report_json([result], generated_at=WHEN)
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["kind"] == "driftboard.comparison_report" and data["report_version"] == 1
    assert data["comparisons"][0]["candidate"]["label"] == HOSTILE
    page = comparison_report_html([result], generated_at=WHEN)
    assert embedded_data(page) == data


def test_report_without_arrays_or_comparisons_still_explains(pair) -> None:  # type: ignore[no-untyped-def]
    base, cand, arrays = pair
    page = comparison_report_html([compare_runs(base, arrays, cand, arrays)], generated_at=WHEN)
    assert "Plotly.newPlot(" not in page and "plotly.js v" not in page  # no charts: no library either
    assert "arrays not given" in page
    same = comparison_report_html([compare_runs(base, arrays, base, arrays)], generated_at=WHEN)
    assert "Every case is bitwise identical" in same
    assert "No comparisons were given" in comparison_report_html([], generated_at=WHEN)


def test_chart_count_is_capped(pair) -> None:  # type: ignore[no-untyped-def]
    base, cand, arrays = pair
    result = compare_runs(base, arrays, cand, arrays)
    page = comparison_report_html([result], {r.run_id: (r, arrays) for r in (base, cand)}, max_charted_cases=0,
                                  generated_at=WHEN)
    assert "Plotly.newPlot(" not in page and "only the 0 worst changed cases are charted" in page


# ---------------------------------------------------------------- machine audit


def machine_history() -> tuple[list[Run], MemoryArrays, Run]:
    """A golden, then one machine's runs: same env, a driver upgrade that moves the LSTMs, a torch upgrade."""
    arrays = MemoryArrays()
    golden = make_run(default_suite(arrays), run_id="golden", label="golden")
    gpu = {"gpu.driver": "535.104", "gpu.count": 1}

    def at(run: Run, day: int) -> Run:
        return Run(**{**run.__dict__, "created_at": f"2026-01-{day:02d}T09:00:00+00:00"})

    runs = [
        at(make_run(default_suite(arrays), run_id="m1", label=f"node {HOSTILE}",
                    fingerprint_overrides={**gpu, "identity.hostname": HOSTILE}), 5),
        at(make_run(default_suite(arrays), run_id="m2", label="node",
                    fingerprint_overrides={**gpu, "identity.hostname": HOSTILE}), 12),
        at(make_run(default_suite(arrays, change=drift_lstm), run_id="m3", label="after driver",
                    fingerprint_overrides={**gpu, "gpu.driver": "580.65", "identity.hostname": HOSTILE}), 19),
        at(make_run(default_suite(arrays, change=drift_lstm), run_id="m4", label="after torch",
                    fingerprint_overrides={**gpu, "gpu.driver": "580.65", "torch.version": "2.6.0",
                                           "identity.hostname": HOSTILE}), 26),
    ]
    return runs, arrays, golden


def test_machine_audit_finds_events_and_before_after_drift() -> None:
    runs, arrays, golden = machine_history()
    comparisons = [compare_runs(golden, arrays, run, arrays) for run in runs]
    audit = machine_audit("node", list(reversed(runs)), comparisons)
    assert [p.run_id for p in audit.points] == ["m1", "m2", "m3", "m4"]
    assert [p.drifted for p in audit.points] == [0, 0, 2, 2]
    assert len(audit.events) == 2
    driver, torch_up = audit.events
    assert driver.event.changes == ("NVIDIA driver 535.104 → 580.65",)
    assert driver.before.run_id == "m2" and driver.after.run_id == "m3"
    moved = {v.key: (v.before, v.after) for v in driver.verdict_changes}
    assert moved[("lstm_2layer", "cpu", "float32")] == (Verdict.IDENTICAL, Verdict.DRIFT)
    assert driver.changed_results is True
    assert "changed verdict" in driver.conclusion()
    assert torch_up.event.changes[0].startswith("torch 2.5.1+cpu → 2.6.0")
    assert not torch_up.verdict_changes and "No case changed its verdict" in torch_up.conclusion()
    across = compare_runs(runs[2], arrays, runs[3], arrays)
    direct = machine_audit("node", runs, comparisons, across={"m4": across})
    assert "bitwise identical before and after" in direct.events[1].conclusion()


def test_machine_report_is_self_contained_escaped_and_round_trips() -> None:
    runs, arrays, golden = machine_history()
    comparisons = {run.run_id: compare_runs(golden, arrays, run, arrays) for run in runs}
    audit = machine_audit(HOSTILE, runs, comparisons)
    page = machine_report_html(audit, generated_at=WHEN)
    self_contained(page)
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert "NVIDIA driver 535.104 → 580.65" in page
    assert page.count("Plotly.newPlot(") == 2  # drifted cases and worst ULP over time
    data = audit_json(audit, generated_at=WHEN)
    assert data["format"] == "driftboard.audit" and data["schema_version"] == 1
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert embedded_data(page) == data
    assert len(data["events"]) == 2 and data["events"][0]["after"]["run_id"] == "m3"


def test_machine_report_without_runs() -> None:
    page = machine_report_html(machine_audit("empty", [], []), generated_at=WHEN)
    assert "No runs of this machine yet" in page and "No numerics-relevant field changed" in page


# ---------------------------------------------------------------- CLI


@pytest.fixture()
def bundles(tmp_path: Path) -> tuple[Path, Path]:
    """Bundle files of a baseline and a drifted candidate (bundles refuse hostile case ids, not labels)."""
    arrays = MemoryArrays()
    base = make_run(default_suite(arrays), run_id="golden", label="golden box")
    cand = make_run(default_suite(arrays, change=drift_lstm), run_id="cand-1", label=HOSTILE,
                    fingerprint_overrides={"identity.hostname": HOSTILE})
    return (write_bundle(tmp_path / "golden.driftboard", base, arrays),
            write_bundle(tmp_path / "c.driftboard", cand, arrays))


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_writes_html_and_json(bundles, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base, cand = bundles
    out, data = tmp_path / "report.html", tmp_path / "report.json"
    code = run_cli(["report", str(base), str(cand), str(base), "-o", str(out), "--json", str(data),
                    "--policy", "ulp:4"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "2 comparison(s)" in printed
    page = out.read_text(encoding="utf-8")
    self_contained(page)
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    parsed = json.loads(data.read_text(encoding="utf-8"))
    assert parsed["comparisons"][0]["policy"]["text"] == "ulp:4" and len(parsed["comparisons"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.driftboard", "{cand}", "-o", "{tmp}/r.html"], "no such file"),
        (["{base}", "{cand}", "-o", "{tmp}/r.html", "--policy", "ulp:x"], "invalid policy"),
        (["{base}", "{cand}", "-o", "{tmp}/no/such/dir/r.html"], "cannot write HTML report"),
        (["{base}", "{tmp}", "-o", "{tmp}/r.html"], "not a bundle file"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(bundles, tmp_path: Path, capsys, args, message) -> None:  # type: ignore[no-untyped-def]
    base, cand = bundles
    filled = [a.format(base=base, cand=cand, tmp=tmp_path) for a in args]
    code = run_cli(["report", *filled])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_rejects_a_corrupt_bundle(tmp_path: Path, bundles, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.driftboard"
    bad.write_bytes(b"not a zip")
    assert run_cli(["report", str(bundles[0]), str(bad), "-o", str(tmp_path / "r.html")]) == 2
    assert "invalid bundle" in capsys.readouterr().err


def test_report_command_has_help() -> None:
    from click.testing import CliRunner

    from driftboard.cli import cli

    result = CliRunner().invoke(cli, ["report", "--help"])
    assert result.exit_code == 0 and "Examples:" in result.output and "self-contained" in result.output.lower()


# ---------------------------------------------------------------- real captures


@pytest.mark.slow
def test_report_on_real_captured_bundles(tmp_path: Path) -> None:
    """Two real captures of the LSTM case (oneDNN on and off) through the real CLI, in fresh processes."""
    pytest.importorskip("torch")
    cli = driftboard_command()
    common = ["--case", "lstm_batch_first", "--case", "linear_10_5", "--device", "cpu", "--repeats", "1", "-q"]
    a, b = tmp_path / "a.driftboard", tmp_path / "b.driftboard"
    subprocess.run([*cli, "capture", *common, "-o", str(a)], check=True, capture_output=True, timeout=120)
    subprocess.run([*cli, "capture", *common, "--variant", "onednn-off", "-o", str(b)], check=True,
                   capture_output=True, timeout=120)
    out = tmp_path / "real.html"
    done = subprocess.run([*cli, "report", str(a), str(b), "-o", str(out), "--json", str(tmp_path / "real.json")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    self_contained(page)
    data = json.loads((tmp_path / "real.json").read_text(encoding="utf-8"))
    verdicts = {(c["case_id"], c["dtype"]): c["verdict"] for c in data["comparisons"][0]["cases"]}
    assert verdicts[("linear_10_5", "float32")] == "identical"
    if verdicts[("lstm_batch_first", "float32")] != "identical":  # oneDNN off moves the float32 LSTM here
        assert "id='case-lstm_batch_first-cpu-float32'" in page and page.count("Plotly.newPlot(") >= 4
