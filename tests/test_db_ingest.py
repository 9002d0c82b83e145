"""Ingest: valid, duplicate and bad bundles, all-or-nothing, concurrent writers, killed writers."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from db_factory import SUITE, make_bundle, make_run, manifest_digest, push_worker, write_bundle_file

from driftboard.core.bundle import Limits, bundle_bytes, read_bundle
from driftboard.core.errors import BundleError, BundleIntegrityError, BundleTooLargeError, BundleVersionError, StoreError
from driftboard.db.migrate import upgrade
from driftboard.db.session import make_engine
from driftboard.db.store import Store, _decompress, _outcome_row, _stored_form

FACTORY = Path(__file__).with_name("db_factory.py")
REPO = FACTORY.parents[1]


@pytest.fixture
def store(fresh_db):
    with Store(fresh_db) as store:
        yield store


def _empty(store: Store) -> bool:
    stats = store.stats()
    return (stats.runs, stats.machines, stats.environments, stats.outcomes, stats.arrays) == (0, 0, 0, 0, 0)


def _roundtrip_digest(store: Store, run_id: str) -> str:
    run, arrays = store.load_run(run_id)
    return read_bundle(bundle_bytes(run, arrays)).digest


# ---------------------------------------------------------------- valid and duplicate


def test_a_stored_run_comes_back_exactly_as_captured(store):
    data = make_bundle(3, 7, devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15", gpu="NVIDIA A100-SXM4-80GB",
                       label="a100 node", tags=("nightly", "gpu"), note="after driver upgrade",
                       error_case="rng_randn")
    result = store.ingest(data, uploader="alice")
    bundle = read_bundle(data)
    assert result.created and result.run_id == "m0003-r00007-default"
    assert result.case_count == len(bundle.run.cases) == 52
    assert result.new_arrays == len(bundle.arrays.blobs)
    assert _roundtrip_digest(store, result.run_id) == bundle.digest  # every field, every array
    summary = store.run(result.run_id)
    assert (summary.uploader, summary.label, summary.tags, summary.device_class) == \
        ("alice", "a100 node", ("nightly", "gpu"), "cuda")
    assert (summary.environment.gpu_model, summary.environment.driver, summary.environment.cuda) == \
        ("NVIDIA A100-SXM4-80GB", "550.54.15", "12.4")


def test_pushing_the_same_bundle_twice_stores_one_run_and_says_so(store, tmp_path):
    path = write_bundle_file(tmp_path, 1, 1)
    first = store.ingest(path)
    before = store.stats()
    second = store.ingest(path)
    assert first.created and not second.created
    assert second.run_id == first.run_id and second.bundle_digest == first.bundle_digest
    assert store.stats() == before


def test_runs_with_identical_outputs_share_their_arrays_and_outcomes(store):
    first = store.ingest(make_bundle(1, 1))
    after_one = store.stats()
    for machine in (2, 3, 4):
        result = store.ingest(make_bundle(machine, 1))
        assert result.created and result.new_arrays == 0 and result.new_bytes == 0
    stats = store.stats()
    assert (stats.runs, stats.machines, stats.environments) == (4, 4, 4)
    assert (stats.arrays, stats.outcomes, stats.stored_bytes) == \
        (after_one.arrays, after_one.outcomes, after_one.stored_bytes)
    drifted = store.ingest(make_bundle(5, 1, drift={"linear_1024": 3}))
    assert drifted.new_arrays == 2  # float32 and float64 outputs of one case
    assert first.new_arrays == after_one.arrays


def test_an_imported_environment_only_run_is_storable(store):
    run, arrays = make_run(9, 1, imported=True, gpu="NVIDIA H100 80GB HBM3", driver="580.65.06")
    result = store.ingest(bundle_bytes(run, arrays))
    assert result.created and result.case_count == 0 and result.new_arrays == 0
    loaded, _ = store.load_run(run.run_id)
    assert loaded.imported and loaded.cases == () and loaded.fingerprint == run.fingerprint
    assert store.run(run.run_id).device_class == "cuda"
    assert store.stats().arrays == 0


def test_bundles_without_reusable_deflate_streams_are_compressed_here(store):
    run, arrays = make_run(2, 2)
    data = _rezip(bundle_bytes(run, arrays), compression=zipfile.ZIP_STORED)
    store.ingest(data)
    assert _roundtrip_digest(store, run.run_id) == manifest_digest(run)
    run2, arrays2 = make_run(3, 2, drift={"mlp_kaiming": 1})
    store.ingest_bundle(read_bundle(bundle_bytes(run2, arrays2)))  # no file bytes at all
    assert _roundtrip_digest(store, run2.run_id) == manifest_digest(run2)
    assert store.stats().stored_bytes < store.stats().array_bytes


def test_a_stored_stream_with_trailing_bytes_still_loads_exactly_its_array():
    import hashlib

    raw = bytes(range(256)) * 40
    stream = _stored_form(raw, None)
    sha = hashlib.sha256(raw).hexdigest()
    assert _decompress(sha, "deflate", len(raw), stream + b"trailing garbage") == raw
    with pytest.raises(StoreError, match="corrupt"):
        _decompress(sha, "deflate", len(raw), _stored_form(raw[::-1], None))


def test_outcome_digests_ignore_per_run_timing_but_not_outputs():
    run_a, _ = make_run(1, 1, seconds=0.5)
    run_b, _ = make_run(2, 9, seconds=1.5)
    run_c, _ = make_run(2, 9, drift={"linear_10_5": 2})
    assert [_outcome_row(c)[0] for c in run_a.cases] == [_outcome_row(c)[0] for c in run_b.cases]
    assert [_outcome_row(c)[0] for c in run_a.cases] != [_outcome_row(c)[0] for c in run_c.cases]


# ---------------------------------------------------------------- bad bundles: nothing written


def _rezip(data: bytes, *, compression: int = zipfile.ZIP_DEFLATED, edit=None, drop: str | None = None) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as target:
        for info in source.infolist():
            if info.filename == drop:
                continue
            content = source.read(info)
            if edit is not None:
                content = edit(info.filename, content)
            target.writestr(info.filename, content, compress_type=compression)
    return out.getvalue()


def _tamper_array(name: str, content: bytes) -> bytes:
    return content[:-1] + bytes([content[-1] ^ 1]) if name.startswith("arrays/") else content


def _edit_manifest(change):
    def edit(name: str, content: bytes) -> bytes:
        if name != "manifest.json":
            return content
        manifest = json.loads(content)
        change(manifest)
        return json.dumps(manifest).encode()
    return edit


def _first_array(data: bytes) -> str:
    return next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.startswith("arrays/"))


GOOD = make_bundle(4, 4, tags=("x",))
BAD_BUNDLES = {
    "empty file": (b"", BundleError),
    "not a zip": (b"this is not a bundle", BundleError),
    "truncated": (GOOD[: len(GOOD) // 2], BundleError),
    "array bytes changed": (_rezip(GOOD, edit=_tamper_array), BundleIntegrityError),
    "array missing": (_rezip(GOOD, drop=_first_array(GOOD)), BundleError),
    "field missing": (_rezip(GOOD, edit=_edit_manifest(lambda m: m.pop("fingerprint_digest"))), BundleError),
    "wrong type": (_rezip(GOOD, edit=_edit_manifest(lambda m: m["cases"][0].update(repeats="3"))), BundleError),
    "newer schema": (_rezip(GOOD, edit=_edit_manifest(lambda m: m.update(schema_version=99))), BundleVersionError),
    "duplicate case": (_rezip(GOOD, edit=_edit_manifest(lambda m: m["cases"].append(m["cases"][0]))), BundleError),
}


@pytest.mark.parametrize("kind", list(BAD_BUNDLES))
def test_a_bad_bundle_is_refused_and_nothing_is_written(store, kind):
    data, error = BAD_BUNDLES[kind]
    with pytest.raises(error) as err:
        store.ingest(data)
    assert "\n" not in str(err.value)
    assert _empty(store)


def test_a_bundle_over_the_size_limits_is_refused_before_reading(store, tmp_path):
    path = tmp_path / "big.driftboard"
    path.write_bytes(GOOD)
    with pytest.raises(BundleTooLargeError):
        store.ingest(path, limits=Limits(file_bytes=1000))
    with pytest.raises(BundleError, match="cannot read"):
        store.ingest(tmp_path / "missing.driftboard")
    assert _empty(store)


def test_a_different_bundle_with_a_stored_run_id_is_refused_whole(store):
    store.ingest(make_bundle(1, 1))
    before = store.stats()
    clash = make_bundle(77, 3, run_id="m0001-r00001-default", drift={"lstm_2layer": 4})  # new machine, new arrays
    with pytest.raises(StoreError, match="already stored with different content"):
        store.ingest(clash)
    assert store.stats() == before  # no machine, environment, outcome or array of it kept


# ---------------------------------------------------------------- many writers, killed writers


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_db(request) -> str:
    """SQLite: a new file, so the eight writers also race to create the schema. PostgreSQL: a fresh schema."""
    url = request.getfixturevalue(f"{request.param}_url")
    if request.param == "postgres":
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
    return url


def test_eight_processes_pushing_at_once_lose_nothing_and_duplicate_nothing(shared_db, tmp_path):
    shared = [write_bundle_file(tmp_path, m, 1, drift={"linear_1024": m % 3}) for m in range(4)]
    own = [write_bundle_file(tmp_path, 10 + w, 1, drift={"mlp_kaiming": 10 + w}) for w in range(8)]
    context = multiprocessing.get_context("fork")  # eight processes; forked, so imports are already paid
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    workers = []
    for w in range(8):
        files = [str(p) for p in shared[w % 4:] + shared[: w % 4] + [own[w]]]  # everyone pushes the shared ones
        workers.append(context.Process(target=push_worker, args=(shared_db, files, ready, go, results)))
        workers[-1].start()
    pids = {ready.get(timeout=60) for _ in workers}
    assert len(pids) == 8
    go.set()
    created: dict[str, int] = {}
    for _ in range(8 * 5):
        run_id, was_created = results.get(timeout=120)
        assert run_id != "error", was_created
        created[run_id] = created.get(run_id, 0) + was_created
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    bundles = [read_bundle(p) for p in shared + own]
    assert set(created) == {b.run.run_id for b in bundles}
    assert all(n == 1 for n in created.values())  # each run stored by exactly one process
    with Store(shared_db) as store:
        stats = store.stats()
        assert stats.runs == store.runs().total == 12
        assert stats.arrays == len({sha for b in bundles for sha in b.arrays.blobs})
        assert stats.outcomes == len({_outcome_row(c)[0] for b in bundles for c in b.run.cases})
        for bundle in bundles[::3]:
            assert _roundtrip_digest(store, bundle.run.run_id) == bundle.digest


def test_a_process_killed_inside_the_ingest_leaves_no_partial_run(fresh_db, tmp_path):
    path = write_bundle_file(tmp_path, 5, 5, tags=("killed",))
    marker = tmp_path / "inside"
    worker = subprocess.Popen([sys.executable, str(FACTORY), "hang", fresh_db, str(marker), str(path)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert worker.poll() is None, worker.stderr.read()
        assert time.monotonic() < deadline, "the worker never reached the middle of its ingest"
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)  # rows of every table written, not committed
    worker.wait(timeout=30)
    with Store(fresh_db) as store:
        assert _empty(store)
        assert store.runs().total == 0
        result = store.ingest(path)  # and the database is not stuck: the same bundle goes in
        assert result.created and result.case_count == len(SUITE) * 2 - 2
        assert store.stats().runs == 1
