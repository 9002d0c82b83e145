"""What a forward of a team's own model computed: tensor statistics and one record per module call.

A global forward hook (containers and leaves alike) records each call's
output tensors in execution order, keyed by qualified name and call number, so
a shared layer or a cell in a loop keeps each call apart. Per tensor, the
statistics mode keeps shape, dtype, sha256 of the stored bytes, min, max,
mean, L1 and L2 (float64, over finite elements), the count of non-finite
elements and a fixed sample: a few hundred bytes whatever the tensor's size.
Full mode keeps the tensor too while the run's byte budget lasts.

Statistics and the digest are computed in one pass, chunk by chunk while each
chunk is in cache (a float64 copy of a chunk, never of the tensor), so each
tensor is read from memory once. A module that returns the tensor it was given
(``Dropout`` in eval mode) reuses the statistics already taken.

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from driftboard.core.run import DTYPES, ArrayRef, MemoryArrays, ModuleCall, TensorRecord, TensorStats, sample_positions

CHUNK = 1 << 15  # float64 scratch of 256 KiB: inside L2
MODULE_SAMPLE = 8  # sampled elements of a module call's tensor
OUTPUT_SAMPLE = 64  # of an output tensor kept as statistics
MAX_CALL_TENSORS = 16  # tensors recorded per module call (the bundle allows 64)
_REUSE = 8  # recent tensors whose statistics are reused when a module returns one of them again

class OutputTypeError(TypeError):
    """A model output holds something that is not a tensor (nor a tuple, list or dict of them)."""


def dense(tensor: torch.Tensor) -> bool:
    return tensor.layout == torch.strided and not tensor.is_nested and tensor.device.type != "meta"


def dtype_name(tensor: torch.Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def stored_array(tensor: torch.Tensor) -> np.ndarray | None:
    """The tensor's elements on the CPU in stored form (bfloat16 as uint16 bits), C order; None when numpy has no
    view of its dtype (float8, quantized, complex32)."""
    tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    tensor = tensor.contiguous()
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16)
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError):
        return None


def _raw_bytes(tensor: torch.Tensor) -> memoryview:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _digest(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_stats(tensor: torch.Tensor, sample: int = MODULE_SAMPLE, *, digest_only: bool = False) -> tuple[TensorStats, np.ndarray | None]:
    """Statistics of one tensor, and its stored-form array (None when numpy cannot view its dtype)."""
    dtype = dtype_name(tensor)
    shape = tuple(int(n) for n in tensor.shape)
    array = stored_array(tensor)
    if array is None:
        return TensorStats(shape, dtype, _digest(_raw_bytes(tensor))), None
    flat = array.reshape(-1)
    if digest_only:
        return TensorStats(shape, dtype, _digest(memoryview(flat) if flat.size else b"")), array
    if flat.dtype.kind == "f" and flat.size:  # float16/32/64: digest and figures in one pass over the memory
        sha, figures = _one_pass(flat, sample)
        if figures is not None:
            return TensorStats(shape, dtype, sha, **figures), array
    else:
        sha = _digest(memoryview(flat) if flat.size else b"")
    return TensorStats(shape, dtype, sha, **_figures(array, dtype, sample)), array


def _one_pass(flat: np.ndarray, sample: int) -> tuple[str, dict[str, Any] | None]:
    """sha256 and the figures of a float array, chunk by chunk while each is in cache.

    A tensor is usually read from memory once for both (a second pass would cost
    as much again). Figures None: a NaN or infinity was seen, so they are taken
    over the finite elements by ``_figures`` instead (rare, and slower).
    """
    h = hashlib.sha256()
    scratch = np.empty(min(CHUNK, flat.size))
    total = l1 = squares = 0.0
    low, high = math.inf, -math.inf
    finite = True
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, flat.size, CHUNK):
            part = flat[start:start + CHUNK]
            h.update(memoryview(part))
            if not finite:
                continue
            lo, hi = float(part.min()), float(part.max())  # NaN propagates: finite bounds mean finite elements
            if not (math.isfinite(lo) and math.isfinite(hi)):
                finite = False
                continue
            low, high = min(low, lo), max(high, hi)
            buf = scratch[: part.size]
            np.copyto(buf, part, casting="unsafe")
            total += float(np.add.reduce(buf))
            squares += float(np.einsum("i,i->", buf, buf))  # one pass, no BLAS thread pool
            np.abs(buf, out=buf)
            l1 += float(np.add.reduce(buf))
    if not finite:
        return h.hexdigest(), None
    l2 = math.sqrt(squares)
    return h.hexdigest(), {
        "min": low,
        "max": high,
        "mean": total / flat.size if math.isfinite(total) else None,
        "l1": l1 if math.isfinite(l1) else None,
        "l2": l2 if math.isfinite(l2) else None,
        "sample": tuple(float(v) for v in flat[sample_positions(flat.size, sample)].astype(np.float64)),
    }


def _figures(array: np.ndarray, dtype: str, sample: int) -> dict[str, Any]:
    flat = array.reshape(-1)
    if dtype == "bfloat16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)  # exact: bfloat16 is float32's top half
    if flat.dtype.kind not in "fiub":
        return {}  # complex: a digest only
    picked = [float(v) for v in flat[sample_positions(flat.size, sample)].astype(np.float64)]
    if not flat.size:
        return {"sample": tuple(picked)}
    nonfinite = 0
    if flat.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            low, high = flat.min(), flat.max()  # NaN propagates, so finite bounds mean every element is finite
        if not (math.isfinite(low) and math.isfinite(high)):
            finite = np.isfinite(flat)
            nonfinite = int(flat.size - np.count_nonzero(finite))
            flat = flat[finite]
    if not flat.size:
        return {"nonfinite": nonfinite, "sample": tuple(picked)}
    total, l1, squares = _sums(flat)
    l2 = math.sqrt(squares)
    return {
        "nonfinite": nonfinite,
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": total / flat.size if math.isfinite(total) else None,
        "l1": l1 if math.isfinite(l1) else None,
        "l2": l2 if math.isfinite(l2) else None,
        "sample": tuple(picked),
    }


def _sums(flat: np.ndarray) -> tuple[float, float, float]:
    """Sum, sum of magnitudes and sum of squares in float64, chunk by chunk in a reused buffer."""
    scratch = np.empty(min(CHUNK, flat.size))
    total = l1 = squares = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, flat.size, CHUNK):
            part = flat[start:start + CHUNK]
            buf = scratch[: part.size]
            np.copyto(buf, part, casting="unsafe")
            total += float(np.add.reduce(buf))
            squares += float(np.einsum("i,i->", buf, buf))
            np.abs(buf, out=buf)
            l1 += float(np.add.reduce(buf))
    return total, l1, squares


def _resampled(stats: TensorStats, array: np.ndarray | None, sample: int) -> TensorStats:
    """The same statistics with a sample of another size (an output already recorded as a module's)."""
    if array is None:
        return stats
    flat = array.reshape(-1)
    if stats.dtype == "bfloat16":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    if flat.dtype.kind not in "fiub":
        return stats
    return replace(stats, sample=tuple(float(v) for v in flat[sample_positions(flat.size, sample)].astype(np.float64)))


# ---------------------------------------------------------------- nested outputs


def leaves(value: Any, path: str = "", *, strict: bool = False, depth: int = 0) -> Iterator[tuple[str, torch.Tensor]]:
    """(path, tensor) for every tensor in a nesting of tuples, lists and dicts, in order.

    ``strict``: anything else (but None) raises ``OutputTypeError`` naming where
    it sits; otherwise it is skipped (a module may return anything).
    """
    if isinstance(value, torch.Tensor):
        yield path, value
    elif depth >= 16:
        if strict:
            raise OutputTypeError(f"output {path or '(top)'} is nested more than 16 levels deep")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, f"{path}[{key!r}]", strict=strict, depth=depth + 1)
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from leaves(item, f"{path}[{i}]", strict=strict, depth=depth + 1)
    elif strict and value is not None:
        raise OutputTypeError(f"output {path or '(top)'} is {type(value).__name__}, not a tensor "
                              "(expected a tensor, or tuples, lists and dicts of tensors)")


