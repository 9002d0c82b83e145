"""Fuzzing the upload path: mutated and generated bundles go through ``Store.ingest`` into a real database.

The only outcomes allowed: the run is stored and reads back exactly as uploaded (every manifest field,
every array's bytes), or a named one-line ``DriftboardError`` is raised and no row of any table was
written. ``tests/test_fuzz_bundle.py`` fuzzes the reader alone; this adds what only the database can get
wrong: text a column cannot hold, integers beyond a column's range, times that overflow in UTC, values
longer than a column, many runs sharing arrays and outcomes.

CI runs DRIFTBOARD_FUZZ_EXAMPLES (default 100) examples per property on SQLite and a quarter of that on
PostgreSQL; the long campaign is ``benchmarks/fuzz_bundles.py``, which runs this file too.
"""

from __future__ import annotations

import copy
import hashlib
import io
import itertools
import json
import math
import os
import pickle
import uuid
import zipfile
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from db_factory import make_run
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from test_bundle import edit_manifest, small_run
from test_fuzz_bundle import json_paths, lying_bundles

from driftboard.core.bundle import MANIFEST, bundle_bytes, manifest_of, read_bundle
from driftboard.core.errors import BundleError, DriftboardError, StoreError
from driftboard.core.run import DTYPES, ArrayRef, CaseResult, MemoryArrays, Run
from driftboard.db.store import Store

EXAMPLES = int(os.environ.get("DRIFTBOARD_FUZZ_EXAMPLES", "100"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
fuzz_pg = settings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=[HealthCheck.too_slow])

TABLES = ("machines", "environments", "runs", "run_tags", "arrays", "case_outcomes", "outcome_arrays",
          "case_results", "goldens", "verdicts")
_IDS = itertools.count()


def _realistic() -> tuple[Run, MemoryArrays]:
    """A run of the real fingerprint's size and shape, with three of the suite's small cases."""
    run, arrays = make_run(7, 3, devices=("cpu", "cuda"), cuda="12.4", driver="550.54.15", error_case="rng_randn",
                           gpu="NVIDIA A100-SXM4-80GB", tags=("nightly",), label="a100", note="n")
    cases = tuple(c for c in run.cases if c.case_id in ("linear_10_5", "mlp_kaiming", "rng_randn")
                  and c.dtype == "float32" and c.device == "cpu")
    keep = {ref.sha256 for c in cases for ref in c.refs()}
    return replace(run, cases=cases), MemoryArrays({sha: arrays.blobs[sha] for sha in keep})


REAL_RUN, REAL_ARRAYS = _realistic()
REAL = bundle_bytes(REAL_RUN, REAL_ARRAYS)
SMALL = bundle_bytes(*small_run())
REAL_MANIFEST = json.loads(zipfile.ZipFile(io.BytesIO(REAL)).read(MANIFEST))


def fresh_id() -> str:
    return f"fz{next(_IDS):07d}-{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------- the property every example must hold


def row_counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def ingest_or_refuse(store: Store, data: bytes, *, fuzzing: bool = False) -> str:
    """Store ``data``: stored exactly, or refused by name with nothing written.

    Returns "stored", "duplicate" or "refused: <the message>".

    ``fuzzing``: tell hypothesis the outcome (``--hypothesis-show-statistics`` counts them).
    """
    before = row_counts(store)
    try:
        result = store.ingest(data, uploader="fuzz")
    except DriftboardError as exc:
        message = str(exc)
        assert "\n" not in message and message, repr(message)
        assert isinstance(exc, (BundleError, StoreError)), type(exc)
        assert row_counts(store) == before, message  # nothing written, not even a machine or an array
        if fuzzing:
            reader = _reader_refuses(data)
            event(f"refused by {'the reader' if reader else 'the store'} ({type(exc).__name__})")
        return f"refused: {message}"
    bundle = read_bundle(data)
    after = row_counts(store)
    if not result.created:
        assert after == before
        if fuzzing:
            event("already stored")
        return "duplicate"
    assert after["runs"] == before["runs"] + 1
    run, arrays = store.load_run(result.run_id)
    assert manifest_of(run) == manifest_of(bundle.run)  # every field as uploaded
    for case in bundle.run.cases:
        for ref in case.refs():
            assert arrays.raw(ref.sha256) == bundle.arrays.blobs[ref.sha256]  # every bit: NaN payloads too
    assert stored_problems(store, bundle.arrays.blobs) == {}  # kept in a verified form, nothing after its end
    if fuzzing:
        event("stored")
    return "stored"


def stored_problems(store: Store, shas) -> dict[str, str]:
    """sha256 -> what is wrong with how the store keeps that array (``db.store.arrays.stored_problem``)."""
    from sqlalchemy import select

    from driftboard.db.models import ArrayRow
    from driftboard.db.store.arrays import stored_problem

    with store.engine.connect() as conn:
        rows = conn.execute(select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data)
                            .where(ArrayRow.sha256.in_(sorted(shas)))).all()
    problems = {sha: stored_problem(sha, codec, nbytes, bytes(data)) for sha, codec, nbytes, data in rows}
    return {sha: problem for sha, problem in problems.items() if problem is not None}


