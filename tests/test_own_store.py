"""Own cases in the database (SQLite and PostgreSQL): stored, read back whole, shared, deleted; old runs untouched."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from db_factory import make_run
from own_factory import chain, own_case
from sqlalchemy import select, update

from driftboard.core import bundle_own
from driftboard.core.bundle import DEFAULT_LIMITS, bundle_bytes, read_bundle
from driftboard.core.bundle_own import own_from_json, own_json
from driftboard.core.compare import compare_runs
from driftboard.core.errors import StoreError
from driftboard.core.run import (
    ArrayRef,
    CaseResult,
    MemoryArrays,
    ModuleCall,
    OwnResult,
    TensorRecord,
    TensorStats,
)
from driftboard.db.models import ArrayRow, CaseOutcomeRow
from driftboard.db.session import make_engine, transaction
from driftboard.db.store import Store, own_blob
from driftboard.db.store.own_blob import OWN_ENTRY

X = np.random.RandomState(5).uniform(-1, 1, (6, 10)).astype(np.float32)


def with_own(machine: int, seq: int, *, bump: float | None = None, full: bool = False) -> bytes:
    """A machine's run (db_factory's suite) plus two own cases; ``bump`` moves the encoder from its third call."""
    run, arrays = make_run(machine, seq)
    calls = chain(X, 6, {2: bump} if bump else None)
    own = (own_case(arrays, "encoder", [("", calls[-1][3])], calls, full=full, title="enc", weights_rng=True),
           own_case(arrays, "heads", [("['a']", X), ("['b']", X[:2])], chain(X, 2), whole_outputs=False))
    return bundle_bytes(replace(run, cases=run.cases + own), arrays)


def test_own_cases_are_stored_and_read_back_whole(fresh_db: str) -> None:
    data = with_own(1, 1, full=True)
    bundle = read_bundle(data)
    with Store(fresh_db) as store:
        store.ingest(data)
        run, arrays = store.load_run(bundle.run.run_id)
        assert run.cases == bundle.run.cases
        assert store.case_results(bundle.run.run_id) == bundle.run.cases
        enc = run.case("encoder")
        kept = enc.own.modules[3].tensors[0].array
        np.testing.assert_array_equal(arrays.load(kept), bundle.arrays.load(kept))


def test_a_comparison_of_stored_runs_equals_the_one_of_their_bundles(fresh_db: str) -> None:
    first, second = with_own(1, 1), with_own(2, 1, bump=1e-3)
    a, b = read_bundle(first), read_bundle(second)
    with Store(fresh_db) as store:
        store.ingest(first)
        store.ingest(second)
        stored = store.compare(a.run.run_id, b.run.run_id)
    direct = compare_runs(a.run, a.arrays, b.run, b.arrays)
    assert stored.to_json() == direct.to_json()
    assert stored.case("encoder").first_divergent_module.label == "layers.1.linear (Linear), call 1"


def test_equal_records_are_stored_once_and_deleted_with_their_last_run(fresh_db: str) -> None:
    with Store(fresh_db) as store:
        store.ingest(with_own(1, 1))
        after_one = store.stats()
        store.ingest(with_own(1, 2))  # the same numbers on the next day: no new outcome, no new array
        after_two = store.stats()
        assert (after_two.outcomes, after_two.arrays) == (after_one.outcomes, after_one.arrays)
        store.ingest(with_own(1, 3, bump=1e-3))
        assert store.stats().arrays > after_two.arrays
        for seq in (1, 2, 3):
            store.delete_run(f"m0001-r0000{seq}-default")
        emptied = store.stats()
        assert (emptied.runs, emptied.outcomes, emptied.arrays) == (0, 0, 0)


# The stored record is content-addressed: equal records must give the same bytes on every machine and in every
# driftboard version, or a fleet's runs stop sharing them. The digest below is what the encoder wrote when it
# was first pinned (2026-11-30); a change to it is a change of the stored format, not a refactoring.
PINNED_RECORD = "c4836aacba3f68eac83832c6af35ffef55bf6008d2d4ffc2fe39da1872e07c60"
SHA_A, SHA_B, SHA_C = "0a" * 32, "1b" * 32, "2c" * 32


def pinned_case() -> CaseResult:
    def stats(sha: str, **changes: object) -> TensorStats:
        fields: dict = {"shape": (2, 3), "dtype": "float32", "sha256": sha, "nonfinite": 0, "min": -0.75,
                        "max": 0.1 + 0.2, "mean": -0.0, "l1": 3.0, "l2": 1e-310, "sample": (0.5, -1.25e-7, 3.0)}
        fields.update(changes)
        return TensorStats(**fields)

    kept = ArrayRef(SHA_A, "float32", (2, 3))
    own = OwnResult(
        source="driftboard_cases.py:enc\u00e9", title="Encoder \u00b7 \"v2\"", layers="statistics",
        outputs=(TensorRecord("", stats(SHA_A), kept),
                 TensorRecord("['b']", stats(SHA_B, shape=(), nonfinite=1, min=None, max=None, mean=None, l1=None,
                                                 l2=None, sample=(float("nan"),)))),
        modules=(
            ModuleCall("layers.0", 1, "Linear", (TensorRecord("", stats(SHA_C)),)),
            ModuleCall("layers.0.act\ud800", 2, "Tanh", (TensorRecord("[0]", stats(SHA_C, sample=(float("inf"), -1.0,
                                                                                             float("-inf")))),
                                                          TensorRecord("[1]", stats(SHA_C, shape=(0,), sample=()))),
                       truth_rel_error=2.5e-8),
            ModuleCall("", 1, "Encoder", ()),
        ),
        autocast="bfloat16", tolerance="rtol=1e-5,atol=1e-7", weights_rng=True, modules_dropped=7, inputs_rng=False,
        hooks_change_output=True,
    )
    return CaseResult("enc", "cpu", "float32", SHA_A, SHA_B, kept, own=own)


def canonical(own: OwnResult) -> bytes:
    """The record as the encoder was first written: its manifest form, canonical JSON, ASCII."""
    return json.dumps(own_json(own), sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")


def test_the_stored_record_of_a_known_case_is_unchanged() -> None:
    case = pinned_case()
    blob = own_blob.encode(case)
    assert blob.data == canonical(case.own)
    assert (blob.sha256, hashlib.sha256(blob.data).hexdigest()) == (PINNED_RECORD, PINNED_RECORD)


@pytest.mark.parametrize("which", ["pinned", "statistics"])
def test_a_record_read_from_a_bundle_is_stored_as_the_one_written(which: str) -> None:
    """Read back (the reader's fast path for statistics-mode calls, its full checks for the rest), a record
    gives the bytes of the record that was written."""
    if which == "pinned":
        case = pinned_case()
    else:
        calls = chain(X, 40, {7: 1e-3})
        case = own_case(MemoryArrays(), "deep", [("", calls[-1][3])], calls)
        measured = tuple(replace(m, truth_rel_error=i * 2.5e-9) for i, m in enumerate(case.own.modules))
        case = replace(case, own=replace(case.own, modules=measured))  # as a truth pass records them
    read = own_from_json(json.loads(canonical(case.own)), "own", DEFAULT_LIMITS)
    assert own_blob.encode(replace(case, own=read)).data == canonical(case.own)
    if which == "statistics":
        assert bundle_own._plain_modules(json.loads(canonical(case.own))["modules"]) is not None


def test_suite_runs_are_stored_as_before(fresh_db: str) -> None:
    run, arrays = make_run(3, 1)
    data = bundle_bytes(run, arrays)
    with Store(fresh_db) as store:
        store.ingest(data)
        assert store.load_run(run.run_id)[0].cases == run.cases
        engine = make_engine(fresh_db)
        try:
            with transaction(engine) as session:
                layers = session.execute(select(CaseOutcomeRow.layers)).scalars().all()
        finally:
            engine.dispose()
        assert not any(entry[0] == OWN_ENTRY for row in layers for entry in row)


def test_an_older_driftboard_reads_the_record_as_one_more_layer(fresh_db: str) -> None:
    """What a driftboard from before own cases finds in the outcome row: a uint8 layer it can load and compare."""
    data = with_own(1, 1)
    with Store(fresh_db) as store:
        store.ingest(data)
        engine = make_engine(fresh_db)
        try:
            with transaction(engine) as session:
                rows = session.execute(select(CaseOutcomeRow.case_id, CaseOutcomeRow.layers)
                                       .where(CaseOutcomeRow.case_id == "encoder")).all()
        finally:
            engine.dispose()
        ((_, layers),) = rows
        ((name, sha, dtype, shape),) = layers  # an own case keeps no suite layers: only its record
        assert (name, dtype) == (OWN_ENTRY, "uint8")
        raw = store.arrays().load(ArrayRef(sha, dtype, tuple(shape))).tobytes()
        assert json.loads(raw)["source"] == "cases.py:encoder"


def test_a_damaged_record_is_a_one_line_store_error(sqlite_url: str) -> None:
    data = with_own(1, 1)
    with Store(sqlite_url) as store:
        store.ingest(data)
        run_id = read_bundle(data).run.run_id
        engine = make_engine(sqlite_url)
        try:
            with transaction(engine, write=True) as session:
                (layers,) = session.execute(select(CaseOutcomeRow.layers).where(CaseOutcomeRow.case_id == "heads")).one()
                session.execute(update(ArrayRow).where(ArrayRow.sha256 == layers[0][1]).values(data=b"\x03\x00"))
        finally:
            engine.dispose()
        with pytest.raises(StoreError, match="is corrupt in the database") as caught:
            store.load_run(run_id)
        assert "\n" not in str(caught.value)


@pytest.mark.postgres
def test_a_pusher_stores_own_cases_through_the_push_function(postgres_url: str) -> None:
    """A PostgreSQL pusher writes only through ``driftboard_push_run``: the record travels as one more array."""
    from pg_cluster import migrate_and_grant, scratch_cluster

    data = with_own(4, 1, full=True)
    bundle = read_bundle(data)
    with scratch_cluster(postgres_url) as cluster:
        migrate_and_grant(cluster)
        with Store(cluster.urls["member"]) as store:
            assert store.ingest(data).created
        with Store(cluster.urls["app"]) as store:
            assert store.load_run(bundle.run.run_id)[0].cases == bundle.run.cases
