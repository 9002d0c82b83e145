"""ULP distance: how many representable values lie between two floats.

Each float's bits are mapped onto a monotonic integer line (the sign-magnitude
bits of a negative number become the negated magnitude), so the distance is a
difference of integers and crosses the sign boundary correctly:
``ulp(-min_subnormal, +min_subnormal) == 2``.

Defined cases, for every format (float16, bfloat16 as uint16 bits, float32,
float64):

- ``+0`` and ``-0`` are equal (distance 0);
- infinities are one step past the largest finite value of their sign;
- NaN vs NaN is 0 whatever the payload or sign: both are "not a number";
- NaN vs anything else is ``NAN_DISTANCE[dtype]`` = 2**bits - 1, more than any
  distance between two non-NaN values (at most -inf to +inf).

Integer and bool arrays get ``|a - b|`` (their spacing is 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftboard.core.run import DTYPES


@dataclass(frozen=True)
class FloatBits:
    """How one float format's bits are laid out, for integer views of it."""

    bits: int
    signed: np.dtype  # same-width signed integer view
    magnitude: int  # mask of everything but the sign bit
    inf: int  # bit pattern of +inf; magnitudes above it are NaN

    @property
    def nan_distance(self) -> int:
        return (1 << self.bits) - 1


FLOAT_BITS: dict[str, FloatBits] = {
    "float16": FloatBits(16, np.dtype("<i2"), 0x7FFF, 0x7C00),
    "bfloat16": FloatBits(16, np.dtype("<i2"), 0x7FFF, 0x7F80),
    "float32": FloatBits(32, np.dtype("<i4"), 0x7FFFFFFF, 0x7F800000),
    "float64": FloatBits(64, np.dtype("<i8"), 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
}
NAN_DISTANCE: dict[str, int] = {name: spec.nan_distance for name, spec in FLOAT_BITS.items()}


def monotonic(bits: np.ndarray, spec: FloatBits) -> np.ndarray:
    """Signed integers ordered like the floats: ``-magnitude`` for negatives, so ±0 -> 0."""
    magnitude = bits & spec.signed.type(spec.magnitude)
    out = magnitude.astype(np.int64)
    np.negative(out, out=out, where=bits < 0)
    return out


def stored(array: np.ndarray, dtype: str) -> np.ndarray:
    """``array`` as stored for ``dtype`` in native byte order; a float of another width is an error.

    Integer views of the bits are only meaningful on the right storage type
    (bfloat16: uint16 bits, never float values).
    """
    array = np.asarray(array)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    storage = DTYPES[dtype]
    if dtype in FLOAT_BITS and array.dtype != storage.newbyteorder("="):
        raise ValueError(f"{dtype} arrays are stored as {storage.name}, got {array.dtype.name}")
    return array


def ulp_distance(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """Elementwise ULP distance of two stored arrays of ``dtype``, as uint64.

    ``a`` and ``b`` are raw stored arrays (bfloat16 as uint16 bits) of equal
    shape; the result has their shape.
    """
    a = stored(a, dtype)
    b = stored(b, dtype)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    spec = FLOAT_BITS.get(dtype)
    if spec is None:
        return _integer_distance(a, b)
    ia = np.ascontiguousarray(a).view(spec.signed)
    ib = np.ascontiguousarray(b).view(spec.signed)
    ma = monotonic(ia, spec)
    mb = monotonic(ib, spec)
    # Wrapping uint64 arithmetic: the true distance is below 2**64, so
    # "larger minus smaller" modulo 2**64 is exact even for float64.
    d = ma.view(np.uint64) - mb.view(np.uint64)
    np.negative(d, out=d, where=ma < mb)
    nan_a = (ia & spec.signed.type(spec.magnitude)) > spec.inf
    nan_b = (ib & spec.signed.type(spec.magnitude)) > spec.inf
    if nan_a.any() or nan_b.any():
        d[nan_a & nan_b] = 0
        d[nan_a ^ nan_b] = spec.nan_distance
    return d


def bit_length(values: np.ndarray) -> np.ndarray:
    """Exact bit length of non-negative integers (0 -> 0) as int64, vectorised: ULP distances to
    power-of-two buckets (``1``, ``2-3``, ``4-7``, ...).

    ``frexp``'s exponent is the bit length of an exactly representable integer;
    values of 2**53 and more (which float64 may round up a power of two) go
    through integer shifts instead.
    """
    x = np.asarray(values).astype(np.uint64, copy=False).reshape(-1)
    out = np.frexp(x.astype(np.float64))[1].astype(np.int64)
    huge = np.flatnonzero(x >= np.uint64(1 << 53))
    if huge.size:
        rest = x[huge]
        exact = np.zeros(huge.size, dtype=np.int64)
        for shift in (32, 16, 8, 4, 2, 1):
            big = rest >= np.uint64(1 << shift)
            exact[big] += shift
            rest[big] >>= np.uint64(shift)
        exact[rest > 0] += 1
        out[huge] = exact
    return out.reshape(np.shape(values))


def _integer_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == np.bool_:
        return (a != b).astype(np.uint64)
    wide_a = a.astype(np.int64)
    wide_b = b.astype(np.int64)
    d = wide_a.view(np.uint64) - wide_b.view(np.uint64)
    np.negative(d, out=d, where=wide_a < wide_b)
    return d
