"""The manifest form of a training case's trace (``cases[i].training``), written and checked.

Optional: bundles before suite version 2 have none, and a case without the key
reads as ``training = None``. Numbers are JSON floats (a float64 survives a
JSON round trip exactly); a loss that became NaN or infinite is written as the
string ``nan``, ``inf`` or ``-inf``, as own cases write their samples. The
store keeps the same JSON (``db/store/training_blob.py``) and reads it back
through here. Untrusted input: every field is type-checked and bounded.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from driftboard.core.bundle_own import NONFINITE, number_json, stats_from_json, stats_json
from driftboard.core.errors import BundleError, BundleTooLargeError
from driftboard.core.run import TRAINING_SERIES, ArrayRef, TrainingTrace

if TYPE_CHECKING:
    from driftboard.core.bundle import Limits

MAX_STEPS = 10_000  # capture's --steps bound
MAX_PARAMETERS = 4_096  # named parameter tensors of one model
_HEX64 = re.compile(r"[0-9a-f]{64}")


def training_json(trace: TrainingTrace) -> dict[str, Any]:
    return {
        "optimizer": trace.optimizer,
        "loss_fn": trace.loss_fn,
        "batches": trace.batches,
        **{name: [number_json(v) for v in getattr(trace, name)] for name in TRAINING_SERIES},
        "param_digests": list(trace.param_digests),
        "parameters": [{"name": name, "stats": stats_json(stats)} for name, stats in trace.parameters],
    }


def training_from_json(obj: Any, path: str, limits: Limits) -> TrainingTrace:
    """A ``TrainingTrace`` from its manifest form, checking every field it reads."""
    from driftboard.core.bundle import _get, _kind, _string

    if not isinstance(obj, dict):
        raise BundleError(path, f"expected an object, got {_kind(obj)}")
    series = {name: _series(obj, name, path) for name in TRAINING_SERIES}
    digests = _get(obj, "param_digests", path, list)
    if len(digests) > MAX_STEPS:
        raise BundleTooLargeError(f"{path}.param_digests", f"more than {MAX_STEPS:,} steps")
    for i, d in enumerate(digests):
        if not isinstance(d, str) or not _HEX64.fullmatch(d):
            raise BundleError(f"{path}.param_digests[{i}]", "expected a sha256 (64 lowercase hex digits)")
    steps = len(series["loss"])
    if steps < 1:
        raise BundleError(f"{path}.loss", "expected at least one step")
    for name, values in (*series.items(), ("param_digests", digests)):
        if len(values) != steps:
            raise BundleError(f"{path}.{name}", f"{len(values)} steps, but loss has {steps}")
    params_json = _get(obj, "parameters", path, list)
    if len(params_json) > MAX_PARAMETERS:
        raise BundleTooLargeError(f"{path}.parameters", f"more than {MAX_PARAMETERS:,} parameters")
    parameters = []
    for i, item in enumerate(params_json):
        ppath = f"{path}.parameters[{i}]"
        if not isinstance(item, dict):
            raise BundleError(ppath, f"expected an object, got {_kind(item)}")
        parameters.append((_string(item, "name", ppath, max_len=512), stats_from_json(item.get("stats"), f"{ppath}.stats")))
    batches = _get(obj, "batches", path, int)
    if batches < 1:
        raise BundleError(f"{path}.batches", f"expected at least 1, got {batches}")
    return TrainingTrace(
        optimizer=_string(obj, "optimizer", path, max_len=512),
        loss_fn=_string(obj, "loss_fn", path, max_len=512),
        loss=series["loss"],
        grad_norm=series["grad_norm"],
        param_distance=series["param_distance"],
        param_digests=tuple(digests),
        parameters=tuple(parameters),
        batches=batches,
    )


def _series(obj: dict[str, Any], name: str, path: str) -> tuple[float, ...]:
    from driftboard.core.bundle import _get

    values = _get(obj, name, path, list)
    if len(values) > MAX_STEPS:
        raise BundleTooLargeError(f"{path}.{name}", f"more than {MAX_STEPS:,} steps")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str) and v in NONFINITE:
            out.append(NONFINITE[v])
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                out.append(float(v))
            except OverflowError:
                raise BundleError(f"{path}.{name}[{i}]", "number out of range") from None
        else:
            raise BundleError(f"{path}.{name}[{i}]", "expected a number or one of 'nan', 'inf', '-inf'")
    return tuple(out)


def check_training_case(trace: TrainingTrace, output: ArrayRef | None, error: str | None, path: str) -> None:
    """A training case's output is its final flat parameters: the last step's digest."""
    if error is not None:
        return
    if output is None or output.sha256 != trace.final_digest:
        raise BundleError(f"{path}.output", "expected the final parameters, whose digest is the last of "
                          "training.param_digests")