def _reader_refuses(data: bytes) -> bool:
    try:
        read_bundle(data)
    except BundleError:
        return True
    return False


# ---------------------------------------------------------------- the databases (one per module: fast examples)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    with Store(str(tmp_path_factory.mktemp("fuzz") / "fuzz.sqlite")) as store:
        yield store


@pytest.fixture(scope="module")
def postgres_store():
    from conftest import _postgres_problem
    from test_faults import postgres_schema, upgrade_schema

    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable ({problem}): see tests/conftest.py")
    with postgres_schema("fuzz") as url:
        upgrade_schema(url)
        with Store(url) as store:
            yield store


# ---------------------------------------------------------------- mutations (the ideas of test_fuzz_bundle.py)

HOSTILE_TEXT = [
    "\x00", "a\x00b", "\ud800", "x\udfff", "\udc80\udc81", "\u202e\u2066", "\ufeff", "\U0001f600" * 3,
    "'; DROP TABLE runs; --", "\" OR 1=1 --", "%_\\", "<script>alert(1)</script>", "[x](javascript:alert(1))",
    "x" * 300, "é" * 201, pickle.dumps(object).decode("latin-1"), "",
]
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_TEXT),
                 st.text(st.sampled_from(["\x00", "\ud800", "a", "'", '"', "\\", "%", "\u0301"]), max_size=8))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


PATHS = [p for p in json_paths(REAL_MANIFEST) if p]


def _edit(change) -> bytes | None:
    """The realistic bundle with ``change`` applied to its manifest, under a run id not stored yet."""
    def edit(manifest):
        change(manifest)
        run = manifest.get("run")
        if isinstance(run, dict) and run.get("run_id") == REAL_RUN.run_id:
            run["run_id"] = fresh_id()

    try:
        return edit_manifest(REAL, edit)
    except (ValueError, TypeError):  # the test's own json.dumps refused the value
        return None


def _set(path: tuple, value: Any):
    def change(manifest):
        node = manifest
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return change


def check_manifest_field_replaced(store: Store, path: tuple, value: Any) -> None:
    data = _edit(_set(path, value))
    if data is not None:
        ingest_or_refuse(store, data, fuzzing=True)


@fuzz
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_manifest_field_replaced_by_anything(sqlite_store, path, value) -> None:
    check_manifest_field_replaced(sqlite_store, path, value)


@pytest.mark.postgres
@fuzz_pg
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_manifest_field_replaced_by_anything_postgres(postgres_store, path, value) -> None:
    check_manifest_field_replaced(postgres_store, path, value)


@fuzz
@given(st.sampled_from(PATHS))
def test_manifest_field_removed(sqlite_store, path) -> None:
    def change(manifest):
        node = manifest
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    ingest_or_refuse(sqlite_store, _edit(change), fuzzing=True)


@fuzz
@given(st.data())
def test_byte_mutations(sqlite_store, data) -> None:
    raw = bytearray(data.draw(st.sampled_from([SMALL, REAL])))
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    ingest_or_refuse(sqlite_store, bytes(raw), fuzzing=True)


