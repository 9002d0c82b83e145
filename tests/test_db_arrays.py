"""Arrays as stored: only bytes verified to be exactly the array are kept, and ``driftboard db repair``
rewrites the rows an older driftboard kept unverified.

The attack these pin: one valid bundle whose array entry declares the right size and CRC but whose
deflate stream inflates to the array plus a few bytes. The reader read only the declared size, the store
kept the stream as it was, and every later run sharing that array failed to compare ("corrupt in the
database") even after the attacker's run was deleted.
"""

from __future__ import annotations

import re
import zlib

import pytest
from db_factory import make_bundle, make_run, write_bundle_file
from sqlalchemy import update
from test_db_cli import run_cli
from test_faults import integrity_problems
from test_fuzz_bundle import LIES, deflate, lying_bundle
from test_fuzz_upload import stored_problems

from driftboard.core.bundle import read_bundle
from driftboard.core.errors import BundleError
from driftboard.db.models import ArrayRow
from driftboard.db.store import Store
from driftboard.db.store.arrays import salvage, stored_problem


@pytest.fixture
def store(fresh_db):
    with Store(fresh_db) as store:
        yield store


def _shared_sha(data: bytes) -> str:
    """An array of linear_10_5's float32 output: every agreeing machine's bundle holds it."""
    run = read_bundle(data).run
    return next(c.output.sha256 for c in run.cases if c.case_id == "linear_10_5" and c.dtype == "float32")


@pytest.mark.parametrize("lie", sorted(LIES))
def test_one_lying_bundle_cannot_poison_an_array_every_later_run_shares(store, lie):
    honest = make_bundle(1, 1)
    attack = lying_bundle(honest, _shared_sha(honest), lie, extra=b"\xde\xad\xbe\xef")
    try:
        store.ingest(attack)  # refused by name, or stored in a verified form: nothing else
    except BundleError as exc:
        assert re.match(r"invalid bundle: cases\[\d+\]\.output: entry arrays/[0-9a-f]{12}…: ", str(exc)), str(exc)
    else:
        store.delete_run(read_bundle(attack).run.run_id)  # deleting it removed nothing it poisoned
    teammate = make_bundle(2, 1)  # a teammate's push of the same outputs
    result = store.ingest(teammate)
    assert result.created
    drifted = store.ingest(make_bundle(3, 1, drift={"linear_10_5": 1}))  # reads the shared arrays to compare
    comparison = store.compare(result.run_id, drifted.run_id, "bitwise")
    assert comparison.worst.value == "drift"
    assert stored_problems(store, read_bundle(teammate).arrays.blobs) == {}


def test_a_bundles_own_checked_streams_are_kept_without_a_second_compression(store):
    data = make_bundle(4, 1)
    bundle = read_bundle(data, streams=True)
    store.ingest(data)
    with store.engine.connect() as conn:
        kept = dict(conn.execute(ArrayRow.__table__.select().with_only_columns(ArrayRow.sha256, ArrayRow.data)).all())
    assert {sha: bytes(kept[sha]) for sha in bundle.streams} == bundle.streams  # the file's bytes, as checked
    assert stored_problems(store, kept) == {}


def test_stored_problem_is_strict_where_reading_is_tolerant():
    import hashlib

    raw = bytes(range(256)) * 16
    sha = hashlib.sha256(raw).hexdigest()
    assert stored_problem(sha, "deflate", len(raw), deflate(raw)) is None
    cases = {
        "bytes follow the end": deflate(raw) + b"junk",
        "inflate to more than": deflate(raw + b"xyz"),
        "cut short": deflate(raw)[:-6],
        "do not match its sha256": deflate(raw[::-1]),
        "do not inflate": b"\xff" * 40,
    }
    for words, stored in cases.items():
        assert words in stored_problem(sha, "deflate", len(raw), stored), words
    assert salvage(sha, len(raw), cases["bytes follow the end"]) == raw
    assert salvage(sha, len(raw), cases["inflate to more than"]) == raw
    assert salvage(sha, len(raw), cases["do not match its sha256"]) is None


# ---------------------------------------------------------------- driftboard db repair


