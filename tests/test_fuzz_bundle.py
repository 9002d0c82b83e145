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
import struct
import zipfile
import zlib

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


# ------------------------------------------------------------ valid container, lying compressed stream


def deflate(raw: bytes, level: int = 6) -> bytes:
    """A raw deflate stream (zlib wbits -15), as a zip entry holds it."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return compressor.compress(raw) + compressor.flush()


def build_zip(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip archive written by hand from (name, deflate stream, declared size, declared CRC-32) entries.

    ``zipfile`` only writes streams it compressed itself; a hostile writer writes whatever it likes.
    """
    out, central = bytearray(), bytearray()
    for name, stream, size, crc in entries:
        raw_name = name.encode("ascii")
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, crc, len(stream), size,
                           len(raw_name), 0) + raw_name + stream
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, crc,
                               len(stream), size, len(raw_name), 0, 0, 0, 0, 0o644 << 16, offset) + raw_name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    return bytes(out + central + end)


# How a stream can lie about an array's bytes while the archive around it is valid: the name, the declared
# size and CRC-32 are the array's; the stream is not exactly it. Each takes (the array's bytes, extra bytes).
LIES = {
    "extra bytes after the array": lambda raw, extra: (deflate(raw + extra), len(raw), zlib.crc32(raw)),
    "ends early, header claims more": lambda raw, extra: (deflate(raw[: len(raw) // 2]), len(raw), zlib.crc32(raw)),
    "ends early, header and CRC of the short bytes claim more": lambda raw, extra: (
        deflate(raw[: len(raw) // 2]), len(raw), zlib.crc32(raw[: len(raw) // 2])),
    "a second deflate block after the final one": lambda raw, extra: (deflate(raw) + deflate(extra), len(raw),
                                                                       zlib.crc32(raw)),
    "bytes after the end of the stream": lambda raw, extra: (deflate(raw) + extra, len(raw), zlib.crc32(raw)),
}


def lying_bundle(data: bytes, sha: str, lie: str, extra: bytes = b"\x00" * 8) -> bytes:
    """``data`` rewritten by hand, the entry of array ``sha`` replaced by the stream ``LIES[lie]`` makes."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        contents = {info.filename: zf.read(info) for info in zf.infolist()}
    entries = []
    for name, content in contents.items():
        if name == ARRAY_PREFIX + sha:
            entries.append((name, *LIES[lie](content, extra)))
        else:
            entries.append((name, deflate(content), len(content), zlib.crc32(content)))
    return build_zip(entries)


ARRAY_SHAS = sorted({ref.sha256 for case in RUN.cases for ref in case.refs()})


@st.composite
def lying_bundles(draw, data: bytes = VALID, shas: list[str] = ARRAY_SHAS) -> tuple[str, bytes]:
    """A valid bundle with one array entry's stream replaced by a lie: (which lie, the bundle's bytes)."""
    lie = draw(st.sampled_from(sorted(LIES)))
    return lie, lying_bundle(data, draw(st.sampled_from(shas)), lie, draw(st.binary(min_size=1, max_size=64)))


def exactly_its_arrays(bundle) -> bool:
    """Every stream a bundle hands to a store inflates to exactly its array and ends there."""
    for sha, stream in bundle.streams.items():
        inflater = zlib.decompressobj(-15)
        if inflater.decompress(stream) != bundle.arrays.blobs[sha] or not inflater.eof or inflater.unused_data:
            return False
    return True


@fuzz
@given(lying_bundles())
def test_a_lying_compressed_stream_is_refused_by_name(case: tuple[str, bytes]) -> None:
    lie, data = case
    try:
        bundle = read_bundle(data, streams=True)
    except BundleError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("invalid bundle: cases[")  # names the field
        return
    assert exactly_its_arrays(bundle), lie  # accepted: then what a store would keep is exactly each array


def test_the_hand_written_archive_is_a_valid_bundle_when_nothing_lies() -> None:
    with zipfile.ZipFile(io.BytesIO(VALID)) as zf:
        contents = {info.filename: zf.read(info) for info in zf.infolist()}
    honest = build_zip([(name, deflate(c), len(c), zlib.crc32(c)) for name, c in contents.items()])
    bundle = read_bundle(honest, streams=True)
    assert bundle.digest == read_bundle(VALID).digest and exactly_its_arrays(bundle)
    assert set(bundle.streams) == set(ARRAY_SHAS)


@pytest.mark.parametrize("lie", sorted(LIES))
def test_each_lie_is_refused_naming_the_array_entry(lie: str) -> None:
    sha = RUN.cases[0].output.sha256
    with pytest.raises(BundleError, match=r"^invalid bundle: cases\[0\]\.output: ") as err:
        read_bundle(lying_bundle(VALID, sha, lie))
    assert f"entry arrays/{sha[:12]}…: " in str(err.value)


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
