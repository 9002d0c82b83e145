"""Fuzzing the bundle reader: mutated and generated bundles either read or raise a BundleError.

Any other exception is a crash a hostile upload could trigger. CI runs a
short campaign (DRIFTBOARD_FUZZ_EXAMPLES, default 300 per property); the long
one is `python benchmarks/fuzz_bundles.py`.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bundle import edit_manifest, rezip, small_run

from driftboard.core.bundle import ARRAY_PREFIX, MANIFEST, bundle_bytes, read_bundle
from driftboard.core.errors import BundleError

EXAMPLES = int(os.environ.get("DRIFTBOARD_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RUN, ARRAYS = small_run()
VALID = bundle_bytes(RUN, ARRAYS)
MANIFEST_JSON = json.loads(zipfile.ZipFile(io.BytesIO(VALID)).read(MANIFEST))


def read_or_reject(data: bytes) -> None:
    """The only allowed outcomes: a validated bundle, or a named one-line BundleError."""
    try:
        bundle = read_bundle(data)
    except BundleError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("invalid bundle: ")
        return
    for case in bundle.run.cases:  # what was accepted must be usable
        for ref in case.refs():
            assert bundle.arrays.load(ref).shape == ref.shape


@fuzz
@given(st.data())
def test_byte_mutations(data: st.DataObject) -> None:
    raw = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] = data.draw(st.integers(0, 255))
    read_or_reject(bytes(raw))


@fuzz
@given(st.integers(0, len(VALID)), st.binary(max_size=64))
def test_truncation_and_appended_garbage(cut: int, tail: bytes) -> None:
    read_or_reject(VALID[:cut] + tail)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def json_paths(node, prefix=()):
    """Every path to a value in a JSON tree, as tuples of keys and indexes."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from json_paths(value, (*prefix, i))


PATHS = [p for p in json_paths(MANIFEST_JSON) if p]


@fuzz
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_manifest_field_replaced_by_anything(path: tuple, value) -> None:
    def change(manifest):
        node = manifest
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    try:
        data = edit_manifest(VALID, change)
    except ValueError:  # the test's own json.dumps refused the value (NaN is allowed by it)
        return
    read_or_reject(data)


@fuzz
@given(st.sampled_from(PATHS))
def test_manifest_field_removed(path: tuple) -> None:
    def change(manifest):
        node = manifest
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    read_or_reject(edit_manifest(VALID, change))


@fuzz
@given(st.binary(max_size=2048))
def test_arbitrary_manifest_bytes(raw: bytes) -> None:
    read_or_reject(rezip(VALID, lambda e: e.update({MANIFEST: raw})))


ENTRY_NAMES = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=30)


@fuzz
@given(st.dictionaries(ENTRY_NAMES, st.binary(max_size=200), max_size=5))
def test_extra_and_replaced_entries(entries: dict[str, bytes]) -> None:
    read_or_reject(rezip(VALID, lambda e: e.update(entries)))


# ------------------------------------------------------------ named hostile cases


def test_pickle_payloads_are_never_unpickled(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Boom())
    sha = RUN.cases[0].output.sha256
    for data in (
        payload,
        rezip(VALID, lambda e: e.update({MANIFEST: payload})),
        rezip(VALID, lambda e: e.update({ARRAY_PREFIX + sha: payload})),
        rezip(VALID, lambda e: e.update({"arrays/payload.pkl": payload})),
        edit_manifest(VALID, lambda m: m["run"].update(note=payload.decode("latin-1"))),
    ):
        read_or_reject(data)
    assert not marker.exists()


@pytest.mark.parametrize("dtype", [">f4", "<f4", "float32be", "O", "V8", "object"])
def test_other_byte_orders_and_object_dtypes_are_refused(dtype: str) -> None:
    with pytest.raises(BundleError, match=r"output\.dtype"):
        read_bundle(edit_manifest(VALID, lambda m: m["cases"][0]["output"].update(dtype=dtype)))


def test_big_endian_bytes_under_a_little_endian_label_fail_the_digest() -> None:
    sha = RUN.cases[0].output.sha256
    swapped = ARRAYS.load(RUN.cases[0].output).astype(">f4").tobytes()
    with pytest.raises(BundleError, match="sha256"):
        read_bundle(rezip(VALID, lambda e: e.update({ARRAY_PREFIX + sha: swapped})))


def test_nan_inf_and_subnormals_in_arrays_are_data_not_errors() -> None:
    from driftboard.core.run import MemoryArrays

    arrays = MemoryArrays()
    special = np.array([np.nan, np.inf, -np.inf, 1e-45, -0.0, 0.0], dtype=np.float32)
    ref = arrays.add(special, "float32")
    from dataclasses import replace

    run = replace(RUN, cases=(replace(RUN.cases[0], output=ref, layers=(), time_axis=None),))
    loaded = read_bundle(bundle_bytes(run, arrays))
    np.testing.assert_array_equal(loaded.arrays.load(ref).view(np.uint32), special.view(np.uint32))
