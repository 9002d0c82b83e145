"""The run bundle: one portable file per capture.

A bundle is a zip archive holding ``manifest.json`` (the run, its fingerprint
and its cases, with ``schema_version``) and one entry ``arrays/<sha256>`` per
distinct array, raw little-endian bytes, deflate-compressed. Bundles come from
other machines and people, so reading one trusts nothing: sizes are bounded
before anything is decompressed, every field is checked, every array's bytes
are checked against its dtype, shape and digest, and nothing is ever unpickled.
Any problem raises a ``BundleError`` naming the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from driftboard.core.errors import BundleError, BundleIntegrityError, BundleTooLargeError, BundleVersionError, OutputError
from driftboard.core.run import (
    DTYPES,
    ArrayRef,
    ArraySource,
    CaseResult,
    MemoryArrays,
    RepeatSpread,
    Run,
    TruthError,
    sha256_hex,
)
from driftboard.core.text import inert, json_text_is_inert

FORMAT = "driftboard-run"
SCHEMA_VERSION = 2  # 2: cases of the team's own models (``cases[i].own``)
MANIFEST = "manifest.json"
ARRAY_PREFIX = "arrays/"
SUFFIX = ".driftboard"


@dataclass(frozen=True)
class Limits:
    """Size bounds that keep a hostile bundle from exhausting memory."""

    file_bytes: int = 64 * 2**20
    manifest_bytes: int = 8 * 2**20
    array_bytes: int = 64 * 2**20
    total_bytes: int = 256 * 2**20
    entries: int = 20_000
    json_depth: int = 32
    string_chars: int = 4 * 2**20  # a pasted collect_env report is kept whole
    cases: int = 4_096  # the suite has tens; a team's own models a few hundred
    module_calls: int = 100_000  # module-call records over all own cases (capture writes at most 20,000)
    fingerprint_values: int = 10_000  # a real fingerprint has a few hundred

    @property
    def upload_mb(self) -> int:
        """``file_bytes`` in whole MiB, at least 1: what Streamlit's upload cap takes (its "MB" are 2**20 bytes)."""
        return max(1, self.file_bytes // 2**20)


DEFAULT_LIMITS = Limits()  # the one source of the input size caps: CLI, store and dashboard upload all read it

# What the zip layer raises on damaged input; each becomes a BundleError.
# (RuntimeError: an entry flagged as encrypted, which a bundle never is.)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, struct.error, EOFError, OSError, ValueError,
               NotImplementedError, UnicodeDecodeError, RuntimeError)


@dataclass(frozen=True)
class Bundle:
    """A validated bundle: its run, its arrays and the digest of its manifest."""

    run: Run
    arrays: MemoryArrays
    digest: str  # sha256 of manifest.json: the identity of the run's content
    size: int
    # sha256 -> the raw deflate stream (zlib wbits -15) of that array's entry, checked to inflate to exactly
    # the array and to end there; only with ``read_bundle(..., streams=True)``. A store keeps these bytes
    # as its compressed form instead of compressing the arrays a second time.
    streams: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)


# ---------------------------------------------------------------- writing


def manifest_of(run: Run) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "run": {
            "run_id": run.run_id,
            "created_at": run.created_at,
            "label": run.label,
            "tags": list(run.tags),
            "note": run.note,
            "variant": run.variant,
            "suite": {"id": run.suite_id, "version": run.suite_version},
            "settings": run.settings,
            "tool_version": run.tool_version,
            "imported": run.imported,
        },
        "fingerprint": run.fingerprint,
        "fingerprint_digest": run.fingerprint_digest,
        "cases": [_case_json(case) for case in run.cases],
    }


def _case_json(case: CaseResult) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "device": case.device,
        "dtype": case.dtype,
        "input_digest": case.input_digest,
        "weight_digest": case.weight_digest,
        "output": case.output.to_json() if case.output else None,
        "layers": [{"name": name, "array": ref.to_json()} for name, ref in case.layers],
        "time_axis": case.time_axis,
        "repeats": case.repeats,
        "repeat_identical": case.repeat_identical,
        "seconds": case.seconds,
        "error": case.error,
        "own": _own_json(case),
        **({"training": _training_json(case)} if case.training is not None else {}),
        **({"repeat_spread": case.repeat_spread.to_json()} if case.repeat_spread is not None else {}),
        **({"truth": case.truth.to_json()} if case.truth is not None else {}),
    }