@fuzz
@given(st.sampled_from([SMALL, REAL]), st.integers(0, 100), st.binary(max_size=64))
def test_truncation_and_appended_garbage(sqlite_store, source, percent, tail) -> None:
    ingest_or_refuse(sqlite_store, source[: len(source) * percent // 100] + tail, fuzzing=True)


# ---------------------------------------------------------------- valid container, lying compressed stream

REAL_SHAS = sorted(REAL_ARRAYS.blobs)


def check_lying_stream(store: Store, lie: str, data: bytes) -> None:
    """A lying stream is refused by name, or its array is stored verified; either way an honest push of the
    same outputs afterwards reads every array back (the lie poisoned nothing for the runs that share it)."""
    outcome = ingest_or_refuse(store, data, fuzzing=True)
    assert outcome in ("stored", "duplicate") or outcome.startswith("refused: invalid bundle: cases["), (lie, outcome)
    teammate = _edit(lambda m: None)  # the same outputs, pushed afterwards by someone else
    assert ingest_or_refuse(store, teammate) == "stored"  # every array read back bit for bit, stored verified


@fuzz
@given(lying_bundles(REAL, REAL_SHAS))
def test_a_lying_compressed_stream_never_reaches_the_store(sqlite_store, case) -> None:
    check_lying_stream(sqlite_store, *case)


@pytest.mark.postgres
@fuzz_pg
@given(lying_bundles(REAL, REAL_SHAS))
def test_a_lying_compressed_stream_never_reaches_the_store_postgres(postgres_store, case) -> None:
    check_lying_stream(postgres_store, *case)


# ---------------------------------------------------------------- generated runs

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,15}", fullmatch=True)
DEVICES = st.sampled_from(["cpu", "cuda", "cuda:0", "mps", "xpu:1"]) | NAMES
CASE_DTYPES = st.sampled_from(["float32", "float64", "float16", "bfloat16"]) | NAMES
HEX = st.binary(min_size=32, max_size=32).map(bytes.hex)
SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 1e-310, 5e-324,
                    np.finfo(np.float32).max, np.finfo(np.float64).tiny], dtype=np.float64)


@st.composite
def arrays(draw, store: MemoryArrays) -> ArrayRef:
    """An array of any dtype: arbitrary bits (NaN payloads, infinities, subnormals) or the special values."""
    dtype = draw(st.sampled_from(list(DTYPES)))
    itemsize = DTYPES[dtype].itemsize
    if dtype in ("float32", "float64") and draw(st.booleans()):
        values = SPECIAL.astype(DTYPES[dtype])
        shape: tuple[int, ...] = (len(values),)
        raw = values.tobytes()
    else:
        shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
        n = math.prod(shape) * itemsize
        raw = draw(st.binary(min_size=n, max_size=n))
    ref = ArrayRef(hashlib.sha256(raw).hexdigest(), dtype, shape)
    store.blobs[ref.sha256] = raw
    return ref


SAFE_TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
SAFE_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | SAFE_TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(SAFE_TEXT, children, max_size=4),
    max_leaves=12,
)


@st.composite
def cases(draw, store: MemoryArrays, clean: bool) -> CaseResult:
    output = draw(st.none() | arrays(store))
    layers = tuple((draw(NAMES if clean else NAMES | TEXT), draw(arrays(store))) for _ in range(draw(st.integers(0, 2))))
    time_axis = None
    if output is not None and output.shape and draw(st.booleans()):
        time_axis = draw(st.integers(0, len(output.shape) - 1))
    return CaseResult(
        case_id=draw(NAMES), device=draw(DEVICES), dtype=draw(CASE_DTYPES), input_digest=draw(HEX),
        weight_digest=draw(HEX), output=output, layers=layers, time_axis=time_axis,
        repeats=draw(st.integers(1, 5) if clean else st.integers(1, 2**40)), repeat_identical=draw(st.booleans()),
        seconds=draw(st.floats(0, 1e308)), error=draw(st.none() | (SAFE_TEXT if clean else TEXT)) if output is None else None,
    )


ZONES = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
WHEN = st.one_of(
    st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), timezones=ZONES).map(datetime.isoformat),
    st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(datetime.isoformat),  # naive: taken as UTC
    st.dates().map(lambda d: d.isoformat()),
)
SAFE_WHEN = st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=ZONES).map(datetime.isoformat)
FINGERPRINT_KEYS = [("identity", "hostname"), ("identity", "machine_id"), ("torch", "version"), ("torch", "cuda"),
                    ("torch", "cpu_capability"), ("gpu", "cuda_runtime"), ("gpu", "cudnn"), ("gpu", "driver"),
                    ("cpu", "model"), ("gpu", "devices")]


