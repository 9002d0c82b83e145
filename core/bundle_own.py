"""The manifest form of a case of the team's own models (``cases[i].own``), written and checked.

Bundles from other machines are untrusted: every field is type-checked, every
list is bounded, and a kept array must agree with the statistics recorded for
the same tensor (digest, dtype, shape). Problems raise a ``BundleError`` naming
the field, as for the rest of the manifest (``core/bundle.py``). The database
keeps the same JSON (``db/store/own_blob.py``) and reads it back through here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from operator import itemgetter, le
from types import NoneType
from typing import TYPE_CHECKING, Any

from driftboard.core.errors import BundleError, BundleTooLargeError, PolicyError
from driftboard.core.run import LAYER_MODES, ModuleCall, OwnResult, TensorRecord, TensorStats

if TYPE_CHECKING:
    from driftboard.core.bundle import Limits

MAX_OUTPUTS = 1024  # tensors in one case's output
MAX_CALL_TENSORS = 64  # tensors recorded for one module call
MAX_SAMPLE = 64  # sampled elements of one tensor
NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
AUTOCAST_DTYPES = ("float16", "bfloat16")


# ---------------------------------------------------------------- writing


def own_json(own: OwnResult) -> dict[str, Any]:
    return {
        "source": own.source,
        "title": own.title,
        "layers": own.layers,
        "autocast": own.autocast,
        "tolerance": own.tolerance,
        "weights_rng": own.weights_rng,
        "inputs_rng": own.inputs_rng,
        "hooks_change_output": own.hooks_change_output,
        "modules_dropped": own.modules_dropped,
        "outputs": [_record_json(t) for t in own.outputs],
        "modules": [_module_json(m) for m in own.modules],
    }


def _module_json(m: ModuleCall) -> dict[str, Any]:
    out = {"name": m.name, "call": m.call, "type": m.type, "tensors": [_record_json(t) for t in m.tensors]}
    if m.truth_rel_error is not None and math.isfinite(m.truth_rel_error):  # absent: not measured
        out["truth_rel_error"] = m.truth_rel_error
    return out


def _record_json(record: TensorRecord) -> dict[str, Any]:
    return {"path": record.path, "stats": stats_json(record.stats),
            "array": record.array.to_json() if record.array is not None else None}


def stats_json(s: TensorStats) -> dict[str, Any]:
    sample = list(s.sample) if all(map(math.isfinite, s.sample)) else [number_json(v) for v in s.sample]
    return {"shape": list(s.shape), "dtype": s.dtype, "sha256": s.sha256, "nonfinite": s.nonfinite,
            "min": s.min, "max": s.max, "mean": s.mean, "l1": s.l1, "l2": s.l2, "sample": sample}


def number_json(value: float) -> float | str:
    """JSON has no NaN or infinity: those are written as the strings ``nan``, ``inf``, ``-inf``."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


# ---------------------------------------------------------------- reading