def _poison(url: str, sha: str, stored: bytes) -> None:
    """Write a row the way an older driftboard could have kept it (the attack above, or damage)."""
    with Store(url) as store, store.engine.begin() as conn:
        conn.execute(update(ArrayRow).where(ArrayRow.sha256 == sha).values(data=stored, stored_bytes=len(stored)))


def test_db_repair_rewrites_bad_arrays_from_their_own_bytes_or_a_bundle_and_names_what_it_cannot(
        capsys, fresh_db, tmp_path):
    (tmp_path / "bundles").mkdir()
    first = write_bundle_file(tmp_path / "bundles", 1, 1)
    second = write_bundle_file(tmp_path / "bundles", 2, 1, drift={"mlp_kaiming": 2})
    with Store(fresh_db) as store:
        store.ingest(first)
        store.ingest(second)
    blobs = read_bundle(first).arrays.blobs | read_bundle(second).arrays.blobs
    run = read_bundle(second).run
    longer, trailing, lost = (c.output.sha256 for c in run.cases[:3])  # linear_10_5 is shared by both runs
    _poison(fresh_db, longer, deflate(blobs[longer] + b"\x00" * 5))  # what the attack left behind
    _poison(fresh_db, trailing, deflate(blobs[trailing]) + b"trailing")
    _poison(fresh_db, lost, zlib.compress(b"not the array"))

    code, out, err = run_cli(capsys, "db", "repair", "--db", fresh_db)
    lines = out.strip().splitlines()
    assert code == 1 and err == ""
    assert f"array {longer[:12]}…: repaired from its own stored bytes (its stored bytes inflate to more than " \
           f"its {len(blobs[longer])} bytes)" in lines
    assert f"array {trailing[:12]}…: repaired from its own stored bytes (8 bytes follow the end of its stored " \
           "stream)" in lines
    needed = sorted({r.run_id for r in (read_bundle(first).run, run)
                     if any(ref.sha256 == lost for c in r.cases for ref in c.refs())})
    assert any(line.startswith(f"array {lost[:12]}…: not repaired (its stored bytes do not inflate")
               and line.endswith(f"needed by run{'s' if len(needed) > 1 else ''} {', '.join(needed)}: give a "
                                 "bundle of one of them as a SOURCE") for line in lines), lines
    assert lines[-1] == f"checked {len(blobs):,} arrays: 2 repaired, 1 not repaired"

    code, out, err = run_cli(capsys, "db", "repair", "--db", fresh_db, str(tmp_path / "bundles"))
    assert code == 0 and err == "", (out, err)
    assert f"array {lost[:12]}…: repaired from {tmp_path / 'bundles'}" in out
    assert out.strip().splitlines()[-1] == f"checked {len(blobs):,} arrays: 1 repaired, 0 not repaired"
    with Store(fresh_db) as store:
        for sha, raw in blobs.items():
            assert store.arrays().raw(sha) == raw
        assert stored_problems(store, blobs) == {}
    assert integrity_problems(fresh_db, deep=True) == []

    code, out, _ = run_cli(capsys, "db", "repair", "--db", fresh_db)
    assert code == 0 and out.strip() == f"checked {len(blobs):,} arrays: every one is whole"


def test_db_repair_says_which_source_it_could_not_read(capsys, sqlite_url, tmp_path):
    run, arrays = make_run(5, 1)
    with Store(sqlite_url) as store:
        from driftboard.core.bundle import bundle_bytes

        store.ingest(bundle_bytes(run, arrays))
    sha = run.cases[0].output.sha256
    _poison(sqlite_url, sha, b"\x00garbage")
    broken = tmp_path / "broken.driftboard"
    broken.write_bytes(b"PK\x03\x04 not really")
    code, out, err = run_cli(capsys, "db", "repair", "--db", sqlite_url, str(broken), str(tmp_path / "missing"))
    assert code == 1
    assert err.splitlines() == [f"source {broken}: invalid bundle: file: truncated or corrupt archive "
                                f"(File is not a zip file) (skipped)",
                                f"source {tmp_path / 'missing'}: no such bundle file or directory (skipped)"]
    assert f"needed by run {run.run_id}: give a bundle" in out


def test_db_repair_has_help_with_an_example(capsys):
    code, out, _ = run_cli(capsys, "db", "repair", "--help")
    assert code == 0 and "Examples:" in out and "driftboard db repair" in out
