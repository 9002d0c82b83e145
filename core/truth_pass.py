"""The float64 truth of a case: the same module and inputs, exactly upcast, run once on the CPU in float64.

Every float32, float16 and bfloat16 value is exactly a float64 value, so a deep
copy of the module moved to the CPU in float64 with its inputs upcast computes
the same function as the case with only the arithmetic made more precise (not
the suite's float64 variant, whose weights are drawn in float64). The error of
the case's outputs against that pass (``core/compare/truth.py``) says which of
two machines is closer to the true result, not just that they differ.

For the team's own models recorded with layers, the float64 pass runs under
the same global forward hook, and keeps each call's float64 tensors (up to
``CALL_BYTES``) so that the case's own hooked forward measures each module
call against the same call of the truth (``ModuleHooks(truth=...)``).

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from driftboard.core.compare.truth import NO_MODULE, TRUTH_DTYPES, TruthAccumulator
from driftboard.core.module_records import MAX_CALL_TENSORS, dense, dtype_name, leaves, stored_array
from driftboard.core.run import TruthError

CALL_BYTES = 256 * 2**20  # float64 module-call tensors the truth pass keeps for per-layer errors

# (module name, call number) -> {path in its output: float64 tensor on the CPU}
TruthCalls = dict[tuple[str, int], dict[str, torch.Tensor]]


def wanted(dtype: str) -> bool:
    """Cases in these dtypes get a truth; a float64 case is its own."""
    return dtype in TRUTH_DTYPES


def upcast(value: Any) -> Any:
    """Tensors moved to the CPU, floating ones in float64 (exact), nested in tuples, lists and dicts."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu")
        return value.to(torch.float64) if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: upcast(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(*map(upcast, value)) if hasattr(value, "_fields") else type(value)(map(upcast, value))
    return value


def float64_model(model: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of ``model`` on the CPU in float64 (integer buffers stay as they are)."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"the float64 pass failed: {type(exc).__name__}" + (f": {text[:200]}" if text else "")


def suite_truth(model: torch.nn.Module | None, inputs: tuple[Any, ...], output: Any, dtype: str,
                call: Callable[[torch.nn.Module, tuple[Any, ...]], torch.Tensor] | None = None) -> TruthError | None:
    """A reference case's error against its float64 pass; None when the case has no truth (float64, no model).

    ``output`` is the case's output in stored form (numpy; bfloat16 as uint16 bits).
    """
    if not wanted(dtype):
        return None
    if model is None or not inputs:
        return TruthError(error=NO_MODULE)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            twin = float64_model(model)
            args = upcast(tuple(inputs))
            truth = call(twin, args) if call is not None else twin(*args)
        acc = TruthAccumulator()
        acc.add(output, dtype, truth.numpy())
        return acc.result(time.perf_counter() - start)
    except Exception as exc:  # the case's numbers stand; only its truth is missing
        return TruthError(seconds=time.perf_counter() - start, error=describe(exc))


@dataclass
class OwnTruth:
    """The float64 pass of an own case: its output, each module call's tensors, what it cost."""

    output: Any = None
    calls: TruthCalls = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    calls_over_cap: bool = False

    def measure(self, out: Any) -> TruthError:
        """The case's outputs (the model's plain forward, any nesting) against the float64 output, path by path."""
        if self.error is not None:
            return TruthError(seconds=self.seconds, error=self.error)
        truth = dict(leaves(self.output))
        acc = TruthAccumulator()
        try:
            for path, tensor in leaves(out):
                if not (dense(tensor) and tensor.is_floating_point()):
                    continue
                other = truth.get(path)
                array = stored_array(tensor)
                if other is None or array is None:
                    return TruthError(seconds=self.seconds, error=f"the float64 pass has no output {path or '(top)'}")
                acc.add(array, dtype_name(tensor), other.detach().to(torch.float64).numpy())
        except ValueError as exc:
            return TruthError(seconds=self.seconds, error=str(exc))
        return acc.result(self.seconds)


def own_truth(model: torch.nn.Module, inputs: Any, run: Callable[[torch.nn.Module, Any], Any],
              *, record_calls: bool) -> OwnTruth:
    """Run an own case's float64 pass; ``record_calls`` keeps each module call's tensors for per-layer errors."""
    found = OwnTruth()
    start = time.perf_counter()
    handle = None
    try:
        twin = float64_model(model)
        args = upcast(inputs)
        if record_calls:
            keeper = _CallKeeper(twin, found)
            handle = torch.nn.modules.module.register_module_forward_hook(keeper.hook)
        with torch.no_grad():
            found.output = run(twin, args)
    except Exception as exc:
        found.error = describe(exc)
        found.calls.clear()
    finally:
        if handle is not None:
            handle.remove()
        found.seconds = time.perf_counter() - start
    return found


class _CallKeeper:
    """The forward hook of the float64 pass: each call's floating tensors, by (name, call) and path."""

    def __init__(self, model: torch.nn.Module, into: OwnTruth) -> None:
        self.names = {id(m): (name, m) for name, m in model.named_modules()}
        self.counts: dict[str, int] = {}
        self.into = into
        self.left = CALL_BYTES
        self.seen: set[int] = set()

    def hook(self, module: Any, _args: Any, output: Any) -> None:
        found = self.names.get(id(module))
        if found is None or found[1] is not module:
            return
        name = found[0]
        call = self.counts[name] = self.counts.get(name, 0) + 1
        kept: dict[str, torch.Tensor] = {}
        for i, (path, tensor) in enumerate(leaves(output)):
            if i == MAX_CALL_TENSORS:
                break
            if not (dense(tensor) and tensor.is_floating_point()):
                continue
            size = 0 if id(tensor) in self.seen else tensor.numel() * tensor.element_size()
            if size > self.left:
                self.into.calls_over_cap = True
                continue
            self.left -= size
            self.seen.add(id(tensor))
            kept[path] = tensor.detach()
        if kept:
            self.into.calls[(name, call)] = kept


def call_error(tensor: torch.Tensor, truth: torch.Tensor) -> float | None:
    """Relative L2 error ``‖t - truth‖ / ‖truth‖`` of one module call's tensor, computed in float64 on the CPU."""
    if tensor.shape != truth.shape or not tensor.is_floating_point():
        return None
    with torch.no_grad():
        mine = tensor.detach().to("cpu", torch.float64)
        finite = torch.isfinite(mine) & torch.isfinite(truth)
        diff = torch.where(finite, mine - truth, 0.0)
        scale = torch.where(finite, truth, 0.0)
        err, norm = float(torch.linalg.vector_norm(diff)), float(torch.linalg.vector_norm(scale))
    if norm > 0:
        return err / norm
    return 0.0 if err == 0 else None
