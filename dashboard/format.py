"""Plain formatting shared by the dashboard pages, the chart builders and the HTML report.

Verdicts always travel as colour *and* words (and a small icon), never colour
alone; the palette is Okabe-Ito's colour-blind-safe set, with two of Paul
Tol's for the rarest verdicts. Numbers are formatted once here so a page, a
chart's hover and the report show the same figure the same way. User-supplied
text (labels, notes, hostnames, tags, case ids from bundles) goes through
``safe_text`` before it is shown, and through ``html_text`` / ``plotly_text``
/ ``markdown_text`` where it would otherwise be read as markup.

No Streamlit, no Plotly, no torch: strings and numbers only.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftboard.core.compare.ulp import NAN_DISTANCE
from driftboard.core.compare.verdict import Verdict

MISSING = "–"  # shown where a figure does not exist (not compared, not decoded)


# ---------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class VerdictStyle:
    """How one verdict looks: fill colour, readable text colour on it, icon, word, explanation."""

    colour: str
    text_colour: str
    icon: str
    word: str
    meaning: str

    @property
    def label(self) -> str:
        """Icon and word, e.g. ``✗ drift``: what a table cell shows."""
        return f"{self.icon} {self.word}"


def _style(colour: str, icon: str, verdict: Verdict, meaning: str) -> VerdictStyle:
    return VerdictStyle(colour, text_colour_on(colour), icon, verdict.value, meaning)


def text_colour_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (``#rrggbb``), per WCAG."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    # contrast with black: (L + 0.05) / 0.05; with white: 1.05 / (L + 0.05)
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


def _verdict_styles() -> dict[Verdict, VerdictStyle]:
    v = Verdict
    return {
        v.IDENTICAL: _style("#009E73", "✓", v.IDENTICAL, "bitwise identical outputs"),
        v.WITHIN_TOLERANCE: _style("#56B4E9", "≈", v.WITHIN_TOLERANCE, "bits differ, every element within the policy"),
        v.MISSING_IN_BASELINE: _style("#BBBBBB", "+", v.MISSING_IN_BASELINE, "the case ran on the candidate only"),
        v.INPUTS_DIFFER: _style("#F0E442", "≠", v.INPUTS_DIFFER, "inputs or weights differ: compute not judged"),
        v.MISSING_IN_CANDIDATE: _style("#E69F00", "∅", v.MISSING_IN_CANDIDATE, "the case ran on the baseline only"),
        v.DRIFT: _style("#D55E00", "✗", v.DRIFT, "elements beyond the policy's tolerance"),
        v.NONFINITE_MISMATCH: _style("#CC79A7", "⚠", v.NONFINITE_MISMATCH, "NaN/Inf on one side only"),
        v.DTYPE_MISMATCH: _style("#0072B2", "⊘", v.DTYPE_MISMATCH, "output dtypes differ"),
        v.SHAPE_MISMATCH: _style("#332288", "⊘", v.SHAPE_MISMATCH, "output shapes differ"),
        v.ERROR: _style("#882255", "‼", v.ERROR, "the case failed on one side"),
    }


VERDICT_STYLES: dict[Verdict, VerdictStyle] = _verdict_styles()
NO_RESULT = VerdictStyle("#7F7F7F", "#ffffff", "·", "no result", "no comparison for this cell")


def as_verdict(value: Verdict | str | None) -> Verdict | None:
    """A ``Verdict`` from itself, its word (``"drift"``) or its member name (``"DRIFT"``); None stays None."""
    if value is None or isinstance(value, Verdict):
        return value
    try:
        return Verdict(value)
    except ValueError:
        try:
            return Verdict[str(value)]
        except KeyError:
            raise ValueError(f"unknown verdict {value!r}") from None


def verdict_style(value: Verdict | str | None) -> VerdictStyle:
    verdict = as_verdict(value)
    return NO_RESULT if verdict is None else VERDICT_STYLES[verdict]


def verdict_colour(value: Verdict | str | None) -> str:
    return verdict_style(value).colour


def verdict_label(value: Verdict | str | None) -> str:
    """``✗ drift``: icon and word, never colour alone."""
    return verdict_style(value).label


# ---------------------------------------------------------------- numbers


def fmt_ulp(value: int | float | None, dtype: str | None = None) -> str:
    """A ULP distance: ``0``, ``512``, ``24,899``, ``1.07e+09``; the NaN marker as ``∞ (NaN)``."""
    if value is None:
        return MISSING
    if isinstance(value, float) and not math.isfinite(value):
        return "∞ (NaN)" if math.isnan(value) else "∞"
    if is_nan_distance(int(value), dtype):
        return "∞ (NaN)"
    if abs(value) >= 1e7:
        return f"{value:.3g}"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.3g}"


def is_nan_distance(value: int, dtype: str | None = None) -> bool:
    """Whether ``value`` is ``core.compare``'s NaN-versus-number marker (for ``dtype``, or any float dtype)."""
    if dtype is not None:
        return dtype in NAN_DISTANCE and value >= NAN_DISTANCE[dtype]
    return value in _NAN_MARKERS


