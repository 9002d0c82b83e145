"""Tolerance policies: when a difference is within tolerance and when it is drift.

A policy is one of

- ``bitwise``: any changed bit is drift (``-0.0`` vs ``0.0`` and NaN payloads included);
- ``ulp:N``: drift when an element is more than N ULPs away (±0 equal, NaN equals NaN);
- ``rtol=R,atol=A``: drift when ``|candidate - baseline| > A + R * |baseline|``, as
  ``torch.testing.assert_close``; both are required, because one alone surprises
  (``atol=0`` would still pass on ``rtol``);
- ``default``: ``rtol``/``atol`` from ``DEFAULT_TOLERANCES`` for the case's dtype.

A ``Policy`` is what the user asked for; a ``Tolerance`` is the concrete rule
for one dtype, which every ``Metrics`` records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from driftboard.core.errors import PolicyError

# dtype -> (rtol, atol): the one table of default tolerances, torch.testing.assert_close's.
# Dtypes not listed (integers, bool) compare exactly.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-3, 1e-5),
    "bfloat16": (1.6e-2, 1e-5),
    "float32": (1.3e-6, 1e-5),
    "float64": (1e-7, 1e-7),
}

PolicyKind = Literal["bitwise", "ulp", "close", "default"]
_EXPECTED = "expected bitwise, ulp:N, rtol=R,atol=A or default"


@dataclass(frozen=True)
class Tolerance:
    """The rule applied to one dtype: ``kind`` is bitwise, ulp or close."""

    kind: Literal["bitwise", "ulp", "close"]
    ulps: int = 0
    rtol: float = 0.0
    atol: float = 0.0

    def __str__(self) -> str:
        if self.kind == "bitwise":
            return "bitwise"
        if self.kind == "ulp":
            return f"ulp <= {self.ulps}"
        return f"rtol={self.rtol:g}, atol={self.atol:g}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": str(self)}
        if self.kind == "ulp":
            out["ulps"] = self.ulps
        if self.kind == "close":
            out.update(rtol=self.rtol, atol=self.atol)
        return out


@dataclass(frozen=True)
class Policy:
    kind: PolicyKind = "default"
    ulps: int = 0
    rtol: float = 0.0
    atol: float = 0.0

    def for_dtype(self, dtype: str) -> Tolerance:
        if self.kind == "bitwise":
            return Tolerance("bitwise")
        if self.kind == "ulp":
            return Tolerance("ulp", ulps=self.ulps)
        if self.kind == "close":
            return Tolerance("close", rtol=self.rtol, atol=self.atol)
        rtol, atol = DEFAULT_TOLERANCES.get(dtype, (0.0, 0.0))
        return Tolerance("close", rtol=rtol, atol=atol)

    def __str__(self) -> str:
        if self.kind == "ulp":
            return f"ulp:{self.ulps}"
        if self.kind == "close":
            return f"rtol={self.rtol:g},atol={self.atol:g}"
        return self.kind

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": str(self)}
        if self.kind == "ulp":
            out["ulps"] = self.ulps
        elif self.kind == "close":
            out.update(rtol=self.rtol, atol=self.atol)
        elif self.kind == "default":
            out["table"] = {dtype: {"rtol": r, "atol": a} for dtype, (r, a) in DEFAULT_TOLERANCES.items()}
        return out


DEFAULT_POLICY = Policy("default")
_ULP = re.compile(r"ulps?\s*[:=]\s*(\S*)")


def parse_policy(text: str) -> Policy:
    """``bitwise``, ``ulp:N``, ``rtol=R,atol=A`` (both) or ``default``; else ``PolicyError``."""
    spec = " ".join(str(text).split()).lower()
    if spec in ("bitwise", "default"):
        return Policy(spec)  # type: ignore[arg-type]
    match = _ULP.fullmatch(spec)
    if match:
        value = match.group(1)
        if not value.isdigit():
            raise _bad(text, f"ULP count must be a non-negative integer, got {value!r}")
        return Policy("ulp", ulps=int(value))
    if "=" in spec:
        return _parse_close(text, spec)
    raise _bad(text, "unknown policy")


def _parse_close(text: str, spec: str) -> Policy:
    values: dict[str, float] = {}
    for part in spec.split(","):
        name, sep, raw = (s.strip() for s in part.partition("="))
        if not sep or name not in ("rtol", "atol"):
            raise _bad(text, f"unknown setting {part.strip()!r} (only rtol and atol)")
        if name in values:
            raise _bad(text, f"{name} given twice")
        try:
            value = float(raw)
        except ValueError:
            raise _bad(text, f"{name} must be a number, got {raw!r}") from None
        if not math.isfinite(value) or value < 0:
            raise _bad(text, f"{name} must be a finite non-negative number, got {raw!r}")
        values[name] = value
    missing = {"rtol", "atol"} - values.keys()
    if missing:
        raise _bad(text, f"rtol and atol must be given together (missing {missing.pop()})")
    return Policy("close", rtol=values["rtol"], atol=values["atol"])


def _bad(text: str, problem: str) -> PolicyError:
    return PolicyError(f"invalid policy {str(text)[:60]!r}: {problem}; {_EXPECTED}")