@st.composite
def runs(draw) -> tuple[bool, bytes]:
    """A run built from scratch. Half are clean (every value within what the reader and the columns take:
    they must be stored); the other half may hold anything: hostile text, huge integers, extreme times."""
    clean = draw(st.booleans())
    text_ = SAFE_TEXT if clean else TEXT
    store = MemoryArrays()
    fingerprint = copy.deepcopy(REAL_RUN.fingerprint)
    for section, key in draw(st.lists(st.sampled_from(FINGERPRINT_KEYS), max_size=4, unique=True)):
        if draw(st.booleans()):
            fingerprint[section].pop(key, None)
        else:
            fingerprint[section][key] = draw(SAFE_JSON if clean else JSON_VALUES)
    case_list = draw(st.lists(cases(store, clean), max_size=5))
    if clean or draw(st.integers(0, 9)):  # mostly unique keys: a duplicate case is the reader's to refuse
        case_list = list({c.key: c for c in case_list}.values())
    run = Run(
        run_id=fresh_id() if clean or draw(st.integers(0, 9)) else draw(NAMES),
        created_at=draw(SAFE_WHEN if clean else WHEN), suite_id=draw(NAMES),
        suite_version=draw(st.integers(1, 1000) if clean else st.integers(1, 2**40)),
        variant=draw(NAMES), fingerprint=fingerprint, fingerprint_digest=draw(HEX), cases=tuple(case_list),
        settings=draw(st.dictionaries(text_, SAFE_JSON if clean else JSON_VALUES, max_size=3)),
        label=draw(SAFE_TEXT if clean else TEXT), note=draw(text_),
        tags=tuple(draw(st.lists(SAFE_TEXT.filter(bool) if clean else TEXT, max_size=4))),
        tool_version=draw(SAFE_TEXT if clean else TEXT | st.just("0.1.0")),
        imported=draw(st.booleans()) if not case_list else False,
    )
    event("clean run" if clean else "anything goes")
    used = {ref.sha256 for c in run.cases for ref in c.refs()}
    return clean, bundle_bytes(run, MemoryArrays({sha: raw for sha, raw in store.blobs.items() if sha in used}))


@fuzz
@given(runs())
def test_generated_runs(sqlite_store, run) -> None:
    clean, data = run
    outcome = ingest_or_refuse(sqlite_store, data, fuzzing=True)
    assert outcome == "stored" or not clean, outcome  # a valid run is never refused


@pytest.mark.postgres
@fuzz_pg
@given(runs())
def test_generated_runs_postgres(postgres_store, run) -> None:
    clean, data = run
    outcome = ingest_or_refuse(postgres_store, data, fuzzing=True)
    assert outcome == "stored" or not clean, outcome


# ---------------------------------------------------------------- named cases the fuzzer found (both databases)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request):
    return request.getfixturevalue(f"{request.param}_store")


def _run_field(name: str, value: Any):
    return lambda m: m["run"].update({name: value})


def _fingerprint(section: str, key: str, value: Any):
    return lambda m: m["fingerprint"][section].update({key: value})


REFUSED = {  # each crashed a driver, or was stored by one database and refused by the other, before db/store/ingest.py checked it
    "created_at before year 1 in UTC": (_run_field("created_at", "0001-01-01T00:30:00+01:00"), "run.created_at"),
    "created_at after 9999 in UTC": (_run_field("created_at", "9999-12-31T23:59:59-05:00"), "run.created_at"),
    "repeats beyond 32 bits": (lambda m: m["cases"][0].update(repeats=2**31), "cases[0].repeats"),
    "suite version beyond 32 bits": (lambda m: m["run"]["suite"].update(version=2**63), "run.suite.version"),
}


# Text no column can hold (NUL, lone surrogates) never reaches the store: the bundle reader shows
# every control character and surrogate as its escape (core/text.py), so both databases keep the same text.
MADE_VISIBLE = {
    "lone surrogate in the label": (_run_field("label", "gpu \ud800"), lambda s, r: s.run(r).label, "gpu \\ud800"),
    "NUL in the note": (_run_field("note", "a\x00b"), lambda s, r: s.run(r).note, "a\\x00b"),
    "NUL in a tag": (_run_field("tags", ["ok", "b\x00d"]), lambda s, r: s.run(r).tags[1], "b\\x00d"),
    "lone surrogate in the hostname": (_fingerprint("identity", "hostname", "\ud800"),
                                       lambda s, r: s.load_run(r)[0].fingerprint["identity"]["hostname"], "\\ud800"),
    "lone surrogate in the torch version": (_fingerprint("torch", "version", "2.5\udc80"),
                                            lambda s, r: s.run(r).environment.torch_version, "2.5\\udc80"),
}