class Budget:
    """Module calls still allowed in the bundle being read: one bound for all its cases."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.limit = limit

    def take(self, count: int, path: str) -> None:
        self.left -= count
        if self.left < 0:
            raise BundleTooLargeError(path, f"more than {self.limit:,} module calls in the bundle")


def own_from_json(obj: Any, path: str, limits: Limits, budget: Budget | None = None) -> OwnResult:
    """An ``OwnResult`` from its manifest form, checking every field it reads."""
    from driftboard.core.bundle import _get, _kind, _string

    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    budget = budget or Budget(limits.module_calls)
    layers = _string(obj, "layers", path, max_len=16)
    if layers not in LAYER_MODES:
        raise BundleError(f"{path}.layers", f"{layers[:40]!r} is not one of {', '.join(LAYER_MODES)}")
    autocast = _get(obj, "autocast", path, str, optional=True)
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise BundleError(f"{path}.autocast", f"{autocast[:40]!r} is not one of {', '.join(AUTOCAST_DTYPES)}")
    tolerance = _get(obj, "tolerance", path, str, optional=True)
    if tolerance is not None:
        _check_policy(tolerance, f"{path}.tolerance")
    dropped = _get(obj, "modules_dropped", path, int)
    if dropped < 0:
        raise BundleError(f"{path}.modules_dropped", f"expected a non-negative integer, got {dropped}")
    outputs_json = _bounded_list(obj, "outputs", path, MAX_OUTPUTS)
    modules_json = _get(obj, "modules", path, list)
    budget.take(len(modules_json), f"{path}.modules")
    return OwnResult(
        source=_string(obj, "source", path, max_len=512),
        title=_string(obj, "title", path, max_len=200),
        layers=layers,
        outputs=tuple(_record(t, f"{path}.outputs[{i}]", limits) for i, t in enumerate(outputs_json)),
        modules=_modules(modules_json, f"{path}.modules", limits),
        autocast=autocast,
        tolerance=tolerance,
        weights_rng=_get(obj, "weights_rng", path, bool),
        inputs_rng=_get(obj, "inputs_rng", path, bool),
        hooks_change_output=_get(obj, "hooks_change_output", path, bool),
        modules_dropped=dropped,
    )


def _check_policy(text: str, path: str) -> None:
    from driftboard.core.compare.policy import parse_policy

    if len(text) > 100:
        raise BundleError(path, "longer than 100 characters")
    try:
        parse_policy(text)
    except PolicyError as exc:
        raise BundleError(path, str(exc)) from None


def _bounded_list(obj: dict[str, Any], key: str, path: str, bound: int) -> list[Any]:
    from driftboard.core.bundle import _get

    found = _get(obj, key, path, list)
    if len(found) > bound:
        raise BundleTooLargeError(f"{path}.{key}", f"{len(found):,} entries, more than {bound:,}")
    return found


def _modules(objs: list[Any], path: str, limits: Limits) -> tuple[ModuleCall, ...]:
    fast = _plain_modules(objs)
    if fast is not None:
        return fast
    return tuple(_module(m, f"{path}[{i}]", limits) for i, m in enumerate(objs))


def _module(obj: Any, path: str, limits: Limits) -> ModuleCall:
    from driftboard.core.bundle import _get, _kind, _string

    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    call = _get(obj, "call", path, int)
    if call < 1:
        raise BundleError(f"{path}.call", f"expected a call number of at least 1, got {call}")
    tensors = _bounded_list(obj, "tensors", path, MAX_CALL_TENSORS)
    return ModuleCall(
        name=_string(obj, "name", path, max_len=512),
        call=call,
        type=_string(obj, "type", path, max_len=128),
        tensors=tuple(_record(t, f"{path}.tensors[{i}]", limits) for i, t in enumerate(tensors)),
        truth_rel_error=_truth_error(obj, path),
    )


def _truth_error(obj: dict[str, Any], path: str) -> float | None:
    value = _number(obj, "truth_rel_error", path)
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise BundleError(f"{path}.truth_rel_error", f"expected a finite non-negative number, got {value}")
    return value


def _record(obj: Any, path: str, limits: Limits) -> TensorRecord:
    from driftboard.core.bundle import _array_ref, _kind, _string

    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    stats = stats_from_json(obj.get("stats"), f"{path}.stats")
    raw = obj.get("array")
    array = _array_ref(raw, f"{path}.array", limits) if raw is not None else None
    if array is not None and (array.sha256, array.dtype, array.shape) != (stats.sha256, stats.dtype, stats.shape):
        raise BundleError(f"{path}.array", "does not match the statistics of the same tensor (sha256, dtype, shape)")
    return TensorRecord(path=_string(obj, "path", path, max_len=256), stats=stats, array=array)


def stats_from_json(obj: Any, path: str) -> TensorStats:
    fast = _plain_stats(obj)
    if fast is not None:
        return fast
    from driftboard.core.bundle import _HEX64, _MAX_DIMS, _NAME, _get, _kind, _string

    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    shape = _get(obj, "shape", path, list)
    if len(shape) > _MAX_DIMS or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise BundleError(f"{path}.shape", f"expected at most {_MAX_DIMS} non-negative integers")
    size = math.prod(shape)
    nonfinite = _get(obj, "nonfinite", path, int)
    if not 0 <= nonfinite <= size:
        raise BundleError(f"{path}.nonfinite", f"expected 0 to {size}, got {nonfinite}")
    sample = _get(obj, "sample", path, list)
    if len(sample) > min(MAX_SAMPLE, size):
        raise BundleError(f"{path}.sample", f"more than {min(MAX_SAMPLE, size)} elements")
    return TensorStats(
        shape=tuple(shape),
        dtype=_string(obj, "dtype", path, _NAME),
        sha256=_string(obj, "sha256", path, _HEX64),
        nonfinite=nonfinite,
        min=_number(obj, "min", path),
        max=_number(obj, "max", path),
        mean=_number(obj, "mean", path),
        l1=_number(obj, "l1", path),
        l2=_number(obj, "l2", path),
        sample=tuple(_sample_value(v, f"{path}.sample[{i}]") for i, v in enumerate(sample)),
    )


# Fast paths for what capture writes in statistics mode: a model's hundreds of module calls are most of reading
# an own case. They check the rules of the full readers (``_module``, ``_record``, ``stats_from_json``) a column
# at a time over all the calls (each check one loop in C) instead of field by field, and return None for anything
# else (a key missing or unknown, an integer where capture writes a float, a kept array): the full readers then
# read it all, and name the field of any error.
_STAT_KEYS = ("shape", "dtype", "sha256", "nonfinite", "min", "max", "mean", "l1", "l2", "sample")  # field order
_RECORD_KEYS = ("array", "path", "stats")
_MODULE_KEYS = ("call", "name", "type", "tensors")
_TRUTH = "truth_rel_error"
_HEX = re.compile("[0-9a-f]*")


def _only(values: Iterable[Any], *kinds: type) -> bool:
    """Every value is exactly of one of ``kinds`` (a subclass is not: no bool for int)."""
    return set(map(type, values)) <= set(kinds)


def _columns(objs: Sequence[Any], keys: tuple[str, ...]) -> list[tuple[Any, ...]] | None:
    """Per key, its values in ``objs`` (at least one), when each is a dict holding exactly ``keys``."""
    if not _only(objs, dict) or set(map(len, objs)) != {len(keys)}:
        return None
    try:
        return list(zip(*map(itemgetter(*keys), objs), strict=True))
    except KeyError:
        return None


def _plain_modules(objs: list[Any]) -> tuple[ModuleCall, ...] | None:
    """Module calls as ``_module`` reads them, or None (then it reads each)."""
    if not objs:
        return ()
    if not _only(objs, dict):
        return None
    truth = [obj.get(_TRUTH) for obj in objs]  # absent or null: not measured
    if any(_TRUTH in obj for obj in objs):  # the truth pass adds it to each call
        errors = [e for e in truth if e is not None]
        if not _only(errors, float) or not all(map(math.isfinite, errors)) or min(errors, default=0.0) < 0:
            return None
        objs = [{k: v for k, v in obj.items() if k != _TRUTH} for obj in objs]
    columns = _columns(objs, _MODULE_KEYS)
    if columns is None:
        return None
    calls, names, kinds, tensors = columns
    if not (_only(calls, int) and min(calls) >= 1 and _only(names, str) and max(map(len, names)) <= 512
            and _only(kinds, str) and max(map(len, kinds)) <= 128 and _only(tensors, list)
            and max(map(len, tensors)) <= MAX_CALL_TENSORS):
        return None
    records = _plain_records(list(chain.from_iterable(tensors)))
    if records is None:
        return None
    ends = accumulate(map(len, tensors))
    return tuple(ModuleCall(name, call, kind, tuple(records[end - len(found):end]), error)
                 for name, call, kind, found, end, error in zip(names, calls, kinds, tensors, ends, truth, strict=True))


def _plain_records(objs: list[Any]) -> list[TensorRecord] | None:
    """Tensor records as ``_record`` reads them when none keeps its array, or None."""
    if not objs:
        return []
    columns = _columns(objs, _RECORD_KEYS)
    if columns is None:
        return None
    arrays, paths, stats = columns
    if arrays.count(None) != len(arrays) or not _only(paths, str) or max(map(len, paths)) > 256:
        return None
    found = _plain_stats_list(stats)
    return None if found is None else list(map(TensorRecord, paths, found))


def _plain_stats(obj: Any) -> TensorStats | None:
    found = _plain_stats_list([obj])
    return None if found is None else found[0]


def _plain_stats_list(objs: Sequence[Any]) -> list[TensorStats] | None:
    """Statistics as ``stats_from_json`` reads them (at least one), or None."""
    from driftboard.core.bundle import _MAX_DIMS, _NAME

    columns = _columns(objs, _STAT_KEYS)
    if columns is None:
        return None
    shapes, dtypes, shas, nonfinite, *figures, samples = columns
    if not (_only(shapes, list) and max(map(len, shapes)) <= _MAX_DIMS and _only(nonfinite, int)
            and min(nonfinite) >= 0 and _only(samples, list) and max(map(len, samples)) <= MAX_SAMPLE
            and _only(dtypes, str) and _only(shas, str) and set(map(len, shas)) == {64}):
        return None
    dims = list(chain.from_iterable(shapes))
    if not _only(dims, int) or min(dims, default=0) < 0:
        return None
    sizes = list(map(math.prod, shapes))
    if (not all(map(le, nonfinite, sizes)) or not all(map(le, map(len, samples), sizes))
            or not _only(chain.from_iterable(samples), float) or not _only(chain.from_iterable(figures), float, NoneType)
            or not all(map(_NAME.fullmatch, set(dtypes))) or not _HEX.fullmatch("".join(shas))):
        return None
    return list(map(TensorStats, map(tuple, shapes), dtypes, shas, nonfinite, *figures, map(tuple, samples)))


def _number(obj: dict[str, Any], key: str, path: str) -> float | None:
    from driftboard.core.bundle import _get

    value = _get(obj, key, path, (int, float), optional=True)
    if value is None:
        return None
    try:
        return float(value)
    except OverflowError:
        raise BundleError(f"{path}.{key}", "number out of range") from None


def _sample_value(value: Any, path: str) -> float:
    if isinstance(value, str):
        if value not in NONFINITE:
            raise BundleError(path, f"expected a number, nan, inf or -inf, got {value[:20]!r}")
        return NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(path, "expected a number, nan, inf or -inf")
    try:
        return float(value)
    except OverflowError:
        raise BundleError(path, "number out of range") from None
