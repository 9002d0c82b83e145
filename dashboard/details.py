"""Long table text shown whole: column widths that fit a 1440 px screen, and an expander with each row's
full text, because ``st.dataframe`` cells never wrap (Streamlit 1.67's ``TextColumn`` has no wrap option)
and cut what does not fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import streamlit as st

from driftboard.dashboard.format import markdown_text

MAX_ROWS = 60  # rows written out in full; the table holds the rest


def widths(sizes: Mapping[str, str | int]) -> dict[str, object]:
    """Column config giving each named text column a width (``"small"``/``"medium"``/``"large"`` or pixels)."""
    return {name: st.column_config.TextColumn(name, width=size) for name, size in sizes.items()}  # type: ignore[arg-type]


def in_full(label: str, rows: Iterable[tuple[str, str]]) -> None:
    """An expander listing ``(heading, text)`` pairs as escaped Markdown: the text the table cells cut."""
    shown = list(rows)
    if not shown:
        return
    with st.expander(label, icon=":material/notes:"):
        for heading, text in shown[:MAX_ROWS]:
            st.markdown(f"**{markdown_text(heading, 200)}**  \n{markdown_text(text, 2000)}")
        if len(shown) > MAX_ROWS:
            st.caption(f"… and {len(shown) - MAX_ROWS} more (all in the table above).")
