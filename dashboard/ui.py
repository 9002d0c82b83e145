"""Small Streamlit pieces the pages share: verdict badges, plain-text headings, one-shot messages, downloads.

User text reaches Markdown-rendering calls only through ``markdown_text``
(every Markdown and HTML character escaped), or goes to ``st.text`` /
``st.code`` / ``st.dataframe``, which never render it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import streamlit as st

from core.compare import Verdict
from dashboard.format import as_verdict, markdown_text, verdict_style

BadgeColour = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray"]
_BADGE: dict[Verdict, BadgeColour] = {
    Verdict.IDENTICAL: "green",
    Verdict.WITHIN_TOLERANCE: "blue",
    Verdict.MISSING_IN_BASELINE: "gray",
    Verdict.INPUTS_DIFFER: "yellow",
    Verdict.MISSING_IN_CANDIDATE: "orange",
    Verdict.DRIFT: "red",
    Verdict.NONFINITE_MISMATCH: "violet",
    Verdict.DTYPE_MISMATCH: "violet",
    Verdict.SHAPE_MISMATCH: "violet",
    Verdict.ERROR: "red",
}


def verdict_badge(verdict: Verdict | str | None, prefix: str = "") -> None:
    """The verdict as a coloured badge that also carries its icon and word (never colour alone)."""
    v = as_verdict(verdict)
    style = verdict_style(v)
    st.badge(f"{prefix}{style.label}", color=_BADGE[v] if v is not None else "gray", help=style.meaning)


def heading(text: str, level: Literal[2, 3] = 3) -> None:
    """A heading whose text may hold user input: shown as typed."""
    (st.subheader if level == 3 else st.header)(markdown_text(text, 200), anchor=False)


def flash(key: str, kind: Literal["success", "error", "info"], text: str) -> None:
    """Keep a message to show once on the next run (for callbacks, which run before the page)."""
    st.session_state[key] = (kind, text)


def show_flash(key: str) -> None:
    message = st.session_state.pop(key, None)
    if message is not None:
        kind, text = message
        getattr(st, kind)(markdown_text(text, 600))


def downloads(key: str, stem: str, html: Callable[[], str], json_text: Callable[[], str]) -> None:
    """Download buttons for a report and its JSON, built only when clicked (the HTML inlines plotly.js)."""
    left, right = st.columns(2)
    left.download_button("Download the HTML report", data=html, file_name=f"{stem}.html", mime="text/html",
                         key=f"{key}_html", on_click="ignore", icon=":material/download:")
    right.download_button("Download its data (JSON)", data=json_text, file_name=f"{stem}.json",
                          mime="application/json", key=f"{key}_json", on_click="ignore", icon=":material/data_object:")
