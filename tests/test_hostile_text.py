"""Hostile text in a valid bundle: terminal escapes, XML-breaking controls, impossible times, huge trees.

Each is made inert or refused where the bundle is read, so every shell (terminal
tables, JUnit XML, reports, the store) gets the same safe text.
"""

from __future__ import annotations

import dataclasses
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from runs_factory import default_suite, make_case, make_run

from driftboard.cli import cli
from driftboard.core.bundle import Limits, bundle_bytes, read_bundle
from driftboard.core.errors import BundleError, BundleTooLargeError
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays
from driftboard.core.text import inert

ESC_TITLE = "\x1b]0;owned\x07"
RED = "\x1b[31m"
CSI_C1 = "\x9b2J"
RAW = ("\x1b", "\x07", "\x9b", "\r", "\x00")


def _hostile_bundle(tmp_path: Path, name: str, run_id: str) -> Path:
    arrays = MemoryArrays()
    cases = default_suite(arrays)
    run = make_run(cases, run_id=run_id, label=f"lab {ESC_TITLE}{RED}red", fingerprint_overrides={
        "identity.hostname": f"box{CSI_C1}", "torch.version": f"2.5.1\r{RED}"})
    run = dataclasses.replace(run, note="line one\nover\rwrite\x00", tags=(f"t{RED}",))
    path = tmp_path / name
    path.write_bytes(bundle_bytes(run, arrays))
    return path


def test_inert_escapes_controls_and_keeps_newlines_and_tabs() -> None:
    assert inert("a\x1b[31mb") == "a\\x1b[31mb"
    assert inert("tab\tnew\nline") == "tab\tnew\nline"
    assert inert("\x9b \x7f \ud800 \uffff") == "\\x9b \\x7f \\ud800 \\uffff"
    assert inert("plain – ünïcode ✓") == "plain – ünïcode ✓"


def test_the_reader_makes_every_string_inert(tmp_path: Path) -> None:
    bundle = read_bundle(_hostile_bundle(tmp_path, "h.driftboard", "hostile-1"))
    text = repr((bundle.run.label, bundle.run.note, bundle.run.tags, bundle.run.fingerprint))
    for raw in RAW:
        assert raw not in (bundle.run.label + bundle.run.note + "".join(bundle.run.tags)
                           + str(bundle.run.fingerprint))
    assert "\\\\x1b]0;owned\\\\x07" in text
    assert bundle.run.note == "line one\nover\\x0dwrite\\x00"


@pytest.mark.parametrize("command", ["show", "compare", "compare-junit", "runs"])
def test_no_control_character_reaches_the_terminal_or_the_xml(tmp_path: Path, command: str) -> None:
    a = _hostile_bundle(tmp_path, "a.driftboard", "hostile-a")
    b = _hostile_bundle(tmp_path, "b.driftboard", "hostile-b")
    runner = CliRunner()
    db = f"sqlite:///{tmp_path / 'h.sqlite'}"
    if command == "show":
        result = runner.invoke(cli, ["show", str(a), "--cases"])
    elif command == "compare":
        result = runner.invoke(cli, ["compare", str(a), str(b), "--fail-on", "never"])
    elif command == "compare-junit":
        junit = tmp_path / "drift.xml"
        result = runner.invoke(cli, ["compare", str(a), str(b), "--fail-on", "never", "--junit", str(junit)])
        root = ET.fromstring(junit.read_bytes())  # expat refuses the controls XML 1.0 forbids
        assert root.tag == "testsuites"
        assert not any(raw in junit.read_text() for raw in RAW)
    else:
        assert runner.invoke(cli, ["push", str(a), str(b), "--db", db]).exit_code == 0
        result = runner.invoke(cli, ["runs", "--db", db])
    assert result.exit_code == 0, result.output
    for raw in RAW:
        assert raw not in result.output, (raw, result.output)
    if command in ("show", "runs"):
        assert "\\x1b" in result.output  # shown, not hidden


@pytest.mark.parametrize("created_at", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_time_outside_the_calendar_in_utc_is_refused(tmp_path: Path, created_at: str) -> None:
    arrays = MemoryArrays()
    run = dataclasses.replace(make_run(default_suite(arrays)), created_at=created_at)
    path = tmp_path / "t.driftboard"
    path.write_bytes(bundle_bytes(run, arrays))
    with pytest.raises(BundleError, match="run.created_at"):
        read_bundle(path)
    done = subprocess.run(driftboard_command("report", str(path), str(path), "-o", str(tmp_path / "r.html")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"driftboard: error: invalid bundle: run.created_at: {created_at!r} is "
                                                "not an ISO 8601 time in range"]
    assert not (tmp_path / "r.html").exists()


def test_a_fingerprint_with_too_many_values_is_refused(tmp_path: Path) -> None:
    arrays = MemoryArrays()
    flood = {f"k{i}": i for i in range(Limits().fingerprint_values + 1)}
    run = make_run(default_suite(arrays), fingerprint_overrides={"env": flood})
    with pytest.raises(BundleTooLargeError, match="fingerprint: more than 10,000 values"):
        read_bundle(bundle_bytes(run, arrays))


def test_too_many_cases_are_refused_before_they_are_built() -> None:
    arrays = MemoryArrays()
    out = np.zeros(2, dtype=np.float32)
    cases = [make_case(arrays, f"c{i}", out) for i in range(9)]
    with pytest.raises(BundleTooLargeError, match="9 cases, more than 8"):
        read_bundle(bundle_bytes(make_run(cases), arrays), Limits(cases=8))
    assert len(read_bundle(bundle_bytes(make_run(cases), arrays), Limits(cases=9)).run.cases) == 9
