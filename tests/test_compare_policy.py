"""Tolerance policies: parsing, errors, and the one per-dtype default table."""

from __future__ import annotations

import pytest

from driftboard.core.compare import DEFAULT_TOLERANCES, Policy, parse_policy
from driftboard.core.errors import DriftboardError, PolicyError


@pytest.mark.parametrize(
    "text,expected",
    [
        ("bitwise", Policy("bitwise")),
        ("  BITWISE ", Policy("bitwise")),
        ("default", Policy("default")),
        ("ulp:4", Policy("ulp", ulps=4)),
        ("ulp:0", Policy("ulp", ulps=0)),
        ("ulps=12", Policy("ulp", ulps=12)),
        ("rtol=1e-5,atol=1e-8", Policy("close", rtol=1e-5, atol=1e-8)),
        ("atol=0, rtol=0.5", Policy("close", rtol=0.5, atol=0.0)),
    ],
)
def test_parses(text: str, expected: Policy) -> None:
    assert parse_policy(text) == expected
    assert parse_policy(str(expected)) == expected  # str() round-trips


@pytest.mark.parametrize(
    "text,problem",
    [
        ("rtol=1e-5", "rtol and atol must be given together (missing atol)"),
        ("atol=1e-5", "missing rtol"),
        ("ulp:", "non-negative integer"),
        ("ulp:-1", "non-negative integer"),
        ("ulp:1.5", "non-negative integer"),
        ("rtol=x,atol=1", "rtol must be a number"),
        ("rtol=-1,atol=1", "finite non-negative"),
        ("rtol=nan,atol=1", "finite non-negative"),
        ("rtol=1,rtol=2", "rtol given twice"),
        ("rtol=1,atol=2,eps=3", "unknown setting 'eps=3'"),
        ("close", "unknown policy"),
        ("", "unknown policy"),
    ],
)
def test_errors_are_one_line_policy_errors(text: str, problem: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    message = str(info.value)
    assert problem in message
    assert "\n" not in message and message.startswith("invalid policy")
    assert "expected bitwise, ulp:N, rtol=R,atol=A, default, repeats[:factor=F] or fleet[:factor=F,runs=N]" in message
    assert isinstance(info.value, DriftboardError) and info.value.exit_code == 2


def test_default_table_is_torch_testings() -> None:
    assert DEFAULT_TOLERANCES == {
        "float16": (1e-3, 1e-5),
        "bfloat16": (1.6e-2, 1e-5),
        "float32": (1.3e-6, 1e-5),
        "float64": (1e-7, 1e-7),
    }
    tol = parse_policy("default").for_dtype("bfloat16")
    assert (tol.kind, tol.rtol, tol.atol) == ("close", 1.6e-2, 1e-5)
    assert parse_policy("default").for_dtype("int64").atol == 0.0  # integers compare exactly


def test_explicit_policies_ignore_the_dtype() -> None:
    for dtype in DEFAULT_TOLERANCES:
        assert parse_policy("ulp:3").for_dtype(dtype).ulps == 3
        assert parse_policy("bitwise").for_dtype(dtype).kind == "bitwise"
        assert parse_policy("rtol=1,atol=2").for_dtype(dtype).rtol == 1.0


def test_to_json() -> None:
    assert parse_policy("ulp:4").to_json() == {"kind": "ulp", "text": "ulp:4", "ulps": 4}
    assert parse_policy("default").to_json()["table"]["float32"] == {"rtol": 1.3e-6, "atol": 1e-5}
    assert str(parse_policy("default").for_dtype("float32")) == "rtol=1.3e-06, atol=1e-05"