@pytest.mark.parametrize("kind", list(MADE_VISIBLE))
def test_text_no_column_can_hold_is_stored_as_its_visible_escape(any_store, kind):
    change, stored, expected = MADE_VISIBLE[kind]
    data = _edit(change)
    result = any_store.ingest(data)
    assert stored(any_store, result.run_id) == expected


@pytest.mark.parametrize("kind", list(REFUSED))
def test_values_no_column_can_hold_are_refused_by_field_with_nothing_written(any_store, kind):
    change, field_name = REFUSED[kind]
    data = _edit(change)
    before = row_counts(any_store)
    with pytest.raises(BundleError) as err:
        any_store.ingest(data)
    assert str(err.value).startswith(f"invalid bundle: {field_name}: ") and "\n" not in str(err.value)
    assert row_counts(any_store) == before


def test_a_torch_version_longer_than_its_column_is_stored_cut_to_the_column(any_store):
    data = _edit(_fingerprint("torch", "version", "2.5.1+" + "x" * 190))
    assert ingest_or_refuse(any_store, data) == "stored"  # PostgreSQL refused it: the column is 128 characters
    run_id = read_bundle(data).run.run_id
    assert any_store.run(run_id).environment.torch_version == ("2.5.1+" + "x" * 190)[:128]


def test_html_sql_and_pickle_text_is_stored_as_inert_text(any_store):
    payload = pickle.dumps(os.system, protocol=0).decode("ascii")  # a text pickle: b"cposix\nsystem\n…"
    data = _edit(lambda m: m["run"].update(label="<img src=x onerror=alert(1)>'; DROP TABLE runs;--",
                                           note=payload, tags=["%", "_", "' OR '1'='1"]))
    assert ingest_or_refuse(any_store, data) == "stored"
    summary = any_store.run(read_bundle(data).run.run_id)
    assert summary.label.startswith("<img") and summary.note == payload and "' OR '1'='1" in summary.tags
    assert row_counts(any_store)["runs"] >= 1


def test_an_uploader_name_with_undecodable_bytes_is_stored_readably(any_store):
    login = b"j\xf6rg".decode("utf-8", "surrogateescape")  # what os.environ gives for a Latin-1 login name
    data = _edit(lambda m: None)
    result = any_store.ingest(data, uploader=login + "\x00")
    assert any_store.run(result.run_id).uploader == "j?rg"


def test_nan_inf_and_subnormal_arrays_are_stored_bit_for_bit(any_store):
    run, arrays = small_run()
    store = MemoryArrays(dict(arrays.blobs))
    special = store.add(SPECIAL.astype(np.float32), "float32")
    special64 = store.add(SPECIAL, "float64")
    cases_ = (replace(run.cases[0], output=special, layers=(("l", special64),), time_axis=None),)
    data = bundle_bytes(replace(run, run_id=fresh_id(), cases=cases_), MemoryArrays(
        {special.sha256: store.blobs[special.sha256], special64.sha256: store.blobs[special64.sha256]}))
    assert ingest_or_refuse(any_store, data) == "stored"


def _encrypted_flag(data: bytes) -> bytes:
    raw = bytearray(data)
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 1  # "encrypted" in the central directory entry of manifest.json
    return bytes(raw)


READER_CRASHES = {  # found by the long campaigns: they escaped the reader as RuntimeError and OverflowError
    "an entry flagged as encrypted": _encrypted_flag(SMALL),
    "seconds beyond the float range": _edit(lambda m: m["cases"][0].update(seconds=10**400)),
}


@pytest.mark.parametrize("kind", list(READER_CRASHES))
def test_reader_crashes_found_by_the_campaign_are_refused_by_name(sqlite_store, kind):
    assert ingest_or_refuse(sqlite_store, READER_CRASHES[kind]).startswith("refused: invalid bundle: ")


def test_every_database_left_behind_by_the_fuzzer_is_whole(sqlite_store):
    from test_faults import integrity_problems

    assert integrity_problems(sqlite_store.url, deep=True) == []


@pytest.mark.postgres
def test_the_postgres_database_left_behind_by_the_fuzzer_is_whole(postgres_store):
    from test_faults import integrity_problems

    assert integrity_problems(postgres_store.url, deep=True) == []


