"""The machine audit: ``core.audit`` (pure), ``db.audit.audit_machine`` on a seeded database, ``driftboard audit``.

The seed (``tests/db_factory.py``, no torch): a golden box; a laptop whose
LSTM drifts by one ULP from the start, then upgrades torch (its linear_1024
cases start drifting too), then changes its thread count (outputs unchanged);
and two machines sharing the hostname ``shared-host`` whose keys share the
prefix ``8`` (one of them environment-only).
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from db_factory import fingerprint, machine_key, make_bundle

from driftboard.cli import cli
from driftboard.core.audit import audit_json, machine_audit
from driftboard.core.compare import RunComparison, Verdict
from driftboard.core.documents import schema_path
from driftboard.core.errors import NotFoundError, PolicyError
from driftboard.core.processes import driftboard_command
from driftboard.db.audit import audit_machine
from driftboard.db.store import Store

GOLDEN = "m0000-r00000-default"
LAPTOP = [f"m0001-r{seq:05d}-default" for seq in range(4)]
TWIN_ENV, TWIN = "m0003-r00000-default", "m0007-r00000-default"
MARKUP_LABEL = "[bold]after torch[/bold]"
LINEAR_1024 = {("linear_1024", "cpu", "float32"), ("linear_1024", "cpu", "float64")}


def _twin(machine: int) -> dict:
    fp = fingerprint(machine)
    fp["identity"]["hostname"] = "shared-host"
    return fp


@cache
def seed_bundles() -> tuple[bytes, ...]:
    lstm, both = {"lstm_2layer": 2}, {"lstm_2layer": 2, "linear_1024": 1}
    return (
        make_bundle(0, 0, label="golden box"),
        make_bundle(1, 0, label="laptop", drift=lstm),
        make_bundle(1, 1, label="laptop again", drift=lstm),
        make_bundle(1, 2, label=MARKUP_LABEL, torch_version="2.6.0", drift=both),
        make_bundle(1, 3, label="fewer threads", torch_version="2.6.0", threads=4, drift=both),
        make_bundle(3, 0, label="environment only", imported=True, fp=_twin(3)),
        make_bundle(7, 0, label="twin", fp=_twin(7)),
    )


def seed(url: str) -> None:
    with Store(url) as store:
        for data in seed_bundles():
            store.ingest(data, uploader="seed")
        store.set_golden(GOLDEN, set_by="seed")


@pytest.fixture(scope="module")
def db_url(tmp_path_factory) -> str:
    """A seeded SQLite database, read (never written) by every test of this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'seed.sqlite'}"
    seed(url)
    return url


