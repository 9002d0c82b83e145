"""The run bundle: round trip, and every kind of bad input refused with a named one-line error."""

from __future__ import annotations

import io
import json
import math
import pickle
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import driftboard.core.bundle
from driftboard.core.bundle import (
    ARRAY_PREFIX,
    MANIFEST,
    Limits,
    bundle_bytes,
    manifest_of,
    read_bundle,
    write_bundle,
)
from driftboard.core.errors import BundleError, BundleIntegrityError, BundleTooLargeError, BundleVersionError
from driftboard.core.run import CaseResult, MemoryArrays, Run, to_float64

HEX = "ab" * 32


def small_run() -> tuple[Run, MemoryArrays]:
    arrays = MemoryArrays()
    seq = np.linspace(-1, 1, 30, dtype=np.float32).reshape(10, 1, 3)
    out = arrays.add(seq, "float32")
    layer = arrays.add(np.arange(6, dtype=np.float64).reshape(2, 3), "float64")
    bf16 = arrays.add(np.array([0x3F80, 0xBF80, 0x7FC0], dtype=np.uint16), "bfloat16")
    cases = (
        CaseResult("lstm_seq_regression", "cpu", "float32", HEX, HEX, out, (("lstm", layer),), time_axis=0,
                   repeats=3, repeat_identical=True, seconds=0.001),
        CaseResult("linear_10_5", "cuda", "bfloat16", HEX, HEX, bf16, repeats=3, repeat_identical=False, seconds=0.002),
        CaseResult("linear_10_5", "cpu", "float32", HEX, HEX, None, error="RuntimeError: no kernel"),
    )
    run = Run("20261124T000000Z-abcdef123456", "2026-11-24T00:00:00+00:00", "driftboard-reference", 1, "default",
              {"torch": {"version": "2.13.0"}, "identity": {"label": "<b>x</b>"}}, HEX, cases,
              settings={"intra_op_threads": 2}, label="lab", tags=("a", "b"), note="n", tool_version="0.1.0")
    return run, arrays


