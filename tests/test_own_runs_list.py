"""Runs lists count the cases of the team's own models and filter by one (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from db_factory import make_bundle, make_run
from own_factory import chain, own_case

from driftboard.cli import cli
from driftboard.core import documents
from driftboard.core.bundle import bundle_bytes
from driftboard.core.run import CaseResult
from driftboard.db.store import RunFilter, Store

X = np.random.RandomState(7).uniform(-1, 1, (4, 8)).astype(np.float32)


def with_own(machine: int, seq: int, *names: str) -> bytes:
    """db_factory's suite run plus one own case per name."""
    run, arrays = make_run(machine, seq)
    calls = chain(X, 4)
    own = tuple(own_case(arrays, name, [("", calls[-1][3])], calls) for name in names)
    return bundle_bytes(replace(run, cases=run.cases + own), arrays)


def test_runs_count_their_own_cases_on_every_list(fresh_db: str) -> None:
    suite_cases = len(make_run(0, 0)[0].cases)
    with Store(fresh_db) as store:
        store.ingest(with_own(1, 1, "encoder", "heads"))
        store.ingest(with_own(1, 2, "encoder"))
        store.ingest(make_bundle(1, 3))
        store.ingest(make_bundle(2, 1, imported=True))
        counts = {r.run_id: (r.case_count, r.own_case_count) for r in store.runs().runs}
        assert counts == {"m0001-r00001-default": (suite_cases + 2, 2), "m0001-r00002-default": (suite_cases + 1, 1),
                          "m0001-r00003-default": (suite_cases, 0), "m0002-r00001-default": (0, 0)}
        assert store.run("m0001-r00001").own_case_count == 2
        assert [r.own_case_count for r in store.machine_history("host-0001")] == [2, 1, 0]
        assert store.runs(per_page=1, page=2).runs[0].own_case_count == counts[store.runs().runs[1].run_id][1]


def test_runs_filter_by_an_own_case_id(fresh_db: str) -> None:
    with Store(fresh_db) as store:
        store.ingest(with_own(1, 1, "encoder", "heads"))
        store.ingest(with_own(2, 1, "heads"))
        store.ingest(make_bundle(3, 1))

        def ids(**filters: object) -> list[str]:
            return sorted(r.run_id for r in store.runs(RunFilter(**filters)).runs)

        assert ids(own_case="encoder") == ["m0001-r00001-default"]
        assert ids(own_case="heads") == ["m0001-r00001-default", "m0002-r00001-default"]
        assert ids(own_case="heads", machine="host-0002") == ["m0002-r00001-default"]
        assert ids(own_case="lstm_2layer") == []  # a suite case is not an own case
        assert ids(own_case="enc") == []  # the whole case id, not a prefix
        assert store.runs(RunFilter(own_case="heads")).total == 2


def test_only_the_own_entry_marks_an_own_case(fresh_db: str) -> None:
    """A suite case whose layer merely mentions the own entry's name is still a suite case, as ``with_own`` reads it."""
    run, arrays = make_run(4, 1)
    first: CaseResult = run.cases[0]
    ref = first.output
    assert ref is not None
    tricky = tuple((name, ref) for name in ('x"driftboard:own', "driftboard:own2", "[driftboard:own]"))
    data = bundle_bytes(replace(run, cases=(replace(first, layers=first.layers + tricky), *run.cases[1:])), arrays)
    with Store(fresh_db) as store:
        store.ingest(data)
        summary = store.run(run.run_id)
        assert summary.own_case_count == 0
        assert all(case.own is None for case in store.case_results(run.run_id))
        assert not store.runs(RunFilter(own_case=first.case_id)).runs


def test_runs_json_carries_the_own_count_and_matches_its_schema(fresh_db: str) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    with Store(fresh_db) as store:
        store.ingest(with_own(1, 1, "encoder"))
        store.ingest(make_bundle(2, 1))
    result = CliRunner().invoke(cli, ["runs", "--db", fresh_db, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {r["run_id"]: r["own_case_count"] for r in doc["runs"]} == {"m0001-r00001-default": 1,
                                                                       "m0002-r00001-default": 0}
    schema = json.loads(documents.schema_path(doc["format"]).read_text(encoding="utf-8"))
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