_NAN_MARKERS = frozenset(NAN_DISTANCE.values())


def fmt_float(value: float | None, digits: int = 3) -> str:
    """An error figure: ``0``, ``2.98e-08``, ``0.125``; ``NaN``, ``∞``; None as ``–``."""
    if value is None:
        return MISSING
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def fmt_abs(value: float | None) -> str:
    """An absolute error."""
    return fmt_float(value)


def fmt_rel(value: float | None) -> str:
    """A relative error (a ratio, not a percentage: 1e-7 reads better than 0.00001 %)."""
    return fmt_float(value)


def fmt_count(part: int, total: int) -> str:
    """``12 / 9,600 (0.13%)``."""
    if not total:
        return f"{part:,} / 0"
    share = part / total
    if part == 0 or part == total:
        pct = f"{share:.0%}"
    elif share < 1e-4:
        pct = "<0.01%"
    elif share < 0.1:
        pct = f"{share:.2%}"
    else:
        pct = f"{min(share, 0.999):.1%}"  # never "100.0%" while something is left
    return f"{part:,} / {total:,} ({pct})"


def fmt_index(index: tuple[int, ...] | list[int] | None) -> str:
    if index is None:
        return MISSING
    return "(" + ", ".join(str(int(i)) for i in index) + ")"


def fmt_shape(shape: tuple[int, ...] | list[int]) -> str:
    return "×".join(str(int(n)) for n in shape) if shape else "scalar"


def fmt_time(iso: str | datetime | None) -> str:
    """An ISO 8601 timestamp as ``2026-01-05 09:00 UTC`` (unparseable text is shown as given)."""
    if iso is None:
        return MISSING
    when = iso if isinstance(iso, datetime) else parse_time(iso)
    if when is None:
        return safe_text(iso)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def parse_time(iso: str) -> datetime | None:
    """An aware datetime (naive ones taken as UTC), or None when ``iso`` is not a timestamp."""
    try:
        when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def case_key_text(key: tuple[str, str, str] | list[str]) -> str:
    """``lstm_2layer/cpu/float32``: a case key as one string (case id, device, dtype)."""
    return "/".join(str(part) for part in key)


# ---------------------------------------------------------------- text


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def safe_text(value: Any, limit: int = 300) -> str:
    """Any value as one line of plain text: control and bidi characters dropped, whitespace collapsed,
    at most ``limit`` characters. Still needs ``html_text`` before it goes into HTML."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    text = " ".join(_CONTROL.sub("", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_text(value: Any, limit: int = 300) -> str:
    """``safe_text`` escaped for HTML element content and quoted attributes."""
    return html.escape(safe_text(value, limit), quote=True)


def plotly_text(value: Any, limit: int = 120) -> str:
    """User text for a Plotly title, tick, legend or hover: Plotly reads ``<b>``, ``<a href>`` and
    ``<br>`` in text as markup, and turns ``&lt;`` back into ``<``, so escaping shows it as typed."""
    return html.escape(safe_text(value, limit), quote=False)


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def markdown_text(value: Any, limit: int = 300) -> str:
    """User text for a Streamlit Markdown string (``st.markdown``, ``st.caption``, labels): every
    Markdown and HTML character backslash-escaped, so it is shown, not rendered."""
    return _MARKDOWN.sub(r"\\\1", safe_text(value, limit))
