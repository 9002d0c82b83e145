"""compare_arrays against a plain, unchunked reference written from the documented conventions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runs_factory import bump_ulps, store

from driftboard.core.compare import Metrics, compare_arrays, parse_policy, ulp_distance, worst_elements
from driftboard.core.compare import metrics as metrics_module
from driftboard.core.run import to_float64

DTYPES = ("float16", "bfloat16", "float32", "float64")
POLICIES = ("bitwise", "ulp:0", "ulp:3", "ulp:2000", "rtol=1e-3,atol=1e-6", "default")
SIGNED = {"float16": np.int16, "bfloat16": np.int16, "float32": np.int32, "float64": np.int64}


def reference(a: np.ndarray, b: np.ndarray, dtype: str, policy: str) -> dict:
    tol = parse_policy(policy).for_dtype(dtype)
    with np.errstate(all="ignore"):
        fa, fb = to_float64(a, dtype).ravel(), to_float64(b, dtype).ravel()
        finite = np.isfinite(fa) & np.isfinite(fb)
        same = finite | (np.isnan(fa) & np.isnan(fb)) | (fa == fb)
        diff = np.where(finite, np.abs(fb - fa), 0.0)
        rel = np.where(diff == 0, 0.0, diff / np.abs(fa))
    d = ulp_distance(a, b, dtype).ravel()[same]
    changed = int(np.count_nonzero(a.view(SIGNED[dtype]) != b.view(SIGNED[dtype])))
    nonfinite = int(np.count_nonzero(~same))
    if tol.kind == "bitwise":
        mismatched = changed
    elif tol.kind == "ulp":
        mismatched = int(np.count_nonzero(d > tol.ulps)) + nonfinite
    else:
        mismatched = int(np.count_nonzero(diff > tol.atol + tol.rtol * np.abs(fa))) + nonfinite
    shape = a.shape
    index = lambda flat: tuple(int(i) for i in np.unravel_index(flat, shape))  # noqa: E731
    return {
        "mismatched": mismatched,
        "changed": changed,
        "ulp_max": int(d.max()) if d.size else 0,
        "ulp_mean": float(d.astype(np.float64).mean()) if d.size else 0.0,
        "ulp_p99": int(np.quantile(d, 0.99, method="inverted_cdf")) if d.size else 0,
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "max_abs_index": index(int(diff.argmax())) if diff.size and diff.max() > 0 else None,
        "max_rel": float(rel.max()) if rel.size else 0.0,
        "max_rel_index": index(int(rel.argmax())) if rel.size and rel.max() > 0 else None,
        "nonfinite_mismatch": nonfinite,
        "nonfinite_index": index(int((~same).argmax())) if nonfinite else None,
    }


def check(a: np.ndarray, b: np.ndarray, dtype: str, policy: str) -> Metrics:
    got = compare_arrays(a, b, dtype, parse_policy(policy))
    want = reference(a, b, dtype, policy)
    for name, value in want.items():
        actual = getattr(got, name)
        if name == "ulp_mean":
            assert actual == pytest.approx(value, rel=1e-12), name
        else:
            assert actual == value, name
    assert got.n == a.size and got.shape == a.shape and got.dtype == dtype
    return got


def drifted_pair(dtype: str, n: int, seed: int, specials: bool) -> tuple[np.ndarray, np.ndarray]:
    """Values with sign changes, zeros, small and large ULP moves and (optionally) NaN/Inf."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 3, n)
    values[rng.random(n) < 0.05] = 0.0
    a = store(values, dtype)
    big = 200 if dtype in ("float16", "bfloat16") else 5000  # > the histogram's 1024 bins, yet finite
    moves = np.where(rng.random(n) < 0.7, rng.integers(0, 4, n), rng.integers(0, big, n))
    b = bump_ulps(a, dtype, moves)
    flip = rng.random(n) < 0.03  # opposite signs, including -0 against +0
    b[flip] = store(-to_float64(b[flip], dtype), dtype)
    if specials:
        pool = store(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]), dtype)
        for arr in (a, b):
            spots = rng.random(n) < 0.03
            arr[spots] = rng.choice(pool, int(spots.sum()))
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("policy", POLICIES)
def test_matches_reference_across_chunk_borders(monkeypatch: pytest.MonkeyPatch, dtype: str, policy: str) -> None:
    monkeypatch.setattr(metrics_module, "CHUNK", 37)
    for seed, specials in ((1, False), (2, True)):
        a, b = drifted_pair(dtype, 500, seed, specials)
        check(a.reshape(20, 25), b.reshape(20, 25), dtype, policy)


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_arrays_use_the_fast_path_exactly(dtype: str) -> None:
    a, b = drifted_pair(dtype, 3 * metrics_module.CHUNK + 11, 3, specials=False)
    check(a, b, dtype, "ulp:3")
    a, b = drifted_pair(dtype, 2 * metrics_module.CHUNK, 4, specials=True)
    check(a, b, dtype, "default")


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    policy=st.sampled_from(POLICIES),
    chunk=st.sampled_from([1, 3, 8, 64]),
    data=st.data(),
)
def test_matches_reference_on_arbitrary_bits(dtype: str, policy: str, chunk: int, data: st.DataObject) -> None:
    width = 64 if dtype == "float64" else (32 if dtype == "float32" else 16)
    bits = st.integers(0, 2**width - 1)
    pairs = data.draw(st.lists(st.tuples(bits, bits | st.just(0)), min_size=0, max_size=40))
    unsigned = {16: np.uint16, 32: np.uint32, 64: np.uint64}[width]
    storage = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32, "float64": np.float64}[dtype]
    a = np.array([p for p, _ in pairs], dtype=unsigned).view(storage)
    b = np.array([q for _, q in pairs], dtype=unsigned).view(storage)
    original = metrics_module.CHUNK
    metrics_module.CHUNK = chunk
    try:
        check(a, b, dtype, policy)
    finally:
        metrics_module.CHUNK = original