def rezip(data: bytes, edit) -> bytes:
    """Rebuild a bundle with ``edit(entries: dict[name, bytes])`` applied."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    edit(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return out.getvalue()


def edit_manifest(data: bytes, change) -> bytes:
    def edit(entries):
        manifest = json.loads(entries[MANIFEST])
        change(manifest)
        entries[MANIFEST] = json.dumps(manifest).encode()

    return rezip(data, edit)


@pytest.fixture
def bundle_data() -> bytes:
    run, arrays = small_run()
    return bundle_bytes(run, arrays)


def test_round_trip_keeps_every_field_and_array(tmp_path: Path) -> None:
    run, arrays = small_run()
    path = write_bundle(tmp_path / "r.driftboard", run, arrays)
    loaded = read_bundle(path)
    assert loaded.run == run
    for case in run.cases:
        for ref in case.refs():
            np.testing.assert_array_equal(loaded.arrays.load(ref), arrays.load(ref))
    bf16 = loaded.run.cases[1].output
    assert to_float64(loaded.arrays.load(bf16), "bfloat16").tolist()[:2] == [1.0, -1.0]
    assert math.isnan(to_float64(loaded.arrays.load(bf16), "bfloat16")[2])


def test_bytes_are_deterministic_and_write_leaves_no_temp_files(tmp_path: Path) -> None:
    run, arrays = small_run()
    assert bundle_bytes(run, arrays) == bundle_bytes(run, arrays)
    write_bundle(tmp_path / "a.driftboard", run, arrays)
    assert [p.name for p in tmp_path.iterdir()] == ["a.driftboard"]


def test_manifest_matches_shipped_json_schema(bundle_data: bytes) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(driftboard.core.bundle.__file__).with_name("bundle.schema.json")).read_text())
    jsonschema.validate(json.loads(zipfile.ZipFile(io.BytesIO(bundle_data)).read(MANIFEST)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"format": "driftboard-run", "schema_version": 1}, schema)


def test_reading_does_not_import_torch() -> None:
    assert "torch" not in sys.modules or "driftboard.core.capture" in sys.modules  # other tests may load capture
    import subprocess

    code = "import sys, core.bundle; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", BundleError, "empty file"),
        (b"hello world, not a bundle", BundleError, "not a driftboard bundle"),
        (pickle.dumps({"a": 1}), BundleError, "not a driftboard bundle"),
    ],
)
def test_not_a_bundle(data: bytes, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        read_bundle(data)


def test_truncated(bundle_data: bytes) -> None:
    for cut in (len(bundle_data) // 2, len(bundle_data) - 10, 40):
        with pytest.raises(BundleError, match="file|corrupt|truncated"):
            read_bundle(bundle_data[:cut])


def test_missing_manifest_and_stray_entries(bundle_data: bytes) -> None:
    with pytest.raises(BundleError, match="manifest.json: missing"):
        read_bundle(rezip(bundle_data, lambda e: e.pop(MANIFEST)))
    with pytest.raises(BundleError, match="unexpected archive entry"):
        read_bundle(rezip(bundle_data, lambda e: e.update({"payload.pkl": pickle.dumps(object)})))


@pytest.mark.parametrize(
    ("version", "error", "words"),
    [(99, BundleVersionError, "newer than this driftboard"), (0, BundleVersionError, "positive integer"),
     ("1", BundleVersionError, "positive integer"), (True, BundleVersionError, "positive integer")],
)
def test_schema_version(bundle_data: bytes, version, error, words) -> None:
    with pytest.raises(error, match=f"schema_version: .*{words}"):
        read_bundle(edit_manifest(bundle_data, lambda m: m.update(schema_version=version)))


def test_wrong_format_name(bundle_data: bytes) -> None:
    with pytest.raises(BundleError, match="format: expected 'driftboard-run'"):
        read_bundle(edit_manifest(bundle_data, lambda m: m.update(format="other")))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["cases"][0]["output"].update(shape=[10, 1, 4]), "cases[0].output"),
        (lambda m: m["cases"][0]["output"].update(shape=[10, 1, 2]), "cases[0].output"),
        (lambda m: m["cases"][0]["output"].update(dtype="float64"), "cases[0].output"),
        (lambda m: m["cases"][0]["output"].update(dtype="object"), "cases[0].output.dtype"),
        (lambda m: m["cases"][0]["output"].update(shape=[-1]), "cases[0].output.shape"),
        (lambda m: m["cases"][0]["output"].update(shape=[2**40, 2**20]), "cases[0].output.shape"),
        (lambda m: m["cases"][0]["output"].update(shape=[2**70, 2**70]), "cases[0].output.shape"),  # found by fuzzing
        (lambda m: m["cases"][0].update(repeats=0), "cases[0].repeats"),
        (lambda m: m["cases"][0].update(time_axis=7), "cases[0].time_axis"),
        (lambda m: m["cases"][0].pop("input_digest"), "cases[0].input_digest"),
        (lambda m: m["cases"][0].update(weight_digest="xyz"), "cases[0].weight_digest"),
        (lambda m: m["cases"].append(m["cases"][0]), "cases[3]"),
        (lambda m: m["run"].update(created_at="yesterday"), "run.created_at"),
        (lambda m: m["run"].update(run_id="../../etc/passwd"), "run.run_id"),
        (lambda m: m["run"].update(tags=[1, 2]), "run.tags"),
        (lambda m: m["run"]["suite"].update(version=-1), "run.suite.version"),
        (lambda m: m.update(cases={"a": 1}), "manifest.cases"),
        (lambda m: m.update(fingerprint=[1]), "manifest.fingerprint"),
    ],
)
def test_bad_fields_are_named(bundle_data: bytes, change, field: str) -> None:
    with pytest.raises(BundleError) as info:
        read_bundle(edit_manifest(bundle_data, change))
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_digest_mismatch(bundle_data: bytes) -> None:
    run, _ = small_run()
    sha = run.cases[0].output.sha256

    def flip(entries):
        raw = bytearray(entries[ARRAY_PREFIX + sha])
        raw[0] ^= 1
        entries[ARRAY_PREFIX + sha] = bytes(raw)

    with pytest.raises(BundleIntegrityError, match=r"cases\[0\]\.output: bytes do not match sha256"):
        read_bundle(rezip(bundle_data, flip))


def test_bytes_larger_than_declared(bundle_data: bytes) -> None:
    run, _ = small_run()
    sha = run.cases[0].output.sha256
    with pytest.raises(BundleTooLargeError, match=r"cases\[0\]\.output"):
        read_bundle(rezip(bundle_data, lambda e: e.update({ARRAY_PREFIX + sha: e[ARRAY_PREFIX + sha] + b"\0" * 8})))


def test_missing_array(bundle_data: bytes) -> None:
    run, _ = small_run()
    sha = run.cases[0].output.sha256
    with pytest.raises(BundleError, match="missing from the archive"):
        read_bundle(rezip(bundle_data, lambda e: e.pop(ARRAY_PREFIX + sha)))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_where_a_number_is_required(bundle_data: bytes, constant: str) -> None:
    def edit(entries):
        manifest = json.loads(entries[MANIFEST])
        manifest["cases"][0]["seconds"] = "@@"
        entries[MANIFEST] = json.dumps(manifest).replace('"@@"', constant).encode()

    with pytest.raises(BundleError, match=r"cases\[0\]\.seconds: expected a finite number"):
        read_bundle(rezip(bundle_data, edit))


def test_json_problems(bundle_data: bytes) -> None:
    with pytest.raises(BundleError, match="not UTF-8"):
        read_bundle(rezip(bundle_data, lambda e: e.update({MANIFEST: b'{"a": "\xff\xfe"}'})))
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(rezip(bundle_data, lambda e: e.update({MANIFEST: b'{"a": '})))
    with pytest.raises(BundleError, match="duplicate key"):
        read_bundle(rezip(bundle_data, lambda e: e.update({MANIFEST: b'{"a": 1, "a": 2}'})))
    with pytest.raises(BundleError, match="nested"):
        read_bundle(rezip(bundle_data, lambda e: e.update({MANIFEST: b"[" * 100_000 + b"]" * 100_000})))
    deep = json.dumps({"format": "driftboard-run", "schema_version": 1, "fingerprint": _nest(60)}).encode()
    with pytest.raises(BundleError, match="nested deeper"):
        read_bundle(rezip(bundle_data, lambda e: e.update({MANIFEST: deep})))


def _nest(depth: int) -> dict:
    node: dict = {}
    for _ in range(depth):
        node = {"x": node}
    return node


def test_size_bounds_before_and_after_decompression(bundle_data: bytes, tmp_path: Path) -> None:
    with pytest.raises(BundleTooLargeError, match="file"):
        read_bundle(bundle_data, Limits(file_bytes=1000))
    path = tmp_path / "big.driftboard"
    path.write_bytes(bundle_data)
    with pytest.raises(BundleTooLargeError, match="file"):
        read_bundle(path, Limits(file_bytes=1000))
    bomb = rezip(bundle_data, lambda e: e.update({MANIFEST: b" " * (9 * 2**20) + e[MANIFEST]}))
    assert len(bomb) < 100_000  # a few KiB that would inflate to 9 MiB
    with pytest.raises(BundleTooLargeError, match="manifest.json"):
        read_bundle(bomb)


def test_header_that_lies_about_size_is_still_bounded(bundle_data: bytes) -> None:
    """A forged zip header declaring a small size cannot make the reader inflate more."""
    bomb = rezip(bundle_data, lambda e: e.update({MANIFEST: b" " * (9 * 2**20)}))
    # Patch the declared uncompressed size in both headers to 100 bytes.
    zf = zipfile.ZipFile(io.BytesIO(bomb))
    info = zf.getinfo(MANIFEST)
    raw = bytearray(bomb)
    local = info.header_offset
    raw[local + 22: local + 26] = (100).to_bytes(4, "little")
    central = raw.find(b"PK\x01\x02" + raw[local + 4: local + 6])
    raw[central + 24: central + 28] = (100).to_bytes(4, "little")
    with pytest.raises(BundleError):
        read_bundle(bytes(raw))


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="cannot read"):
        read_bundle(tmp_path / "absent.driftboard")


def test_manifest_of_is_json_serialisable_without_nan() -> None:
    run, _ = small_run()
    json.dumps(manifest_of(replace(run, settings={"x": 1.5})), allow_nan=False)
