"""Plain formatting shared by the dashboard pages, the chart builders and the HTML report.

Verdicts always travel as colour *and* words (and a small icon), never colour
alone; how each looks is defined once, next to ``Verdict`` in
``core/compare/verdict.py``, and only presented here. Numbers are formatted
once here so a page, a chart's hover and the report show the same figure the
same way. User-supplied
text (labels, notes, hostnames, tags, case ids from bundles) goes through
``safe_text`` before it is shown, and through ``html_text`` / ``plotly_text``
/ ``markdown_text`` where it would otherwise be read as markup.

No Streamlit, no Plotly, no torch: strings and numbers only.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from typing import Any

from driftboard.core.compare.envdiff import display
from driftboard.core.compare.ulp import NAN_DISTANCE
from driftboard.core.compare.verdict import VERDICT_STYLES, Verdict, VerdictStyle

MISSING = "–"  # shown where a figure does not exist (not compared, not decoded)


# ---------------------------------------------------------------- verdicts

# Each verdict's word, meaning, colour and icon are defined once, next to ``Verdict`` (VERDICT_STYLES);
# this is the look of a cell that has no verdict at all.
NO_RESULT = VerdictStyle("no result", "no comparison for this cell", "#7F7F7F", "·")


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


def verdict_chip_html(value: Verdict | str | None, prefix: str = "") -> str:
    """The verdict as an HTML chip: its colour with icon and word (never colour alone), its meaning on hover.

    One chip for the HTML report and the dashboard; it carries its own layout, so it needs no stylesheet.
    """
    style = verdict_style(value)
    return (f"<span class='chip' style='display:inline-block;padding:0 .5em;border-radius:.7em;font-weight:600;"
            f"white-space:nowrap;background:{style.colour};color:{style.text_colour}' "
            f"title='{html_text(style.meaning)}'>{html_text(prefix + style.label)}</span>")


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


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,204 runs``: a count with its noun agreeing (``words`` when not ``word + "s"``)."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def fmt_setting(value: Any, key: str = "", limit: int = 300) -> str:
    """A fingerprint value as people write it: yes/no for flags, ``–`` for unknown, cuDNN's 91002 as 9.10.2.

    The environment diff's own wording (``core.compare.envdiff.display``), so a run's page and a comparison
    show a setting the same way.
    """
    return safe_text(display(value, limit=limit, key=key), limit)


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


def tab_name(run: Any) -> str:
    """A run as people recognise it in a tab or heading: its label and host (the run id when it has neither)."""
    parts = [p for p in (safe_text(getattr(run, "label", ""), 40), safe_text(getattr(run, "hostname", ""), 30)) if p]
    return " · ".join(dict.fromkeys(parts)) or run.run_id
