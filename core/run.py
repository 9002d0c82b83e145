"""What one capture produced: a run, its cases and references to their arrays.

These frozen dataclasses cross every layer (bundle files, the database,
comparison, the dashboard). Arrays are referenced by sha256 and loaded on
demand from an ``ArraySource``, so equal digests never need decoding.
Importing this module never loads torch.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# dtype name -> (numpy storage dtype, item size). bfloat16 has no numpy dtype:
# its raw bits are kept as uint16 and decoded by ``to_float64``.
DTYPES: dict[str, np.dtype] = {
    "float16": np.dtype("<f2"),
    "bfloat16": np.dtype("<u2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "uint8": np.dtype("u1"),
    "bool": np.dtype("?"),
}
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


@dataclass(frozen=True)
class ArrayRef:
    """An array by content: digest of its raw little-endian bytes, dtype and shape."""

    sha256: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # Python ints: a hostile shape cannot overflow

    @property
    def nbytes(self) -> int:
        return self.size * DTYPES[self.dtype].itemsize

    def to_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "dtype": self.dtype, "shape": list(self.shape)}


class ArraySource(Protocol):
    """Where arrays live: a bundle file, the database, memory."""

    def load(self, ref: ArrayRef) -> np.ndarray: ...


def sha256_hex(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_array(array: np.ndarray, dtype: str) -> tuple[ArrayRef, bytes]:
    """Raw little-endian bytes of ``array`` stored as ``dtype`` and their reference."""
    storage = DTYPES[dtype]
    data = np.ascontiguousarray(array, dtype=storage).tobytes()
    return ArrayRef(sha256_hex(data), dtype, tuple(int(n) for n in array.shape)), data


def decode_array(ref: ArrayRef, data: bytes) -> np.ndarray:
    """Array view of raw bytes already checked against ``ref``."""
    return np.frombuffer(data, dtype=DTYPES[ref.dtype]).reshape(ref.shape)


def to_float64(array: np.ndarray, dtype: str) -> np.ndarray:
    """Exact float64 values of a stored array (bfloat16 bits widened by a shift)."""
    if dtype == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return array.astype(np.float64)


class MemoryArrays:
    """An ``ArraySource`` over a dict of raw bytes, as a bundle reader builds it."""

    def __init__(self, blobs: dict[str, bytes] | None = None) -> None:
        self.blobs: dict[str, bytes] = dict(blobs or {})

    def add(self, array: np.ndarray, dtype: str) -> ArrayRef:
        ref, data = encode_array(array, dtype)
        self.blobs[ref.sha256] = data
        return ref

    def load(self, ref: ArrayRef) -> np.ndarray:
        return decode_array(ref, self.blobs[ref.sha256])


@dataclass(frozen=True)
class TensorStats:
    """One tensor summarised: enough to tell equal from different, and by how much, without its elements.

    ``sha256`` is over the stored bytes (as ``encode_array`` writes them), so it
    equals the digest of the whole array when that is kept too. ``min`` to
    ``l2`` are over the finite elements, computed in float64 (None when there
    are none or the dtype is not a number); ``sample`` holds the elements at
    fixed positions (``sample_positions``), non-finite ones as NaN or ±inf.
    """

    shape: tuple[int, ...]
    dtype: str
    sha256: str
    nonfinite: int = 0
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    l1: float | None = None
    l2: float | None = None
    sample: tuple[float, ...] = ()

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def sample_positions(size: int, count: int) -> list[int]:
    """Flat indices of a fixed sample of ``count`` elements, evenly spread: the same on every machine."""
    if size <= count:
        return list(range(size))
    if count <= 1:
        return [0][:count]
    return [i * (size - 1) // (count - 1) for i in range(count)]


@dataclass(frozen=True)
class TensorRecord:
    """One tensor of an output or a module call: where it sits, its statistics, and the array when kept whole."""

    path: str  # inside the output: "" for a lone tensor, "[0]", "[1][0]", "['logits']"
    stats: TensorStats
    array: ArrayRef | None = None


@dataclass(frozen=True)
class ModuleCall:
    """One call of one module during the forward, in execution order (forward hooks)."""

    name: str  # qualified name as ``named_modules`` gives it; "" is the model itself
    call: int  # 1 for the module's first call in the forward, 2 for its second (a shared layer, a loop)
    type: str  # the module's class name
    tensors: tuple[TensorRecord, ...] = ()
    # The worst relative L2 error of its floating tensors against the same call of the float64 pass on the
    # CPU (``core/truth.py``); None when not measured (no truth pass, integer tensors, over the memory cap).
    truth_rel_error: float | None = None

    @property
    def label(self) -> str:
        """How people read it: ``encoder.layers.3.self_attn (MultiheadAttention), call 1``."""
        return module_label(self.name, self.type, self.call)


def module_label(name: str, type_name: str, call: int) -> str:
    return f"{name or '(model)'} ({type_name}), call {call}"


LAYER_MODES = ("statistics", "full", "none")


@dataclass(frozen=True)
class OwnResult:
    """What a case from the team's own models recorded besides the suite's fields.

    ``outputs`` are every tensor of the model's output (any nesting); ``modules``
    one record per module call. Neither holds timings, so equal numbers give an
    equal ``OwnResult`` on every machine.
    """

    source: str  # where the factory lives, e.g. "driftboard_cases.py:encoder"
    layers: str  # how module calls were recorded: statistics, full or none
    outputs: tuple[TensorRecord, ...]
    modules: tuple[ModuleCall, ...] = ()
    autocast: str | None = None  # the autocast dtype the forward ran under, if any
    tolerance: str | None = None  # the tolerance policy the case declares (``parse_policy`` text)
    weights_rng: bool = False  # the weights depend on torch's random stream (seeded default init)
    modules_dropped: int = 0  # module calls past the recording budget, not recorded
    title: str = ""
    inputs_rng: bool = False  # the inputs depend on torch's random stream (torch.randn)
    hooks_change_output: bool = False  # the forward with hooks computed other outputs than the plain one

    def refs(self) -> list[tuple[str, ArrayRef]]:
        """(field, array) of every tensor kept whole, outputs first."""
        found = [(f"own.outputs[{i}].array", t.array) for i, t in enumerate(self.outputs) if t.array is not None]
        for i, module in enumerate(self.modules):
            found += [(f"own.modules[{i}].tensors[{j}].array", t.array)
                      for j, t in enumerate(module.tensors) if t.array is not None]
        return found


TRAINING_SERIES = ("loss", "grad_norm", "param_distance")


@dataclass(frozen=True)
class TrainingTrace:
    """What a training case recorded step by step, so two runs compare step by step without every step's weights.

    Step ``i`` (0-based here, shown 1-based) ran one batch forward and backward
    and one optimizer step: ``loss[i]`` and ``grad_norm[i]`` (L2 norm of all
    gradients) are from before that update, ``param_distance[i]`` (L2 distance
    from the initial parameters) and ``param_digests[i]`` (sha256 of the flat
    parameter vector's stored bytes) from after it. Norms are float64, summed
    exactly (``math.fsum``), so they differ only where the parameters differ.
    The final flat parameters are the case's ``output``; ``parameters`` are
    per-parameter statistics (whole tensors are ``CaseResult.layers`` with
    ``--layers full``). No timings: equal numbers give an equal trace.
    """

    optimizer: str  # e.g. "Adam(lr=0.01)"
    loss_fn: str  # e.g. "MSELoss"
    loss: tuple[float, ...]
    grad_norm: tuple[float, ...]
    param_distance: tuple[float, ...]
    param_digests: tuple[str, ...]
    parameters: tuple[tuple[str, TensorStats], ...] = ()
    batches: int = 1  # distinct fixed batches, used in turn

    @property
    def steps(self) -> int:
        return len(self.loss)

    @property
    def final_digest(self) -> str | None:
        return self.param_digests[-1] if self.param_digests else None


@dataclass(frozen=True)
class RepeatSpread:
    """How far a case's repeats in one process strayed from its first output (the kept one).

    The largest element-wise absolute and relative difference and ULP distance
    over every repeat, outputs only; all 0 when the repeats were bitwise equal.
    The run-to-run noise ``--policy repeats`` learns a tolerance from.
    """

    max_abs: float
    max_rel: float
    ulps: int

    def to_json(self) -> dict[str, Any]:
        return {"max_abs": self.max_abs, "max_rel": self.max_rel, "ulps": self.ulps}


@dataclass(frozen=True)
class TruthError:
    """How far a case's output is from the same case computed on the CPU in float64 (the "truth").

    The float64 pass runs a deep copy of the same module with its weights and
    inputs exactly upcast, so the only difference is the arithmetic. Figures are
    over every floating output element where both are finite: ``max_rel`` over
    elements whose truth is not zero, ``rel_l2`` is ``‖out - truth‖ / ‖truth‖``,
    ``ulp_max`` the distance in the case's own dtype to the truth rounded to it
    (0: correctly rounded). ``error`` says why there are no figures.
    """

    max_abs: float | None = None
    max_rel: float | None = None
    rel_l2: float | None = None
    ulp_max: int | None = None
    seconds: float = 0.0  # the float64 pass, copy included
    nonfinite: int = 0  # elements non-finite on one side only, left out of the figures
    error: str | None = None

    @property
    def measured(self) -> bool:
        return self.error is None and self.rel_l2 is not None

    def to_json(self) -> dict[str, Any]:
        """The manifest form: no NaN or infinity (a figure that is not finite is null)."""
        def number(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return {"max_abs": number(self.max_abs), "max_rel": number(self.max_rel), "rel_l2": number(self.rel_l2),
                "ulp_max": self.ulp_max, "seconds": number(self.seconds) or 0.0, "nonfinite": self.nonfinite,
                "error": self.error}


@dataclass(frozen=True)
class CaseResult:
    """One reference case on one device and dtype.

    ``output`` is the case's final output (for sequence cases the full
    per-timestep output, time along ``time_axis``). ``layers`` are intermediate
    outputs in forward order. ``repeat_identical`` says whether the repeats in
    one process were bitwise equal.
    """

    case_id: str
    device: str
    dtype: str
    input_digest: str
    weight_digest: str
    output: ArrayRef | None
    layers: tuple[tuple[str, ArrayRef], ...] = ()
    time_axis: int | None = None
    repeats: int = 1
    repeat_identical: bool = True
    seconds: float = 0.0
    error: str | None = None
    own: OwnResult | None = None  # set for a case of the team's own models, None for a suite case
    truth: TruthError | None = None  # against the float64 pass; None: not computed (float64 cases, older bundles)
    repeat_spread: RepeatSpread | None = None  # None: not recorded (older bundles, one repeat, stored runs)
    training: TrainingTrace | None = None  # set for a training case: output holds the final flat parameters

    @property
    def key(self) -> tuple[str, str, str]:
        """(case id, device, dtype); with the run's suite version, the comparison key."""
        return (self.case_id, self.device, self.dtype)

    @property
    def kind(self) -> str:
        """``suite`` for a reference-suite case, ``own`` for one of the team's own models."""
        return "suite" if self.own is None else "own"

    def refs(self) -> list[ArrayRef]:
        return [ref for _, ref in self.named_refs()]

    def named_refs(self) -> list[tuple[str, ArrayRef]]:
        """(manifest field, array) of every array the case references."""
        refs = [("output", self.output)] if self.output is not None else []
        refs += [(f"layers[{j}]", ref) for j, (_, ref) in enumerate(self.layers)]
        return refs + (self.own.refs() if self.own is not None else [])


