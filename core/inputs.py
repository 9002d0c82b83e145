"""Bit-stable reference weights and inputs, independent of torch's RNG.

A counter-based hash (splitmix64) turns (stream name, index) into 64-bit
integers, and the top 53 bits become a float64 in [0, 1). Integer arithmetic
and one exact division: the same bits on every machine and library version,
unlike ``torch.randn``, whose streams may change between releases, devices and
even tensor sizes. Values are rounded to the case dtype only at the end, so
"the inputs differed" is never mistaken for "the compute differed".
"""

from __future__ import annotations

import hashlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _stream_key(name: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def splitmix64(counter: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, vectorised over uint64 counters (wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = counter * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def uniform(name: str, shape: tuple[int, ...], low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Float64 values in [low, high) for the named stream, the same on every machine."""
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    counter = np.arange(n, dtype=np.uint64) + _stream_key(name)
    unit = (splitmix64(counter) >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
    return (low + (high - low) * unit).reshape(shape)


def digest(arrays: list[np.ndarray]) -> str:
    """sha256 over the little-endian bytes of arrays in order (with their shapes)."""
    h = hashlib.sha256()
    for array in arrays:
        h.update(repr(tuple(array.shape)).encode())
        h.update(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()