def _training_json(case: CaseResult) -> dict[str, Any]:
    from driftboard.core.bundle_training import training_json

    assert case.training is not None
    return training_json(case.training)


def _own_json(case: CaseResult) -> dict[str, Any] | None:
    from driftboard.core.bundle_own import own_json

    return own_json(case.own) if case.own is not None else None


def bundle_bytes(run: Run, arrays: ArraySource) -> bytes:
    """The bundle file's bytes; equal runs give equal bytes (fixed timestamps)."""
    buffer = io.BytesIO()
    manifest = json.dumps(manifest_of(run), sort_keys=True, allow_nan=False, separators=(",", ":"))
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(_entry(MANIFEST), manifest.encode("utf-8"))
        seen: set[str] = set()
        for case in run.cases:
            for ref in case.refs():
                if ref.sha256 in seen:
                    continue
                seen.add(ref.sha256)
                data = arrays.load(ref).astype(DTYPES[ref.dtype], copy=False).tobytes()
                zf.writestr(_entry(ARRAY_PREFIX + ref.sha256), data)
    return buffer.getvalue()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def bundle_path(path: str | Path) -> Path:
    """Where ``-o path`` writes: a name without a suffix gets ``.driftboard``, so other commands find it."""
    path = Path(path)
    return path if path.suffix else path.with_name(path.name + SUFFIX)