def device_class(run: Run) -> str:
    """What kind of device a run's outputs come from: goldens, fleets and determinism tiers are per device class."""
    devices = {case.device.split(":")[0] for case in run.cases}
    for accelerator in ("cuda", "mps", "xpu"):
        if accelerator in devices:
            return accelerator
    if devices:
        return "cpu"
    gpu = run.fingerprint.get("gpu") if isinstance(run.fingerprint.get("gpu"), dict) else {}
    return "cuda" if isinstance(gpu.get("count"), int) and gpu["count"] > 0 else "cpu"


@dataclass(frozen=True)
class Run:
    """A capture: who and where, the fingerprint, the settings in force, the cases."""

    run_id: str
    created_at: str  # ISO 8601, UTC
    suite_id: str
    suite_version: int
    variant: str
    fingerprint: dict[str, Any]
    fingerprint_digest: str
    cases: tuple[CaseResult, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    tags: tuple[str, ...] = ()
    note: str = ""
    tool_version: str = ""
    imported: bool = False  # an environment-only run from a collect_env report

    def case(self, case_id: str, device: str = "cpu", dtype: str = "float32") -> CaseResult:
        for case in self.cases:
            if case.key == (case_id, device, dtype):
                return case
        raise KeyError((case_id, device, dtype))