def test_signed_zeros_are_equal_but_changed() -> None:
    a = np.array([0.0, -0.0, 1.0], dtype=np.float32)
    b = np.array([-0.0, 0.0, 1.0], dtype=np.float32)
    m = compare_arrays(a, b, "float32", parse_policy("ulp:0"))
    assert (m.ulp_max, m.max_abs, m.mismatched, m.changed) == (0, 0.0, 0, 2)
    assert compare_arrays(a, b, "float32", parse_policy("bitwise")).mismatched == 2


def test_nonfinite_conventions() -> None:
    nan, inf = np.nan, np.inf
    a = np.array([nan, inf, -inf, 1.0, nan, 2.0], dtype=np.float32)
    b = np.array([nan, inf, -inf, 1.0, 1.0, inf], dtype=np.float32)
    m = compare_arrays(a, b, "float32")
    assert m.nonfinite_mismatch == 2 and m.nonfinite_index == (4,)
    assert m.mismatched == 2  # non-finite mismatches fail every policy
    assert (m.ulp_max, m.max_abs) == (0, 0.0)  # the comparable positions agree
    same = compare_arrays(a[:4], b[:4], "float32", parse_policy("bitwise"))
    assert same.mismatched == 0 and same.nonfinite_mismatch == 0


def test_relative_error_against_a_zero_baseline() -> None:
    a = np.array([0.0, 0.0, 2.0])
    b = np.array([0.0, 1e-30, 2.0])
    m = compare_arrays(a, b, "float64")
    assert m.max_rel == np.inf and m.max_rel_index == (1,)
    assert m.to_json()["max_rel"] is None  # JSON has no infinity


def test_figures_and_indices() -> None:
    a = np.zeros((3, 4), dtype=np.float32) + 1.0
    b = a.copy()
    b[2, 1] = np.nextafter(np.float32(1.0), np.float32(2.0))  # 1 ULP
    b[0, 3] = np.float32(1.5)
    m = compare_arrays(a, b, "float32", parse_policy("rtol=0.1,atol=0"))
    assert m.max_abs == 0.5 and m.max_abs_index == (0, 3)
    assert m.max_rel == 0.5 and m.max_rel_index == (0, 3)
    assert m.mismatched == 1 and m.changed == 2
    assert m.ulp_max == 2**22 and m.ulp_p99 == 2**22
    assert m.tolerance.kind == "close" and m.tolerance.rtol == 0.1


def test_default_policy_uses_the_dtype_table() -> None:
    a = np.ones(4, dtype=np.float32)
    b = bump_ulps(a, "float32", 11)  # 11 ULP at 1.0 ~ 1.3e-6: inside float32's atol
    m = compare_arrays(a, b, "float32")
    assert m.mismatched == 0 and m.ulp_max == 11
    assert (m.tolerance.rtol, m.tolerance.atol) == (1.3e-6, 1e-5)


def test_per_timestep_error() -> None:
    a = np.zeros((2, 5, 3), dtype=np.float32)
    b = a.copy()
    b[1, 3, 2] = 0.25
    b[0, 0, 0] = np.nan  # a non-finite mismatch does not count as a timestep error
    m = compare_arrays(a, b, "float32", time_axis=1)
    assert m.time_axis == 1
    assert m.timestep_max_abs == (0.0, 0.0, 0.0, 0.25, 0.0)


def test_identical_metrics_need_no_arrays() -> None:
    tol = parse_policy("default").for_dtype("float32")
    m = Metrics.identical((4, 6), "float32", tol, time_axis=1)
    assert (m.n, m.mismatched, m.ulp_max, m.timestep_max_abs) == (24, 0, 0, (0.0,) * 6)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        compare_arrays(np.zeros(3), np.zeros((3, 1)), "float64")


def test_empty_and_scalar_arrays() -> None:
    m = compare_arrays(np.zeros(0, np.float32), np.zeros(0, np.float32), "float32")
    assert (m.n, m.mismatched, m.max_abs_index) == (0, 0, None)
    m = compare_arrays(np.float32(1.0), np.float32(2.0), "float32", parse_policy("bitwise"))
    assert m.max_abs_index == () and m.mismatched == 1


def test_to_json_is_strict_json() -> None:
    a = np.array([1.0, np.nan, 0.0], dtype=np.float32)
    b = np.array([1.0, 1.0, 5.0], dtype=np.float32)
    payload = compare_arrays(a, b, "float32", time_axis=0).to_json()
    json.dumps(payload, allow_nan=False)
    assert payload["max_rel"] is None and payload["nonfinite_index"] == [1]


def test_worst_elements() -> None:
    a = np.arange(10, dtype=np.float32).reshape(2, 5)
    b = bump_ulps(a, "float32", np.arange(10).reshape(2, 5))
    b[0, 0] = np.nan
    rows = worst_elements(a, b, "float32", k=3)
    assert [r.index for r in rows] == [(0, 0), (1, 4), (1, 3)]  # NaN first, then by ULP
    assert rows[1].ulp == 9 and rows[1].baseline == 9.0
    assert worst_elements(a, a, "float32") == ()
