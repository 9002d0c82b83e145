"""`driftboard explain`: real captures in fresh processes, re-run knob by knob on this machine.

A few captures of three suite cases (session scope): this machine as it is,
then under oneDNN off, one thread, and a lower ATen CPU capability, plus a copy
of the first with a difference planted in one output that no setting can
produce. Each candidate is explained from the unmodified capture's side.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from driftboard.core.bundle import read_bundle, write_bundle
from driftboard.core.explain import Explanation
from driftboard.core.explain.rerun import explain_runs
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays
from driftboard.core.variant_process import capture_variant
from driftboard.core.variants import CAPABILITY_ORDER

CASES = ("lstm_2layer", "lstm_cell_loop", "linear_10_5")
PLANTED = ("linear_10_5", "cpu", "float32")
DRIFTBOARD = driftboard_command()


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("explain-captures")
    args = ["--repeats", "1", "--suite", "reference", "--no-truth", *(f"--case={c}" for c in CASES)]
    out = {v: capture_variant(v, directory, args, env={"ATEN_CPU_CAPABILITY": None})
           for v in ("default", "onednn-off", "threads-1")}
    used = read_bundle(out["default"]).run.settings["cpu_capability"]
    if used in CAPABILITY_ORDER and CAPABILITY_ORDER.index(used) > 0:
        # The case: avx2 on an avx512 machine; else the capability just below this CPU's.
        lower = "avx2" if used == "avx512" else CAPABILITY_ORDER[CAPABILITY_ORDER.index(used) - 1]
        out["capability"] = capture_variant(f"cpu-{lower}", directory, args, env={"ATEN_CPU_CAPABILITY": None})
    out["planted"] = _plant(out["default"], directory / "planted.driftboard")
    return out


def _plant(source: Path, target: Path) -> Path:
    """A copy of ``source`` whose PLANTED output moved by one ULP in one element, written by the bundle writer."""
    bundle = read_bundle(source)
    arrays = MemoryArrays()
    cases = []
    for case in bundle.run.cases:
        assert case.output is not None
        values = bundle.arrays.load(case.output)
        if case.key == PLANTED:
            values = values.copy()
            values.flat[0] = np.nextafter(values.flat[0], np.float32(np.inf))
        layers = tuple((name, arrays.add(bundle.arrays.load(ref), ref.dtype)) for name, ref in case.layers)
        cases.append(replace(case, output=arrays.add(values, case.output.dtype), layers=layers))
    run = replace(bundle.run, run_id=bundle.run.run_id + "-planted", cases=tuple(cases))
    return write_bundle(target, run, arrays)


_EXPLAINED: dict[str, Explanation] = {}


def explained(captures: dict[str, Path], name: str) -> Explanation:
    """The explanation of candidate ``name`` against the default capture, computed once per session."""
    if name not in _EXPLAINED:
        base, cand = read_bundle(captures["default"]), read_bundle(captures[name])
        _EXPLAINED[name] = explain_runs(base.run, base.arrays, cand.run, cand.arrays, this_side="baseline")
    return _EXPLAINED[name]


def _cause(found: Explanation, rule: str) -> Any:
    return next(c for c in found.causes if c.rule == rule)


def test_onednn_off_candidate_is_explained_by_onednn(captures: dict[str, Path]) -> None:
    found = explained(captures, "onednn-off")
    assert found.differing and found.verdict == "explained", found.summary
    assert found.best is not None and found.best.knobs == ("onednn",)
    n = len(found.differing)
    assert found.summary == (f"with `torch.backends.mkldnn.enabled=False`, this machine reproduces the candidate "
                             f"bit for bit in {n} of {n} differing cases")
    assert _cause(found, "onednn").status == "confirmed"
    # Knobs this machine lacks are listed, not run.
    cudnn = next(k for k in found.knobs if k.knob == "cudnn_benchmark")
    assert cudnn.status == "not_applicable" and "CUDA" in cudnn.reason
    unmodified = found.trials[0]
    assert unmodified.settings == () and unmodified.status == "done"


def test_lower_cpu_capability_candidate_is_explained_by_the_capability(captures: dict[str, Path]) -> None:
    if "capability" not in captures:
        pytest.skip("this CPU runs ATen's lowest capability: there is no lower one to capture")
    found = explained(captures, "capability")
    lower = read_bundle(captures["capability"]).run.settings["cpu_capability"]
    assert found.verdict == "explained", found.summary
    assert found.best is not None and found.best.knobs == ("cpu_capability",)
    assert f"with `ATEN_CPU_CAPABILITY={lower}`, this machine reproduces the candidate bit for bit" in found.summary
    assert _cause(found, "cpu_kernels").status == "confirmed"


def test_one_thread_candidate_differs_in_nothing(captures: dict[str, Path]) -> None:
    found = explained(captures, "threads-1")
    assert found.verdict == "nothing_differs" and found.differing == () and found.trials == ()
    assert "nothing to explain" in found.summary


def test_planted_difference_is_not_explained_by_a_local_setting(captures: dict[str, Path]) -> None:
    found = explained(captures, "planted")
    assert found.differing == (PLANTED,)
    assert found.verdict == "unexplained" and found.best is None, found.summary
    assert "no setting of this machine explains it: hardware, driver or library versions differ" in found.summary
    assert "not explained by a local setting" in found.summary
    # Every applicable knob ran; the one-ULP change stays within tolerance in each, which explains nothing.
    assert all(t.status == "done" for t in found.trials)
    assert {k.status for k in found.knobs} <= {"tested", "not_applicable"}


def test_cli_stops_within_its_budget_writes_json_and_stores_it_with_the_pair(
        captures: dict[str, Path], sqlite_url: str, tmp_path: Path) -> None:
    from driftboard.db.store import Store

    with Store(sqlite_url) as store:
        base = store.ingest(captures["default"]).run_id
        cand = store.ingest(captures["onednn-off"]).run_id
    # 2 s: less than one fresh process takes to import torch and capture, so however fast the machine, the
    # budget runs out before every setting has run (8 s was enough for all seven on a quiet 2-core machine)
    out, budget = tmp_path / "explanation.json", 2
    start = time.monotonic()
    done = subprocess.run([*DRIFTBOARD, "explain", base, cand, "--db", sqlite_url, "--this-machine", "baseline",
                           "--budget", str(budget), "--json", "-o", str(out)], capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed
    assert (printed["format"], printed["schema_version"]) == ("driftboard.explanation", 2)
    assert printed["budget_seconds"] == budget and printed["seconds"] <= budget + 2  # a running child stops at the deadline
    assert elapsed < budget + 15  # plus this command's own start and the runs' loading
    assert not printed["complete"] and any(t["status"] == "not_run" for t in printed["trials"])
    assert any(k["status"] == "not_run" for k in printed["knobs"])  # the report says what was not tested
    _validate(printed)
    with Store(sqlite_url) as store:
        kept = store.explanation(base, cand)
    assert kept is not None and kept.to_json() == printed


def _validate(document: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from driftboard.core.documents import schema_path

    schema = json.loads(schema_path("driftboard.explanation").read_text())
    problems = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(document)]
    assert problems == []


def test_every_explanation_matches_its_schema(captures: dict[str, Path]) -> None:
    for name in ("threads-1", "planted"):
        _validate(explained(captures, name).to_json())


def test_store_round_trip_and_delete_with_either_run(captures: dict[str, Path], fresh_db: str) -> None:
    from driftboard.db.models import ExplanationRow
    from driftboard.db.store import Store

    found = explained(captures, "planted")
    with Store(fresh_db) as store:
        base = store.ingest(captures["default"]).run_id
        cand = store.ingest(captures["planted"]).run_id
        assert (base, cand) == (found.baseline, found.candidate)
        assert store.explanation(base, cand) is None
        store.save_explanation(found)
        store.save_explanation(found)  # again: replaces, one row per pair
        kept = store.explanation(base, cand)
        assert kept is not None and kept.to_json() == found.to_json()
        assert store.explanation(cand, base) is None  # the pair is ordered
        with store.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(ExplanationRow)).scalar() == 1
        store.delete_run(cand)
        with store.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(ExplanationRow)).scalar() == 0


def _error(*args: str) -> str:
    done = subprocess.run([*DRIFTBOARD, "explain", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_bad_input_is_one_line_error(captures: dict[str, Path], tmp_path: Path) -> None:
    default = read_bundle(captures["default"])
    assert "no run 'nope'" in _error(str(captures["default"]), "nope", "--db", f"sqlite:///{tmp_path / 'none.sqlite'}")
    imported = write_bundle(tmp_path / "imported.driftboard",
                            replace(default.run, run_id="imported-run", imported=True, cases=(), variant="imported"),
                            MemoryArrays())
    assert "imported from a collect_env report" in _error(str(captures["default"]), str(imported))
    other = write_bundle(tmp_path / "other.driftboard",
                         replace(default.run, run_id="other-suite", suite_id="someone-else", suite_version=7),
                         default.arrays)
    assert "different suites" in _error(str(captures["default"]), str(other))


def test_html_report_shows_the_explanation_next_to_the_likely_causes(captures: dict[str, Path]) -> None:
    from driftboard.core.compare import compare_runs
    from driftboard.dashboard.html_report import comparison_report_html

    found = explained(captures, "planted")
    base, cand = read_bundle(captures["default"]), read_bundle(captures["planted"])
    result = compare_runs(base.run, base.arrays, cand.run, cand.arrays)
    html = comparison_report_html([result], explanations={(found.baseline, found.candidate): found})
    assert "<h3>Explained by re-running</h3>" in html
    assert "no setting of this machine explains it" in html
    assert html.index("Explained by re-running") < html.index("<h3>Cases</h3>")
    assert "Explained by re-running" not in comparison_report_html([result])


def test_plan_starts_from_the_recorded_settings_and_aims_at_the_other_run(captures: dict[str, Path]) -> None:
    from driftboard.core.explain import plan

    this = read_bundle(captures["onednn-off"]).run
    other = replace(read_bundle(captures["default"]).run,
                    settings={**read_bundle(captures["default"]).run.settings, "intra_op_threads": 7,
                              "float32_matmul_precision": "high"})
    the_plan = plan(this, other)
    assert the_plan.unmodified.variant == f"onednn-off+threads-{this.settings['intra_op_threads']}"
    atoms = {s.knob: s.atom for s in (s for k in the_plan.knobs for s in k.settings)}
    assert atoms["onednn"] == "onednn-on" and atoms["threads"] == "threads-7"
    assert atoms["matmul_precision"] == "matmul-precision-high"
    assert atoms["deterministic_algorithms"] == "deterministic-algorithms-on"
    assert {k.knob for k in the_plan.knobs if k.not_applicable} >= {"tf32", "cudnn_deterministic", "cudnn_benchmark"}
    onednn, threads = atoms["onednn"], atoms["threads"]
    pair = the_plan.pairs([s for k in the_plan.knobs for s in k.settings if s.atom in (onednn, threads)])
    assert [t.variant for t in pair] == ["threads-7+onednn-on"]