def write_bundle(path: str | Path, run: Run, arrays: ArraySource) -> Path:
    """Write atomically: a reader never sees half a bundle; a place that refuses the write is an OutputError."""
    path = Path(path)
    data = bundle_bytes(run, arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    except OSError as exc:
        raise OutputError(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(path, exc) from None
        raise
    return path


def check_writable(path: str | Path, *, directory: bool = False) -> None:
    """Refuse an output file (or directory) before a long capture rather than after it (the write re-checks)."""
    probe = Path(path) if directory else Path(path).parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(path, PermissionError(13, "permission denied" if probe.is_dir() else "not a directory"))


# ---------------------------------------------------------------- reading


def read_bundle(source: str | Path | bytes | BinaryIO, limits: Limits = DEFAULT_LIMITS, *,
                streams: bool = False) -> Bundle:
    """Read and fully validate a bundle from a path, bytes or a binary file.

    ``streams``: also keep each deflated array entry's stream in ``Bundle.streams`` (for a store).
    """
    data = read_bounded(source, limits)
    if not data.startswith(b"PK\x03\x04"):
        raise BundleError("file", "not a driftboard bundle (expected a zip archive holding manifest.json)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except _ZIP_ERRORS as exc:
        raise BundleError("file", f"truncated or corrupt archive ({exc})") from None
    with zf:
        entries = _index_entries(infos, limits)
        manifest_raw = _read_entry(zf, entries[MANIFEST], limits.manifest_bytes, MANIFEST)
        manifest = upgrade(parse_manifest(manifest_raw, limits))
        run = run_from_manifest(manifest, limits)
        arrays, kept = _read_arrays(zf, data, entries, run, limits, keep_streams=streams)
    return Bundle(run=run, arrays=arrays, digest=sha256_hex(manifest_raw), size=len(data), streams=kept)


def read_bounded(source: str | Path | bytes | BinaryIO, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """A bundle file's bytes, refused before reading when larger than ``limits.file_bytes``."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > limits.file_bytes:
                raise BundleTooLargeError("file", f"{size} bytes exceeds the limit of {limits.file_bytes}")
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError("file", f"cannot read {path}: {exc.strerror or exc}") from None
    else:
        data = source.read(limits.file_bytes + 1)
    if len(data) > limits.file_bytes:
        raise BundleTooLargeError("file", f"more than {limits.file_bytes} bytes")
    if not data:
        raise BundleError("file", "empty file")
    return data


def _index_entries(infos: list[zipfile.ZipInfo], limits: Limits) -> dict[str, zipfile.ZipInfo]:
    if len(infos) > limits.entries:
        raise BundleTooLargeError("archive", f"{len(infos)} entries exceeds the limit of {limits.entries}")
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        if info.filename in entries:
            raise BundleError(info.filename, "duplicate archive entry")
        if info.filename != MANIFEST and not _ARRAY_ENTRY.fullmatch(info.filename):
            raise BundleError(info.filename, "unexpected archive entry (expected manifest.json or arrays/<sha256>)")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(info.filename, "unsupported compression (expected deflate or stored)")
        total += info.file_size
        entries[info.filename] = info
    if total > limits.total_bytes:
        raise BundleTooLargeError("archive", f"{total} bytes uncompressed exceeds the limit of {limits.total_bytes}")
    if MANIFEST not in entries:
        raise BundleError(MANIFEST, "missing (not a driftboard bundle)")
    return entries


_ARRAY_ENTRY = re.compile(r"arrays/[0-9a-f]{64}")


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, bound: int, field: str) -> bytes:
    """Decompress at most ``bound`` bytes: the declared size in the header may lie."""
    if info.file_size > bound:
        raise BundleTooLargeError(field, f"{info.file_size} bytes exceeds the limit of {bound}")
    try:
        with zf.open(info) as f:
            data = f.read(bound + 1)
    except _ZIP_ERRORS as exc:
        raise BundleError(field, f"corrupt or truncated entry ({exc})") from None
    if len(data) > bound:
        raise BundleTooLargeError(field, f"decompresses to more than {bound} bytes")
    return data


def parse_manifest(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(MANIFEST, f"not UTF-8 text (byte {exc.start})") from None
    # Text without a character ``inert`` would change (the usual case) skips it for every key and string.
    inert_text = json_text_is_inert(text)
    plain = _parse_plain(text, limits) if inert_text else None
    if plain is not None:
        return plain
    hook = _unique_keys if inert_text else _no_duplicate_keys
    try:
        value = json.loads(text, object_pairs_hook=hook, parse_constant=_constant)
    except RecursionError:
        raise BundleError(MANIFEST, "JSON nested too deeply") from None
    except ValueError as exc:
        raise BundleError(MANIFEST, f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BundleError(MANIFEST, f"expected a JSON object, got {_kind(value)}")
    if _tree_ok(value, limits) is None:  # the walk that names the field runs only to say what is wrong
        _check_tree(value, MANIFEST, 0, limits)
    return value


def _parse_plain(text: str, limits: Limits) -> dict[str, Any] | None:
    """Inert text parsed without a Python call per object (an own case's record has thousands), or None when
    anything is wrong: ``parse_manifest`` then parses it again, checking as it goes, and says what.

    A duplicate key is found by counting colons. Without ``\\u`` escapes (inert text has none) every ``:`` of
    the text is a member's separator or a character of a string, so the text holds as many as the parsed
    value (``_tree_ok``'s count) exactly when no member was overwritten by a later one of the same name.
    """
    try:
        value = json.loads(text, parse_constant=_constant)
    except (RecursionError, ValueError):
        return None
    if type(value) is not dict or _tree_ok(value, limits) != text.count(":"):
        return None
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``_no_duplicate_keys`` for text with nothing to make inert."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Each JSON object as it is parsed: duplicate keys refused, control characters in text made inert."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        key = inert(key)
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = _inert_value(value)
    return out


def _inert_value(value: Any) -> Any:
    # Objects were cleaned by their own hook call; strings and lists of them are cleaned here.
    if isinstance(value, str):
        return inert(value)
    if isinstance(value, list):
        return [_inert_value(v) for v in value]
    return value


def _count_values(value: Any, limit: int, path: str) -> int:
    """Leaves of a JSON tree, refusing more than ``limit`` (every one is shown in an environment diff)."""
    count = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
            if count > limit:
                raise BundleTooLargeError(path, f"more than {limit:,} values")
    return count


def _constant(name: str) -> float:
    # Kept as floats so the tree check can name the field that holds them.
    return float(name.replace("Infinity", "inf"))


def _tree_ok(value: Any, limits: Limits) -> int | None:
    """``_check_tree``'s rules, level by level without building paths: None when it would fail, else the
    colons of the value (one per object member, and those in its keys and strings; see ``_parse_plain``)."""
    level, depth = [value], 0
    keys: list[str] = []
    strings: list[str] = []
    while level:
        if depth > limits.json_depth:
            return None
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is dict:
                keys.extend(item)
                below.extend(item.values())
            elif kind is list:
                below.extend(item)
            elif kind is str:
                strings.append(item)
            elif kind is float and not math.isfinite(item):
                return None
        level, depth = below, depth + 1
    if max(map(len, keys), default=0) > 256 or max(map(len, strings), default=0) > limits.string_chars:
        return None
    return len(keys) + "".join(keys).count(":") + "".join(strings).count(":")


def _check_tree(value: Any, path: str, depth: int, limits: Limits) -> None:
    """JSON nesting, string length and finite numbers, everywhere in the manifest."""
    if depth > limits.json_depth:
        raise BundleError(path, f"nested deeper than {limits.json_depth} levels")
    if isinstance(value, dict):
        for key, child in value.items():
            if len(key) > 256:
                raise BundleError(path, "key longer than 256 characters")
            _check_tree(child, f"{path}.{key}", depth + 1, limits)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _check_tree(child, f"{path}[{i}]", depth + 1, limits)
    elif isinstance(value, str):
        if len(value) > limits.string_chars:
            raise BundleTooLargeError(path, f"string longer than {limits.string_chars} characters")
    elif isinstance(value, float) and not math.isfinite(value):
        raise BundleError(path, f"expected a finite number, got {value}")


def _upgrade_to_2(manifest: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had reference-suite cases only: each gets ``own: null``."""
    cases = manifest.get("cases")
    if isinstance(cases, list):
        for case in cases:
            if isinstance(case, dict):
                case.setdefault("own", None)
    return manifest


# Ordered steps that bring an older manifest to the current schema_version;
# ``_UPGRADES[n]`` turns version n into n + 1.
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _upgrade_to_2}


def upgrade(manifest: dict[str, Any]) -> dict[str, Any]:
    if manifest.get("format") != FORMAT:
        raise BundleError("format", f"expected {FORMAT!r}, got {manifest.get('format')!r}")
    version = manifest.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleVersionError("schema_version", f"expected a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise BundleVersionError(
            "schema_version",
            f"{version} is newer than this driftboard understands ({SCHEMA_VERSION}); upgrade driftboard",
        )
    while version < SCHEMA_VERSION:
        if version not in _UPGRADES:
            raise BundleVersionError("schema_version", f"no upgrade from version {version}")
        manifest = _UPGRADES[version](manifest)
        version += 1
        manifest["schema_version"] = version
    return manifest


# ---------------------------------------------------------------- fields

_HEX64 = re.compile(r"[0-9a-f]{64}")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}")
_MAX_DIMS = 8


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _get(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise BundleError(f"{path}.{key}", "missing")
    value = obj[key]
    if value is None and optional:
        return None
    bool_ok = kind is bool or (isinstance(kind, tuple) and bool in kind)
    if not isinstance(value, kind) or (isinstance(value, bool) and not bool_ok):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BundleError(f"{path}.{key}", f"expected {names}, got {_kind(value)}")
    return value


def _string(obj: dict[str, Any], key: str, path: str, pattern: re.Pattern[str] | None = None, max_len: int = 4096) -> str:
    value = _get(obj, key, path, str)
    if len(value) > max_len:
        raise BundleTooLargeError(f"{path}.{key}", f"longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise BundleError(f"{path}.{key}", f"{value[:80]!r} does not match {pattern.pattern}")
    return value


def _array_ref(obj: Any, path: str, limits: Limits) -> ArrayRef:
    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an array reference object, got {_kind(obj)}")
    sha = _string(obj, "sha256", path, _HEX64)
    dtype = _get(obj, "dtype", path, str)
    if dtype not in DTYPES:
        raise BundleError(f"{path}.dtype", f"{dtype[:40]!r} is not one of {', '.join(DTYPES)}")
    shape = _get(obj, "shape", path, list)
    if len(shape) > _MAX_DIMS:
        raise BundleError(f"{path}.shape", f"more than {_MAX_DIMS} dimensions")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise BundleError(f"{path}.shape", "expected a list of non-negative integers")
    ref = ArrayRef(sha, dtype, tuple(shape))
    if ref.nbytes > limits.array_bytes:
        raise BundleTooLargeError(f"{path}.shape", f"{ref.nbytes} bytes exceeds the array limit of {limits.array_bytes}")
    return ref


def _case(obj: Any, path: str, limits: Limits, budget: Any = None) -> CaseResult:
    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    output = obj.get("output")
    layers_json = _get(obj, "layers", path, list)
    layers = []
    for i, layer in enumerate(layers_json):
        lpath = f"{path}.layers[{i}]"
        if not isinstance(layer, dict):
            raise BundleError(lpath, f"expected an object, got {_kind(layer)}")
        layers.append((_string(layer, "name", lpath, max_len=128), _array_ref(layer.get("array"), f"{lpath}.array", limits)))
    time_axis = _get(obj, "time_axis", path, int, optional=True)
    out_ref = _array_ref(output, f"{path}.output", limits) if output is not None else None
    if time_axis is not None and (out_ref is None or not 0 <= time_axis < max(len(out_ref.shape), 1)):
        raise BundleError(f"{path}.time_axis", "expected an axis of the output's shape")
    repeats = _get(obj, "repeats", path, int)
    if repeats < 1:
        raise BundleError(f"{path}.repeats", f"expected at least 1, got {repeats}")
    try:
        seconds = float(_get(obj, "seconds", path, (int, float)))
    except OverflowError:
        raise BundleError(f"{path}.seconds", "number out of range") from None
    if seconds < 0:
        raise BundleError(f"{path}.seconds", f"expected a non-negative number, got {seconds}")
    error = _get(obj, "error", path, str, optional=True)
    own = _own(obj, path, limits, budget)
    if own is not None:
        _check_own_case(own, out_ref, layers, time_axis, error, path)
    training = _training(obj, path, limits, out_ref, error)
    return CaseResult(
        case_id=_string(obj, "case_id", path, _NAME),
        device=_string(obj, "device", path, _NAME),
        dtype=_string(obj, "dtype", path, _NAME),
        input_digest=_string(obj, "input_digest", path, _HEX64),
        weight_digest=_string(obj, "weight_digest", path, _HEX64),
        output=out_ref,
        layers=tuple(layers),
        time_axis=time_axis,
        repeats=repeats,
        repeat_identical=_get(obj, "repeat_identical", path, bool),
        seconds=seconds,
        error=error,
        own=own,
        training=training,
        repeat_spread=repeat_spread_from_json(obj.get("repeat_spread"), f"{path}.repeat_spread"),
        truth=truth_from_json(obj.get("truth"), f"{path}.truth"),
    )


def truth_from_json(obj: Any, path: str) -> TruthError | None:
    """Optional (bundles before it have none): non-negative figures or null, a whole ULP count, a short error."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    figures: dict[str, Any] = {}
    for name in ("max_abs", "max_rel", "rel_l2", "seconds"):
        value = _get(obj, name, path, (int, float), optional=name != "seconds")
        if value is not None:
            try:
                value = float(value)
            except OverflowError:
                raise BundleError(f"{path}.{name}", "number out of range") from None
            if not math.isfinite(value) or value < 0:
                raise BundleError(f"{path}.{name}", f"expected a finite non-negative number, got {value}")
        figures[name] = value
    for name in ("ulp_max", "nonfinite"):
        value = _get(obj, name, path, int, optional=name == "ulp_max")
        if value is not None and value < 0:
            raise BundleError(f"{path}.{name}", f"expected a non-negative integer, got {value}")
        figures[name] = value
    error = _get(obj, "error", path, str, optional=True)
    if error is not None and len(error) > 1000:
        raise BundleTooLargeError(f"{path}.error", "longer than 1000 characters")
    return TruthError(**figures, error=error)


def repeat_spread_from_json(obj: Any, path: str) -> RepeatSpread | None:
    """Optional (bundles before it have none): finite non-negative figures, a whole ULP count."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    figures = []
    for name in ("max_abs", "max_rel"):
        try:
            value = float(_get(obj, name, path, (int, float)))
        except OverflowError:
            raise BundleError(f"{path}.{name}", "number out of range") from None
        if not math.isfinite(value) or value < 0:
            raise BundleError(f"{path}.{name}", f"expected a finite non-negative number, got {value}")
        figures.append(float(value))
    ulps = _get(obj, "ulps", path, int)
    if ulps < 0:
        raise BundleError(f"{path}.ulps", f"expected a non-negative integer, got {ulps}")
    return RepeatSpread(figures[0], figures[1], ulps)


def _check_own_case(own: Any, output: ArrayRef | None, layers: list[Any], time_axis: int | None, error: str | None,
                    path: str) -> None:
    """An own case keeps its tensors in ``own``; ``output`` repeats its first output when that is kept whole."""
    if layers or time_axis is not None:
        raise BundleError(path, "a case of the team's own models keeps its layers in own.modules, without time_axis")
    if error is None and not own.outputs:
        raise BundleError(f"{path}.own.outputs", "expected at least one output tensor (or an error)")
    first = own.outputs[0].array if own.outputs else None
    if output != first:
        raise BundleError(f"{path}.output", "expected the array of own.outputs[0] (null when it is not kept whole)")


def _training(obj: dict[str, Any], path: str, limits: Limits, output: ArrayRef | None, error: str | None) -> Any:
    """Optional (cases before suite version 2 have none): a training case's trace (``core/bundle_training.py``)."""
    if obj.get("training") is None:
        return None
    from driftboard.core.bundle_training import check_training_case, training_from_json

    trace = training_from_json(obj["training"], f"{path}.training", limits)
    check_training_case(trace, output, error, path)
    return trace


def _own(obj: dict[str, Any], path: str, limits: Limits, budget: Any) -> Any:
    if obj.get("own") is None:
        if "own" not in obj:
            raise BundleError(f"{path}.own", "missing")
        return None
    from driftboard.core.bundle_own import own_from_json

    return own_from_json(obj["own"], f"{path}.own", limits, budget)


MAX_TAGS = 64
MAX_TAG_CHARS = 64


def tags_problem(tags: list[Any] | tuple[Any, ...]) -> str | None:
    """What is wrong with a run's tags, or None: capture checks them before it runs, the reader on every bundle."""
    if len(tags) > MAX_TAGS or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_CHARS for t in tags):
        return f"expected at most {MAX_TAGS} non-empty strings of at most {MAX_TAG_CHARS} characters"
    return None


def run_from_manifest(manifest: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Run:
    """A ``Run`` from a parsed manifest, checking every field it reads."""
    run = _get(manifest, "run", "manifest", dict)
    created_at = _string(run, "created_at", "run", max_len=64)
    try:
        datetime.fromisoformat(created_at).astimezone(UTC)  # in UTC too: year 1 at +01:00 is not a time
    except (ValueError, OverflowError):
        raise BundleError("run.created_at", f"{created_at!r} is not an ISO 8601 time in range") from None
    suite = _get(run, "suite", "run", dict)
    suite_version = _get(suite, "version", "run.suite", int)
    if suite_version < 1:
        raise BundleError("run.suite.version", f"expected a positive integer, got {suite_version}")
    tags = _get(run, "tags", "run", list)
    problem = tags_problem(tags)
    if problem:
        raise BundleError("run.tags", problem)
    cases_json = _get(manifest, "cases", "manifest", list)
    if len(cases_json) > limits.cases:
        raise BundleTooLargeError("cases", f"{len(cases_json):,} cases, more than {limits.cases:,}")
    _count_values(_get(manifest, "fingerprint", "manifest", dict), limits.fingerprint_values, "fingerprint")
    from driftboard.core.bundle_own import Budget

    budget = Budget(limits.module_calls)
    cases = tuple(_case(c, f"cases[{i}]", limits, budget) for i, c in enumerate(cases_json))
    seen: set[tuple[str, str, str]] = set()
    for i, case in enumerate(cases):
        if case.key in seen:
            raise BundleError(f"cases[{i}]", f"duplicate case {'/'.join(case.key)}")
        seen.add(case.key)
    return Run(
        run_id=_string(run, "run_id", "run", _RUN_ID),
        created_at=created_at,
        suite_id=_string(suite, "id", "run.suite", _NAME),
        suite_version=suite_version,
        variant=_string(run, "variant", "run", _NAME),
        fingerprint=_get(manifest, "fingerprint", "manifest", dict),
        fingerprint_digest=_string(manifest, "fingerprint_digest", "manifest", _HEX64),
        cases=cases,
        settings=_get(run, "settings", "run", dict),
        label=_string(run, "label", "run", max_len=200),
        tags=tuple(tags),
        note=_string(run, "note", "run", max_len=4000),
        tool_version=_string(run, "tool_version", "run", max_len=64),
        imported=bool(_get(run, "imported", "run", bool, optional=True)),
    )


def _read_arrays(zf: zipfile.ZipFile, data: bytes, entries: dict[str, zipfile.ZipInfo], run: Run, limits: Limits,
                 *, keep_streams: bool) -> tuple[MemoryArrays, dict[str, bytes]]:
    refs: dict[str, tuple[ArrayRef, str]] = {}
    for i, case in enumerate(run.cases):
        for name, ref in case.named_refs():
            field = f"cases[{i}].{name}"
            known = refs.get(ref.sha256)
            if known and known[0].nbytes != ref.nbytes:
                raise BundleIntegrityError(field, f"sha256 {ref.sha256[:12]} is declared with two sizes")
            refs.setdefault(ref.sha256, (ref, field))
    arrays, streams = MemoryArrays(), {}
    for sha, (ref, field) in refs.items():
        name = ARRAY_PREFIX + sha
        if name not in entries:
            raise BundleError(field, f"array {sha[:12]}… is missing from the archive")
        raw, stream = _read_array_entry(zf, data, entries[name], ref.nbytes, field)
        if len(raw) != ref.nbytes:
            raise BundleIntegrityError(
                field, f"{len(raw)} bytes do not match dtype {ref.dtype} and shape {list(ref.shape)} ({ref.nbytes} bytes)"
            )
        if hashlib.sha256(raw).hexdigest() != sha:
            raise BundleIntegrityError(field, f"bytes do not match sha256 {sha[:12]}…")
        arrays.blobs[sha] = raw
        if keep_streams and stream is not None:
            streams[sha] = bytes(stream)
    extra = {n for n in entries if n.startswith(ARRAY_PREFIX)} - {ARRAY_PREFIX + s for s in refs}
    if extra:
        raise BundleError(sorted(extra)[0], "array entry not referenced by any case")
    return arrays, streams


def _read_array_entry(zf: zipfile.ZipFile, data: bytes, info: zipfile.ZipInfo, bound: int,
                      field: str) -> tuple[bytes, memoryview | None]:
    """An array entry's bytes, and its raw deflate stream when it has one.

    A deflated entry is inflated here from its stream rather than by ``zipfile``, which stops at the
    declared size: a stream must inflate to exactly the declared bytes and end there, with nothing after
    it, so that whoever keeps the stream (the store) keeps exactly the array. Any other stream is refused.
    """
    if info.compress_type != zipfile.ZIP_DEFLATED or info.flag_bits & _ENCRYPTED:
        return _read_entry(zf, info, bound, field), None  # stored, or refused by zipfile (encrypted)
    if info.file_size > bound:
        raise BundleTooLargeError(field, f"{info.file_size} bytes exceeds the limit of {bound}")
    stream = _entry_stream(data, info)
    if stream is None:
        raise BundleError(field, f"corrupt or truncated entry {info.filename} (its local header does not match)")
    inflater = zlib.decompressobj(-15)
    try:
        raw = inflater.decompress(stream, info.file_size + 1)
    except zlib.error as exc:
        raise BundleError(field, f"corrupt or truncated entry ({exc})") from None
    declared = info.file_size
    problem = None
    if len(raw) > declared:
        problem = f"its deflate stream holds more than the {declared} bytes its header declares"
    elif not inflater.eof:
        problem = (f"its deflate stream is cut short ({len(raw)} of {declared} bytes)" if len(raw) < declared
                   else f"its deflate stream does not end after its {declared} bytes")
    elif inflater.unused_data:
        problem = f"{len(inflater.unused_data)} bytes follow the end of its deflate stream"
    elif len(raw) != declared:
        problem = f"its deflate stream ends after {len(raw)} bytes, its header declares {declared}"
    elif zlib.crc32(raw) != info.CRC:
        problem = "CRC-32 does not match its header"
    if problem is not None:
        raise BundleIntegrityError(field, f"entry {info.filename[:len(ARRAY_PREFIX) + 12]}…: {problem}")
    return raw, stream


# ---------------------------------------------------------------- raw entries

_ENCRYPTED = 0x1  # general purpose flag bit 0: never set in a bundle
_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # the 30 bytes of a zip local file header


def _entry_stream(data: bytes, info: zipfile.ZipInfo) -> memoryview | None:
    """The compressed bytes of one entry, found through its local file header; None if that header is not right.

    ``zipfile`` offers only the inflated bytes, so the local header is read here, and checked the way
    ``zipfile`` checks it: its signature, and the same name as the central directory.
    """
    start = info.header_offset
    if start < 0 or start + _LOCAL_HEADER.size > len(data):
        return None
    fields = _LOCAL_HEADER.unpack_from(data, start)
    signature, method, name_len, extra_len = fields[0], fields[4], fields[10], fields[11]
    name_start = start + _LOCAL_HEADER.size
    name = data[name_start:name_start + name_len]
    if signature != b"PK\x03\x04" or method != zipfile.ZIP_DEFLATED or name != info.filename.encode("ascii"):
        return None
    begin = name_start + name_len + extra_len
    if begin + info.compress_size > len(data):
        return None
    return memoryview(data)[begin:begin + info.compress_size]
