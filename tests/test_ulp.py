"""ULP distance against a reference definition computed from the values, not the bits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftboard.core.compare import NAN_DISTANCE, ulp_distance
from driftboard.core.run import to_float64

# format -> (explicit mantissa bits, smallest normal exponent, largest exponent, storage, bit-pattern dtype)
FORMATS = {
    "float16": (10, -14, 15, np.float16, np.uint16),
    "bfloat16": (7, -126, 127, np.uint16, np.uint16),
    "float32": (23, -126, 127, np.float32, np.uint32),
    "float64": (52, -1022, 1023, np.float64, np.uint64),
}


def reference_index(x: float, dtype: str) -> int:
    """Signed position of ``x`` among the format's non-NaN values, from its real value.

    Non-negative values are numbered 0 (zero), 1 (smallest subnormal), ...:
    subnormals by how many smallest-subnormal steps they are from 0, normals by
    exponent band (2**mantissa values per band) plus the steps within the band,
    infinity one past the largest finite value. Negative values mirror that.
    """
    mant, emin, emax, _, _ = FORMATS[dtype]
    magnitude = abs(x)
    if math.isinf(magnitude):
        index = (emax - emin + 2) << mant
    elif magnitude < math.ldexp(1.0, emin):
        steps = math.ldexp(magnitude, mant - emin)  # exact: a whole number of subnormal steps
        assert steps == int(steps)
        index = int(steps)
    else:
        _, e = math.frexp(magnitude)  # magnitude = f * 2**e, 0.5 <= f < 1
        exponent = e - 1
        within = math.ldexp(magnitude, mant - exponent)  # in [2**mant, 2**(mant+1))
        assert within == int(within)
        index = ((exponent - emin + 1) << mant) + int(within) - (1 << mant)
    return -index if math.copysign(1.0, x) < 0 else index


def reference_distance(x: float, y: float, dtype: str) -> int:
    if math.isnan(x) and math.isnan(y):
        return 0
    if math.isnan(x) or math.isnan(y):
        return NAN_DISTANCE[dtype]
    return abs(reference_index(x, dtype) - reference_index(y, dtype))


def named_bits(dtype: str) -> dict[str, int]:
    """Bit patterns of the values every format has."""
    mant = FORMATS[dtype][0]
    bits = np.dtype(FORMATS[dtype][4]).itemsize * 8
    inf = ((1 << (bits - 1 - mant)) - 1) << mant
    return {
        "zero": 0,
        "sign": 1 << (bits - 1),
        "tiny": 1,  # smallest subnormal
        "largest_subnormal": (1 << mant) - 1,
        "smallest_normal": 1 << mant,
        "largest": inf - 1,
        "inf": inf,
        "nan": inf + 1,  # a signalling NaN with the smallest payload
        "quiet_nan": inf | (1 << (mant - 1)),
        "all_ones": (1 << (bits - 1)) - 1,  # NaN with every payload bit set
    }


def special_bits(dtype: str) -> list[int]:
    """±0, extreme subnormals/normals, ±inf and NaNs with payloads and signs."""
    named = named_bits(dtype)
    positive = [v for k, v in named.items() if k != "sign"] + [named["smallest_normal"] + 1, 2]
    return positive + [p | named["sign"] for p in positive]


def bit_arrays(dtype: str, size: int = 24):
    _, _, _, _, ubits = FORMATS[dtype]
    width = np.dtype(ubits).itemsize * 8
    element = st.one_of(st.sampled_from(special_bits(dtype)), st.integers(0, (1 << width) - 1))
    return st.lists(st.tuples(element, element), min_size=1, max_size=size)


def to_stored(patterns: list[int], dtype: str) -> np.ndarray:
    _, _, _, storage, ubits = FORMATS[dtype]
    return np.array(patterns, dtype=ubits).view(storage)


def check_against_reference(pairs: list[tuple[int, int]], dtype: str) -> None:
    a = to_stored([p for p, _ in pairs], dtype)
    b = to_stored([q for _, q in pairs], dtype)
    got = ulp_distance(a, b, dtype)
    assert got.dtype == np.uint64
    with np.errstate(invalid="ignore"):  # widening a signalling NaN
        xs, ys = to_float64(a, dtype), to_float64(b, dtype)
    expected = [reference_distance(float(x), float(y), dtype) for x, y in zip(xs, ys, strict=True)]
    assert [int(v) for v in got] == expected
    assert [int(v) for v in ulp_distance(b, a, dtype)] == expected  # symmetric


@pytest.mark.parametrize("dtype", list(FORMATS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_ulp_matches_reference_on_bit_patterns(dtype: str, data: st.DataObject) -> None:
    check_against_reference(data.draw(bit_arrays(dtype)), dtype)


@pytest.mark.parametrize("width,dtype", [(16, "float16"), (32, "float32"), (64, "float64")])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_ulp_matches_reference_on_floats(width: int, dtype: str, data: st.DataObject) -> None:
    """Values as hypothesis draws them: ±0, subnormals, infinities and NaN included."""
    floats = st.floats(width=width, allow_nan=True, allow_infinity=True, allow_subnormal=True)
    values = data.draw(st.lists(st.tuples(floats, floats), min_size=1, max_size=16))
    storage = FORMATS[dtype][4]
    pairs = [(int(np.array(x, dtype).view(storage)), int(np.array(y, dtype).view(storage))) for x, y in values]
    check_against_reference(pairs, dtype)


@pytest.mark.parametrize("dtype", list(FORMATS))
def test_named_cases(dtype: str) -> None:
    v = named_bits(dtype)
    neg = v["sign"]
    cases = [
        (v["zero"], neg, 0),  # +0 and -0 are equal
        (v["tiny"], v["tiny"] | neg, 2),  # across the sign boundary
        (neg, v["tiny"], 1),
        (v["largest_subnormal"], v["smallest_normal"], 1),  # subnormal to normal is one step
        (v["largest"], v["inf"], 1),  # infinity is one past the largest finite value
        (v["inf"], v["inf"], 0),
        (v["nan"], v["quiet_nan"] | neg, 0),  # NaN vs NaN: 0 whatever the sign or payload
        (v["nan"], v["zero"], NAN_DISTANCE[dtype]),
        (v["all_ones"], v["inf"], NAN_DISTANCE[dtype]),
        (v["inf"], v["inf"] | neg, 2 * v["inf"]),  # -inf to +inf: the longest non-NaN distance
    ]
    a = to_stored([c[0] for c in cases], dtype)
    b = to_stored([c[1] for c in cases], dtype)
    assert [int(d) for d in ulp_distance(a, b, dtype)] == [c[2] for c in cases]
    assert 2 * v["inf"] < NAN_DISTANCE[dtype]


def test_integer_and_bool_distance() -> None:
    a = np.array([0, -5, 2**62], dtype=np.int64)
    b = np.array([3, 5, -(2**62)], dtype=np.int64)
    assert ulp_distance(a, b, "int64").tolist() == [3, 10, 2**63]
    assert ulp_distance(np.array([True, False]), np.array([True, True]), "bool").tolist() == [0, 1]


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        ulp_distance(np.zeros(3, np.float32), np.zeros(4, np.float32), "float32")


def test_keeps_shape_and_is_vectorised() -> None:
    a = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    b = np.nextafter(a, np.float32(2))
    d = ulp_distance(a, b, "float32")
    assert d.shape == (3, 4)
    assert (d == 1).all()


def test_storage_is_checked() -> None:
    with pytest.raises(ValueError, match="float32 arrays are stored as float32, got float64"):
        ulp_distance(np.zeros(2), np.zeros(2), "float32")
    with pytest.raises(ValueError, match="bfloat16 arrays are stored as uint16"):
        ulp_distance(np.zeros(2, np.float32), np.zeros(2, np.float32), "bfloat16")
    with pytest.raises(ValueError, match="unknown dtype"):
        ulp_distance(np.zeros(2), np.zeros(2), "float8")


def test_big_endian_input() -> None:
    a = np.array([1.0, -2.0], dtype=">f4")
    b = np.nextafter(a.astype("<f4"), np.float32(0)).astype(">f4")
    assert ulp_distance(a, b, "float32").tolist() == [1, 1]