# ---------------------------------------------------------------- budgets


@dataclass
class Budget:
    """What one capture may still keep: bytes of whole module tensors (the ``--layers full`` cap), bytes of
    any whole tensor (what a bundle can hold), and module-call records."""

    bytes_left: int
    room_left: int = 56 * 2**20  # a bundle file stops at 64 MiB (core.bundle.Limits)
    calls_left: int = 20_000  # the bundle reader accepts 100,000; 20,000 keeps the manifest a few MB
    hit: bool = False  # a module's tensor was left as statistics for want of bytes

    def take_bytes(self, nbytes: int, *, output: bool = False) -> bool:
        """Whether a tensor of ``nbytes`` may be kept whole (outputs need only room in the bundle)."""
        if nbytes > self.room_left or (not output and nbytes > self.bytes_left):
            self.hit = self.hit or not output
            return False
        self.room_left -= nbytes
        if not output:
            self.bytes_left -= nbytes
        return True


# ---------------------------------------------------------------- recording a forward


@dataclass
class Recording:
    """What one forward produced: module calls in order and how many were not recorded."""

    calls: list[ModuleCall] = field(default_factory=list)
    dropped: int = 0


class TensorKeeper:
    """Turns tensors into ``TensorRecord``s, keeping whole arrays while the budget lasts."""

    def __init__(self, arrays: MemoryArrays, budget: Budget, *, digest_only: bool = False) -> None:
        self.arrays = arrays
        self.budget = budget
        self.digest_only = digest_only
        self._recent: dict[int, tuple[torch.Tensor, int, TensorStats, ArrayRef | None]] = {}

    def record(self, path: str, tensor: torch.Tensor, *, keep: bool, sample: int = MODULE_SAMPLE,
               output: bool = False) -> TensorRecord:
        known = self._recent.get(id(tensor))
        if known is not None and known[0] is tensor and known[1] == tensor._version:
            stats, ref = known[2], known[3]
            if ref is None and keep:
                ref = self._keep(stats, stored_array(tensor), output)
            if stats.sha256 and not self.digest_only and len(stats.sample) != min(sample, stats.size):
                stats = _resampled(stats, stored_array(tensor), sample)
        else:
            stats, array = tensor_stats(tensor, sample, digest_only=self.digest_only)
            ref = self._keep(stats, array, output) if keep else None
            self._remember(tensor, stats, ref)
        return TensorRecord(path, stats, ref)

    def _keep(self, stats: TensorStats, array: np.ndarray | None, output: bool) -> ArrayRef | None:
        if array is None or stats.dtype not in DTYPES or self.digest_only:
            return None
        ref = ArrayRef(stats.sha256, stats.dtype, stats.shape)
        if ref.sha256 not in self.arrays.blobs:
            if not self.budget.take_bytes(ref.nbytes, output=output):
                return None
            self.arrays.blobs[ref.sha256] = array.tobytes()
        return ref

    def _remember(self, tensor: torch.Tensor, stats: TensorStats, ref: ArrayRef | None) -> None:
        # A strong reference keeps the id from being reused by another tensor while it is remembered.
        self._recent[id(tensor)] = (tensor, tensor._version, stats, ref)
        while len(self._recent) > _REUSE:
            self._recent.pop(next(iter(self._recent)))

    def forget(self) -> None:
        self._recent.clear()


