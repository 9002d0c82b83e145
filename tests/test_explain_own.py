"""`driftboard explain` re-runs the team's own-model cases too: real captures in fresh processes.

A cases file declares two small models whose weights and inputs come from a
fixed numpy generator (not torch's random stream, which another CPU capability
may change): a two-layer LSTM and a Linear-GELU-Linear. Both outputs move when
oneDNN is off on this CPU (checked before choosing the knob). The run is
captured as it is and with oneDNN off; explain declares only the LSTM, so the
MLP is skipped with the option that would declare it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from driftboard.core.bundle import read_bundle
from driftboard.core.compare.policy import DEFAULT_POLICY
from driftboard.core.explain.match import built_digests, match_cases
from driftboard.core.explain.own import OwnCases, plan_own
from driftboard.core.processes import driftboard_command
from driftboard.core.variant_process import capture_variant

CASES_FILE = '''\
import numpy as np
import torch

import driftboard


def _filled(model, seed):
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.from_numpy((0.3 * rng.standard_normal(tuple(p.shape))).astype(np.float32)))
    return model


@driftboard.case
def lstm():
    x = np.random.default_rng(8).standard_normal((4, 10, 16)).astype(np.float32)
    return _filled(torch.nn.LSTM(16, 32, num_layers=2, batch_first=True), 2), torch.from_numpy(x)


@driftboard.case
def mlp():
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 32))
    x = np.random.default_rng(7).standard_normal((16, 64)).astype(np.float32)
    return _filled(model, 3), torch.from_numpy(x)
'''
LSTM, MLP = ("lstm", "cpu", "float32"), ("mlp", "cpu", "float32")


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("explain-own")
    cases = directory / "driftboard_cases.py"
    cases.write_text(CASES_FILE)
    args = ["--repeats", "1", "--suite", "own", "--no-truth", f"--cases={cases}"]
    out = {v: capture_variant(v, directory, args, env={"ATEN_CPU_CAPABILITY": None}) for v in ("default", "onednn-off")}
    return {**out, "cases": cases}


def test_own_case_is_explained_by_onednn_and_an_undeclared_one_is_skipped(own: dict[str, Path], tmp_path: Path) -> None:
    from test_explain import _validate

    model = f"{own['cases']}:lstm"
    done = subprocess.run([*driftboard_command(), "explain", str(own["default"]), str(own["onednn-off"]),
                           "--this-machine", "baseline", "--model", model, "--json",
                           "--db", f"sqlite:///{tmp_path / 'none.sqlite'}"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # no cases file to find here
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    _validate(found)
    assert found["differing"] == [list(LSTM)] and found["own_cases"] == [{"case": list(LSTM), "source": model}]
    assert found["verdict"] == "explained", found["summary"]
    assert found["summary"] == ("with `torch.backends.mkldnn.enabled=False`, this machine reproduces the candidate "
                                "bit for bit in 1 of 1 differing cases")
    best = next(t for t in found["trials"] if t["variant"] == found["best"])
    assert [s["knob"] for s in best["settings"]] == ["onednn"] and best["cases"][0]["match"] == "bitwise"
    assert found["trials"][0]["settings"] == [] and found["trials"][0]["cases"][0]["match"] != "bitwise"
    assert next(c for c in found["causes"] if c["rule"] == "onednn")["status"] == "confirmed"
    assert found["skipped"] == ["mlp/cpu/float32: an own-model case not declared here (recorded from "
                                "driftboard_cases.py:mlp): pass --model driftboard_cases.py:mlp, or --cases with the "
                                "file that declares 'mlp'"]
    _report_shows_the_own_cases(own, found)


def _report_shows_the_own_cases(own: dict[str, Path], document: dict[str, Any]) -> None:
    from driftboard.core.compare import compare_runs
    from driftboard.core.explain import Explanation
    from driftboard.dashboard.html_report import comparison_report_html

    found = Explanation.from_json(document)
    assert found.to_json() == document
    base, cand = read_bundle(own["default"]), read_bundle(own["onednn-off"])
    html = comparison_report_html([compare_runs(base.run, base.arrays, cand.run, cand.arrays)],
                                  explanations={(found.baseline, found.candidate): found})
    assert "Own-model cases re-run: lstm/cpu/float32" in html and "Not re-run: mlp/cpu/float32" in html


def test_declarations_are_found_as_capture_finds_them(own: dict[str, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = [c for c in read_bundle(own["default"]).run.cases if c.key in (LSTM, MLP)]
    monkeypatch.chdir(own["cases"].parent)  # the cases file in the current directory, as capture finds it
    found = plan_own(recorded, OwnCases())
    assert set(found.keys) == {LSTM, MLP} and not found.skipped
    assert found.args == (f"--cases={own['cases'].resolve()}",)
    assert dict(found.sources)[MLP] == "driftboard_cases.py:mlp"
    monkeypatch.chdir(tmp_path)  # nothing declares them here
    nothing = plan_own(recorded, OwnCases())
    assert nothing.keys == () and nothing.args == () and len(nothing.skipped) == 2


def test_a_rerun_that_built_other_weights_or_inputs_is_never_a_match(own: dict[str, Path]) -> None:
    bundle = read_bundle(own["onednn-off"])  # a re-run with the very bits of the other run
    keys = [LSTM, MLP]
    here = built_digests(bundle.run, keys)
    assert [m.match for m in match_cases(keys, bundle.run, bundle.arrays, bundle.run, bundle.arrays, DEFAULT_POLICY,
                                         here=here)] == ["bitwise", "bitwise"]
    elsewhere = {LSTM: ("0" * 64, here[LSTM][1]), MLP: (here[MLP][0], "0" * 64)}  # this machine recorded others
    matched = match_cases(keys, bundle.run, bundle.arrays, bundle.run, bundle.arrays, DEFAULT_POLICY, here=elsewhere)
    assert [m.match for m in matched] == ["weights_differ", "inputs_differ"]  # though the outputs are the same bits


def test_nothing_declared_here_is_inconclusive_not_nothing_differs(own: dict[str, Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from test_explain import _validate

    from driftboard.core.explain.rerun import explain_runs

    base, cand = read_bundle(own["default"]), read_bundle(own["onednn-off"])
    monkeypatch.chdir(tmp_path)
    found = explain_runs(base.run, base.arrays, cand.run, cand.arrays, this_side="baseline")
    assert found.verdict == "inconclusive" and found.trials == () and found.differing == ()
    assert "no differing case could be re-run here: 2 own-model case(s) are not declared" in found.summary
    assert any(line.startswith("not re-run: lstm/cpu/float32") for line in found.lines())
    _validate(found.to_json())


def test_a_declaration_that_cannot_be_read_is_a_one_line_error(own: dict[str, Path], tmp_path: Path) -> None:
    from test_explain import _error

    pair = str(own["default"]), str(own["onednn-off"])
    assert _error(*pair, "--cases", str(tmp_path / "nope.py")) == f"driftboard: error: no cases file {tmp_path / 'nope.py'}"
    assert "no such file" in _error(*pair, "--model", f"{tmp_path / 'nope.py'}:build", "--db",
                                    f"sqlite:///{tmp_path / 'none.sqlite'}")