@pytest.fixture(scope="module")
def schema() -> dict:
    loaded = json.loads(schema_path("driftboard.audit").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def validate(document: dict, schema: dict) -> None:
    jsonschema.Draft202012Validator(schema).validate(document)


def laptop_audit(url: str, **options) -> object:
    with Store(url) as store:
        return audit_machine(store, "host-0001", **options)


# ---------------------------------------------------------------- the library on a seeded database


def check_laptop_audit(audit) -> None:  # type: ignore[no-untyped-def]
    assert audit.machine == "host-0001" and audit.machine_key == machine_key(1)
    assert audit.golden is not None and audit.golden.run_id == GOLDEN
    assert [p.run_id for p in audit.points] == LAPTOP
    assert [p.drifted for p in audit.points] == [2, 2, 4, 4]
    assert all(p.worst is Verdict.WITHIN_TOLERANCE for p in audit.points)
    assert len(audit.events) == 2  # no event between the two runs of one environment
    torch_up, threads = audit.events
    assert (torch_up.before.run_id, torch_up.after.run_id) == (LAPTOP[1], LAPTOP[2])
    assert torch_up.event.changes[0] == "torch 2.5.1 → 2.6.0" and "torch.version" in torch_up.event.keys
    assert {v.key for v in torch_up.verdict_changes} == LINEAR_1024
    assert {(v.before, v.after) for v in torch_up.verdict_changes} == {(Verdict.IDENTICAL, Verdict.WITHIN_TOLERANCE)}
    assert torch_up.changed_results is True and "this change changed results" in torch_up.conclusion()
    assert (threads.before.run_id, threads.after.run_id) == (LAPTOP[2], LAPTOP[3])
    assert "intra-op threads 16 → 4" in threads.event.changes
    assert not threads.verdict_changes and threads.changed_results is False
    assert "bitwise identical before and after" in threads.conclusion()


def test_audit_finds_environment_changes_and_verdicts_before_and_after(db_url: str) -> None:
    check_laptop_audit(laptop_audit(db_url))


def test_audit_on_sqlite_and_postgresql(fresh_db: str) -> None:
    seed(fresh_db)
    check_laptop_audit(laptop_audit(fresh_db))


def test_policy_decides_the_verdicts(db_url: str) -> None:
    audit = laptop_audit(db_url, policy="bitwise")
    assert audit.policy.kind == "bitwise"
    assert all(p.worst is Verdict.DRIFT for p in audit.points)
    moved = audit.events[0].verdict_changes
    assert {(v.key, v.before, v.after) for v in moved} == {(k, Verdict.IDENTICAL, Verdict.DRIFT) for k in LINEAR_1024}
    with pytest.raises(PolicyError):
        laptop_audit(db_url, policy="ulp:")


def test_machine_is_named_by_key_prefix_or_hostname(db_url: str) -> None:
    with Store(db_url) as store:
        for name in (machine_key(1), machine_key(1)[:6], "host-0001", " host-0001 "):
            assert audit_machine(store, name).machine_key == machine_key(1), name
        for name, message in (("nobody", "no machine 'nobody'"), ("", "no machine"),
                              ("shared-host", "names 2 machines"), ("8", "is ambiguous")):
            with pytest.raises(NotFoundError, match=message):
                audit_machine(store, name)


def test_without_a_golden_only_the_environment_changes_are_listed(db_url: str) -> None:
    audit = laptop_audit(db_url, golden="nonexistent")
    assert audit.golden is None and not audit.comparisons
    assert all(p.worst is None and not p.is_golden for p in audit.points)
    assert len(audit.events) == 2 and not audit.events[0].verdict_changes
    assert audit.events[1].changed_results is False  # the runs around it still compared with each other
    with Store(db_url) as store:
        env_only = audit_machine(store, machine_key(3))
    assert env_only.golden is None and [p.run_id for p in env_only.points] == [TWIN_ENV]


def test_golden_machine_sees_itself_as_the_golden(db_url: str) -> None:
    with Store(db_url) as store:
        audit = audit_machine(store, "host-0000")
    assert [(p.run_id, p.is_golden, p.compared_with_golden) for p in audit.points] == [(GOLDEN, True, True)]


def test_limit_and_the_compare_hook(db_url: str) -> None:
    calls: list[tuple[str, str, str]] = []
    with Store(db_url) as store:
        def compare(baseline: str, candidate: str, policy: str) -> RunComparison:
            calls.append((baseline, candidate, policy))
            return store.compare(baseline, candidate, policy)

        audit = audit_machine(store, "host-0001", limit=2, policy="ulp:4", compare=compare)
    assert [p.run_id for p in audit.points] == LAPTOP[2:]
    assert calls == [(GOLDEN, LAPTOP[2], "ulp:4"), (GOLDEN, LAPTOP[3], "ulp:4"), (LAPTOP[2], LAPTOP[3], "ulp:4")]
    assert len(audit.events) == 1 and audit.events[0].across is not None


# ---------------------------------------------------------------- the JSON document and its schema


def test_audit_json_matches_its_schema(db_url: str, schema: dict) -> None:
    for options in ({}, {"policy": "bitwise"}, {"policy": "rtol=1e-3,atol=1e-5"}, {"golden": "nonexistent"}):
        data = audit_json(laptop_audit(db_url, **options))
        assert data["format"] == "driftboard.audit" and data["schema_version"] == 1
        assert list(data)[:2] == ["format", "schema_version"]
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        validate(data, schema)
    with Store(db_url) as store:
        for machine in (machine_key(3), "host-0000"):
            validate(audit_json(audit_machine(store, machine)), schema)
    validate(audit_json(machine_audit("nothing", [], [])), schema)


def test_schema_refuses_what_the_audit_never_writes(db_url: str, schema: dict) -> None:
    data = audit_json(laptop_audit(db_url))
    broken = [
        {k: v for k, v in data.items() if k != "events"},
        {**data, "format": "driftboard.comparison"},
        {**data, "points": [{**data["points"][0], "worst": "fine"}]},
        {**data, "surprise": 1},
    ]
    for document in broken:
        with pytest.raises(jsonschema.ValidationError):
            validate(document, schema)


def test_schema_lists_every_verdict(schema: dict) -> None:
    assert schema["$defs"]["verdict"]["enum"] == [v.value for v in Verdict]


# ---------------------------------------------------------------- driftboard audit


def run_cli(*args: str) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["audit", *args])
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return done.exit_code, done.output