class ModuleHooks:
    """One global forward hook while the ``with`` block runs, recording every call of ``model``'s modules.

    Global (``register_module_forward_hook``), not one hook per module: hooks on
    a module make ``TransformerEncoderLayer`` leave its fused fast path, which
    would record another computation than the model's own, at a third more time.
    Modules of other models calling meanwhile are not ours and are ignored.
    """

    def __init__(self, model: torch.nn.Module, keeper: TensorKeeper, *, keep: bool, truth: Any = None) -> None:
        self.model = model
        self.keeper = keeper
        self.keep = keep
        self.truth = truth  # core.truth_pass.TruthCalls of the float64 pass: each call's error against it
        self.recording = Recording()
        self._names: dict[int, tuple[str, str, torch.nn.Module]] = {}
        self._counts: dict[str, int] = {}
        self._handle: Any = None

    def __enter__(self) -> Recording:
        # The module itself is held with its name: its id cannot be reused while the hook runs.
        self._names = {id(m): (name, type(m).__name__, m) for name, m in self.model.named_modules()}
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self.recording

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.keeper.forget()

    def _hook(self, module: Any, _args: Any, output: Any) -> None:
        found = self._names.get(id(module))
        if found is None or found[2] is not module:
            return
        name, type_name = found[0], found[1]
        call = self._counts[name] = self._counts.get(name, 0) + 1
        if self.keeper.budget.calls_left <= 0:
            self.recording.dropped += 1
            return
        self.keeper.budget.calls_left -= 1
        tensors = []
        for path, tensor in leaves(output):
            if len(tensors) == MAX_CALL_TENSORS:
                break
            if dense(tensor):  # a sparse or nested tensor has no bytes of its own to digest: not recorded
                tensors.append(self.keeper.record(path, tensor, keep=self.keep))
        error = self._truth_error(name, call, output) if self.truth is not None else None
        self.recording.calls.append(ModuleCall(name, call, type_name, tuple(tensors), truth_rel_error=error))

    def _truth_error(self, name: str, call: int, output: Any) -> float | None:
        """The worst relative L2 error of this call's floating tensors against the float64 pass's same call."""
        from driftboard.core.truth_pass import call_error

        truth = self.truth.pop((name, call), None)  # measured once: its memory goes back now
        if not truth:
            return None
        errors = [call_error(tensor, truth[path]) for path, tensor in leaves(output) if path in truth]
        found = [e for e in errors if e is not None]
        return max(found) if found and len(found) == len(errors) else None
