"""Bundle schema version 2: own cases written, read back, validated field by field; version 1 still reads."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from own_factory import chain, own_case
from runs_factory import default_suite, make_run

import driftboard.core.bundle
from driftboard.core.bundle import MANIFEST, SCHEMA_VERSION, Limits, bundle_bytes, read_bundle
from driftboard.core.errors import BundleError, BundleTooLargeError
from driftboard.core.run import MemoryArrays

X = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)


def own_run(full: bool = False) -> tuple[Any, MemoryArrays]:
    arrays = MemoryArrays()
    cases = [
        own_case(arrays, "encoder", [("", X * 2)], chain(X, 6), full=full, tolerance="ulp:4", autocast="bfloat16",
                 weights_rng=True, title="enc"),
        own_case(arrays, "dict_model", [("['a']", X), ("['b'][0]", X[:2])], chain(X, 2), whole_outputs=False),
        own_case(arrays, "broken", [], error="RuntimeError: boom"),
    ]
    return make_run([*default_suite(arrays)[:2], *cases], run_id="own-run"), arrays


def manifest_of(data: bytes) -> dict[str, Any]:
    return json.loads(zipfile.ZipFile(io.BytesIO(data)).read(MANIFEST))


def with_manifest(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(source.read(MANIFEST))
    edit(manifest)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = json.dumps(manifest).encode() if info.filename == MANIFEST else source.read(info.filename)
            target.writestr(info.filename, body)
    return out.getvalue()


@pytest.mark.parametrize("full", [False, True])
def test_own_cases_round_trip(full: bool) -> None:
    run, arrays = own_run(full)
    bundle = read_bundle(bundle_bytes(run, arrays))
    assert bundle.run == run
    assert [c.kind for c in bundle.run.cases] == ["suite", "suite", "own", "own", "own"]
    enc = bundle.run.case("encoder")
    assert enc.own.modules[0].label == "layers.0.linear (Linear), call 1"
    assert all((t.array is not None) == full for m in enc.own.modules for t in m.tensors)
    assert bundle.run.case("dict_model").output is None  # kept as statistics: no array to point at


def test_the_manifest_with_own_cases_matches_the_shipped_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(Path(driftboard.core.bundle.__file__).with_name("bundle.schema.json").read_text())
    run, arrays = own_run(full=True)
    manifest = manifest_of(bundle_bytes(run, arrays))
    assert manifest["schema_version"] == SCHEMA_VERSION == 2
    jsonschema.validate(manifest, schema)
    manifest["cases"][2]["own"]["modules"][0]["call"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, schema)


def test_a_version_1_bundle_still_reads() -> None:
    """Version 1 had no ``own``: written exactly as driftboard 0.1 wrote it, it reads as suite cases."""
    arrays = MemoryArrays()
    run = make_run(default_suite(arrays), run_id="old-run")

    def to_v1(manifest: dict[str, Any]) -> None:
        manifest["schema_version"] = 1
        for case in manifest["cases"]:
            del case["own"]

    old = with_manifest(bundle_bytes(run, arrays), to_v1)
    assert manifest_of(old)["schema_version"] == 1 and "own" not in manifest_of(old)["cases"][0]
    bundle = read_bundle(old)
    assert bundle.run == run and all(c.own is None and c.kind == "suite" for c in bundle.run.cases)
    fixture = Path(__file__).parent / "data"
    for path in sorted(fixture.glob("*.driftboard")):  # any bundle kept from earlier versions
        read_bundle(path)


def _case(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda m: next(c for c in m["cases"] if c["case_id"] == name)


ENCODER = _case("encoder")


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        node: Any = ENCODER(manifest)
        for part in path[:-1]:
            node = node[part]
        if value is KeyError:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return edit


BAD = [
    (["own"], KeyError, re.escape("cases[2].own: missing")),
    (["own", "layers"], "sometimes", re.escape("cases[2].own.layers: 'sometimes' is not one of statistics, full, none")),
    (["own", "autocast"], "float64", re.escape("cases[2].own.autocast: 'float64' is not one of float16, bfloat16")),
    (["own", "tolerance"], "ulp:x", re.escape("cases[2].own.tolerance: invalid policy")),
    (["own", "weights_rng"], "yes", re.escape("cases[2].own.weights_rng: expected bool, got a string")),
    (["own", "modules_dropped"], -1, re.escape("cases[2].own.modules_dropped: expected a non-negative integer")),
    (["own", "outputs"], [], re.escape("cases[2].own.outputs: expected at least one output tensor")),
    (["own", "modules", 0, "call"], 0, r"cases\[2\].own.modules\[0\].call: expected a call number of at least 1"),
    (["own", "modules", 0, "name"], 7, r"cases\[2\].own.modules\[0\].name: expected str, got a number"),
    (["own", "modules", 1, "tensors", 0, "stats", "sha256"], "abc", r"modules\[1\].tensors\[0\].stats.sha256: 'abc'"),
    (["own", "modules", 1, "tensors", 0, "stats", "nonfinite"], 10**6, r"stats.nonfinite: expected 0 to 24"),
    (["own", "modules", 1, "tensors", 0, "stats", "sample"], ["NaN"], r"stats.sample\[0\]: expected a number, nan"),
    (["own", "modules", 1, "tensors", 0, "stats", "shape"], [-1], r"stats.shape: expected at most 8 non-negative"),
    (["own", "modules", 1, "tensors", 0, "stats", "min"], "low", r"stats.min: expected int or float"),
    (["own", "outputs", 0, "array", "shape"], [24], r"own.outputs\[0\].array: does not match the statistics"),
    (["time_axis"], 0, r"cases\[2\]: a case of the team's own models keeps its layers in own.modules"),
    (["output"], None, r"cases\[2\].output: expected the array of own.outputs\[0\]"),
]


@pytest.mark.parametrize(("path", "value", "words"), BAD, ids=lambda x: str(x)[:40])
def test_every_own_field_is_checked_with_a_one_line_named_error(path, value, words) -> None:
    run, arrays = own_run(full=True)
    data = bundle_bytes(run, arrays)
    with pytest.raises(BundleError, match=words) as caught:
        read_bundle(with_manifest(data, _set(path, value)))
    assert "\n" not in str(caught.value)


def test_counts_are_bounded() -> None:
    run, arrays = own_run()
    data = bundle_bytes(run, arrays)
    with pytest.raises(BundleTooLargeError, match="more than 7 module calls in the bundle"):
        read_bundle(data, Limits(module_calls=7))
    read_bundle(data, Limits(module_calls=8))  # 6 + 2
    many = with_manifest(data, _set(["own", "outputs"], [{"path": "", "stats": {}, "array": None}] * 1025))
    with pytest.raises(BundleTooLargeError, match=r"own.outputs: 1,025 entries, more than 1,024"):
        read_bundle(many)
    wide = with_manifest(data, _set(["own", "modules", 0, "tensors"], [{}] * 65))
    with pytest.raises(BundleTooLargeError, match=r"modules\[0\].tensors: 65 entries, more than 64"):
        read_bundle(wide)


def test_a_kept_array_is_checked_against_its_bytes_like_any_other() -> None:
    run, arrays = own_run(full=True)
    ref = run.case("encoder").own.modules[3].tensors[0].array
    arrays.blobs[ref.sha256] = bytes(len(arrays.blobs[ref.sha256]))
    with pytest.raises(BundleError, match=r"cases\[2\].own.modules\[3\].tensors\[0\].array: bytes do not match sha256"):
        read_bundle(bundle_bytes(run, arrays))