def test_cli_prints_events_with_verdicts_before_and_after(db_url: str) -> None:
    code, out = run_cli("host-0001", "--db", db_url)
    assert code == 0, out
    assert "Audit of host-0001" in out and f"Golden: {GOLDEN} (golden box)" in out
    assert "torch 2.5.1 → 2.6.0" in out and "intra-op threads 16 → 4" in out
    moved = [" ".join(line.replace("│", " ").split()) for line in out.splitlines() if "linear_1024/" in line]
    assert moved == ["1 linear_1024/cpu/float32 identical → within tolerance",
                     "1 linear_1024/cpu/float64 identical → within tolerance"]
    events = out.split("Environment changes:")[1].split("Verdicts against the golden")[0]
    conclusions = " ".join(line.split("│")[-1].strip() for line in events.splitlines() if "│" in line)
    assert "this change changed results" in conclusions
    assert "All 18 cases are bitwise identical before and after" in conclusions
    assert all(run_id in out for run_id in LAPTOP)
    assert MARKUP_LABEL in out  # user text printed as typed, never read as rich markup


def test_cli_json_is_the_audit_document(db_url: str, schema: dict) -> None:
    code, out = run_cli(machine_key(1)[:8], "--db", db_url, "--json", "--policy", "bitwise")
    assert code == 0, out
    data = json.loads(out)
    validate(data, schema)
    assert data["machine_key"] == machine_key(1) and data["policy"]["kind"] == "bitwise"
    assert [e["event"]["after_run_id"] for e in data["events"]] == LAPTOP[2:]
    assert {tuple(v["case"]) for v in data["events"][0]["verdict_changes"]} == LINEAR_1024


def test_cli_writes_the_html_audit(db_url: str, tmp_path: Path, schema: dict) -> None:
    page = tmp_path / "audit.html"
    code, out = run_cli("host-0001", "--db", db_url, "-o", str(page))
    assert code == 0 and f"wrote {page}: 4 runs, 2 environment change(s)" in out
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "torch 2.5.1 → 2.6.0" in html
    embedded = re.search(r"<script type='application/json' id='driftboard-data'>(.*?)</script>", html, re.S)
    assert embedded
    validate(json.loads(embedded.group(1)), schema)
    code, out = run_cli("host-0001", "--db", db_url, "--json", "-o", str(tmp_path / "again.html"))
    assert code == 0 and (tmp_path / "again.html").exists()


def _one_line_error(*args: str) -> str:
    done = subprocess.run([*driftboard_command(), "audit", *args], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.mark.parametrize(("machine", "message"), [("nobody", "no machine 'nobody'"),
                                                  ("shared-host", "names 2 machines")])
def test_cli_unknown_or_ambiguous_machine_is_one_line_exit_2(db_url: str, machine: str, message: str) -> None:
    assert message in _one_line_error(machine, "--db", db_url)


def test_cli_bad_policy_is_one_line_exit_2(db_url: str) -> None:
    assert "invalid policy" in _one_line_error("host-0001", "--db", db_url, "--policy", "ulp:")


def test_cli_unwritable_output_is_one_line_exit_2(db_url: str, tmp_path: Path) -> None:
    assert "cannot write the HTML audit" in _one_line_error("host-0001", "--db", db_url, "-o",
                                                            str(tmp_path / "missing" / "a.html"))


# ---------------------------------------------------------------- the pure function


def test_pure_audit_without_comparisons_draws_no_conclusion() -> None:
    from runs_factory import default_suite, make_run

    from driftboard.core.run import MemoryArrays

    arrays = MemoryArrays()
    first = make_run(default_suite(arrays), run_id="a", fingerprint_overrides={"gpu.driver": "535"})
    second = make_run(default_suite(arrays), run_id="b", fingerprint_overrides={"gpu.driver": "580"})
    audit = machine_audit("box", [second, first], {})
    assert [p.run_id for p in audit.points] == ["a", "b"]
    assert audit.golden is None and audit.policy.kind == "default"
    (event,) = audit.events
    assert event.changed_results is None and "no conclusion" in event.conclusion()
