"""Tolerance policies: when a difference is within tolerance and when it is drift.

A policy is one of

- ``bitwise``: any changed bit is drift (``-0.0`` vs ``0.0`` and NaN payloads included);
- ``ulp:N``: drift when an element is more than N ULPs away (±0 equal, NaN equals NaN);
- ``rtol=R,atol=A``: drift when ``|candidate - baseline| > A + R * |baseline|``, as
  ``torch.testing.assert_close``; both are required, because one alone surprises
  (``atol=0`` would still pass on ``rtol``);
- ``default``: ``rtol``/``atol`` from ``DEFAULT_TOLERANCES`` for the case's dtype;
- ``repeats[:factor=F]`` and ``fleet[:factor=F,runs=N]``: tolerances learned per case
  (``learned.py``): from the baseline's run-to-run spread, or from the runs a team
  accepted against its golden; a case with nothing to learn from falls back to ``default``.

A ``Policy`` is what the user asked for; a ``Tolerance`` is the concrete rule
for one dtype, which every ``Metrics`` records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
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

# Error against the float64 truth (``truth.py``), candidate over baseline: up to the first as close (below its
# inverse closer), up to the second slightly further, above it further. ``compare --truth-ratio`` overrides it.
TRUTH_RATIO: tuple[float, float] = (1.0, 2.0)

PolicyKind = Literal["bitwise", "ulp", "close", "default", "repeats", "fleet"]
LEARNED_KINDS = ("repeats", "fleet")
DEFAULT_FACTOR = 2.0  # learned tolerances: the largest observed error times this
DEFAULT_MIN_RUNS = 3  # fleet: accepted runs a case needs before its tolerance is learned
_EXPECTED = ("expected bitwise, ulp:N, rtol=R,atol=A, default, repeats[:factor=F] "
             "or fleet[:factor=F,runs=N]")


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
    factor: float = DEFAULT_FACTOR  # repeats and fleet only
    min_runs: int = DEFAULT_MIN_RUNS  # fleet only

    @property
    def learned(self) -> bool:
        """A policy whose tolerances are learned per case (``learned.py``); ``for_dtype`` is its fallback."""
        return self.kind in LEARNED_KINDS

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
        if self.kind == "repeats":
            return f"repeats:factor={self.factor:g}"
        if self.kind == "fleet":
            return f"fleet:factor={self.factor:g},runs={self.min_runs}"
        return self.kind

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": str(self)}
        if self.kind == "ulp":
            out["ulps"] = self.ulps
        elif self.kind == "close":
            out.update(rtol=self.rtol, atol=self.atol)
        elif self.learned:
            out.update(factor=self.factor, fallback="default")
            if self.kind == "fleet":
                out["min_runs"] = self.min_runs
        if self.kind in ("default", *LEARNED_KINDS):
            out["table"] = {dtype: {"rtol": r, "atol": a} for dtype, (r, a) in DEFAULT_TOLERANCES.items()}
        return out


DEFAULT_POLICY = Policy("default")
_ULP = re.compile(r"ulps?\s*[:=]\s*(\S*)")


def parse_policy(text: str) -> Policy:
    """``bitwise``, ``ulp:N``, ``rtol=R,atol=A`` (both) or ``default``; else ``PolicyError``."""
    spec = " ".join(str(text).split()).lower()
    if spec in ("bitwise", "default"):
        return Policy(spec)  # type: ignore[arg-type]
    kind, colon, settings = spec.partition(":")
    if kind.strip() in LEARNED_KINDS:
        return _parse_learned(text, kind.strip(), settings if colon else "")
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
    values = {name: _number(text, name, raw, 0, "a finite non-negative number")
              for name, raw in _settings(text, spec.split(","), ("rtol", "atol")).items()}
    missing = {"rtol", "atol"} - values.keys()
    if missing:
        raise _bad(text, f"rtol and atol must be given together (missing {missing.pop()})")
    return Policy("close", rtol=values["rtol"], atol=values["atol"])


def _parse_learned(text: str, kind: str, settings: str) -> Policy:
    """``repeats[:factor=F]``, ``fleet[:factor=F,runs=N]``: a factor of at least 1, at least 1 run."""
    allowed = ("factor", "runs") if kind == "fleet" else ("factor",)
    values = _settings(text, filter(None, settings.split(",")), allowed, f" for {kind}")
    factor, runs = DEFAULT_FACTOR, DEFAULT_MIN_RUNS
    if "runs" in values:
        if not values["runs"].isdigit() or int(values["runs"]) < 1:
            raise _bad(text, f"runs must be a positive integer, got {values['runs']!r}")
        runs = int(values["runs"])
    if "factor" in values:
        factor = _number(text, "factor", values["factor"], 1, "a finite number of at least 1")
    return Policy(kind, factor=factor, min_runs=runs)  # type: ignore[arg-type]


def _settings(text: str, parts: Iterable[str], allowed: tuple[str, ...], where: str = "") -> dict[str, str]:
    """The ``name=value`` settings of a policy: each name one of ``allowed``, given once."""
    values: dict[str, str] = {}
    for part in parts:
        name, sep, raw = (s.strip() for s in part.partition("="))
        if not sep or name not in allowed:
            raise _bad(text, f"unknown setting {part.strip()!r}{where} (only {' and '.join(allowed)})")
        if name in values:
            raise _bad(text, f"{name} given twice")
        values[name] = raw
    return values


def _number(text: str, name: str, raw: str, least: float, must_be: str) -> float:
    """A setting's finite number of at least ``least``."""
    try:
        value = float(raw)
    except ValueError:
        raise _bad(text, f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < least:
        raise _bad(text, f"{name} must be {must_be}, got {raw!r}")
    return value


def _bad(text: str, problem: str) -> PolicyError:
    return PolicyError(f"invalid policy {str(text)[:60]!r}: {problem}; {_EXPECTED}")
