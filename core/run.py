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

    @property
    def key(self) -> tuple[str, str, str]:
        """(case id, device, dtype); with the run's suite version, the comparison key."""
        return (self.case_id, self.device, self.dtype)

    def refs(self) -> list[ArrayRef]:
        refs = [self.output] if self.output is not None else []
        return refs + [ref for _, ref in self.layers]


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
