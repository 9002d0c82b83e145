"""Small Streamlit pieces the pages share: verdict chips, plain-text headings, one-shot messages, downloads,
links to a run's page, and the ticked rows of a runs table kept by run id.

User text reaches Markdown-rendering calls only through ``markdown_text``
(every Markdown and HTML character escaped), or goes to ``st.text`` /
``st.code`` / ``st.dataframe``, which never render it. The one raw HTML is
the verdict chip, built from the verdict's own style with its text escaped.

``access_panel`` is the unlock/lock (tokens) or log in/out (OIDC) form. A
token lives in its password box only until the button's callback reads it:
the callback empties the box, so the token is neither kept in the session nor
sent back to the browser, and it is never logged or shown. Wrong tokens are
counted per client address and overall (``state.UNLOCK_ATTEMPTS``); past the
limit a token is refused without being checked. Each refusal is logged with
the client's address. An admin also gets "Clear caches" here: Streamlit's own
menu entry is hidden and its message refused (``dashboard.guards``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import streamlit as st

from driftboard.core.compare import Verdict
from driftboard.dashboard import auth, state, tables
from driftboard.dashboard.format import markdown_text, verdict_chip_html, verdict_style

ACCESS_FLASH = "access_flash"
TOKEN_KEY = "unlock_token"

log = logging.getLogger(__name__)


def verdict_badge(verdict: Verdict | str | None, prefix: str = "") -> None:
    """The verdict as a chip in its colour that also carries its icon and word (never colour alone).

    The HTML report's chip, not ``st.badge``: badges take only a few named colours, and a verdict has one
    colour everywhere. The chip's text is the verdict's label and ``prefix``, both escaped.
    """
    st.markdown(verdict_chip_html(verdict, prefix), unsafe_allow_html=True, help=verdict_style(verdict).meaning)


def heading(text: str, level: Literal[2, 3] = 3) -> None:
    """A heading whose text may hold user input: shown as typed."""
    (st.subheader if level == 3 else st.header)(markdown_text(text, 200), anchor=False)


def flash(key: str, kind: Literal["success", "error", "warning", "info"], text: str) -> None:
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


# ---------------------------------------------------------------- runs: links and ticked rows

RUNS_FLASH = "runs_flash"  # the Runs page's one-time message (also set by pages that send a visitor there)


def run_links(*columns: str) -> dict[str, object]:
    """Column config showing run page addresses (``tables.with_run_links``) as links that read as the run id.

    A link cell opens the run page in a new browser tab, which starts a new session: on a dashboard with
    tokens, that tab is not unlocked. ``run_page_link`` stays in this session.
    """
    return {c: st.column_config.LinkColumn(c, display_text=tables.RUN_LINK_TEXT,
                                           help="Opens the run's page (in a new tab)") for c in columns}


def run_page_link(run_id: str, label: str = "Open the run page", icon: str = ":material/description:") -> None:
    """A link to one run's page in this session (hidden from the menu: reached by links only)."""
    st.page_link("app_pages/run.py", label=label, icon=icon, query_params={"run": run_id})


def ticked_ids(key: str, ids: list[str]) -> list[str]:
    """The ids of the rows ticked in the selectable dataframe ``key`` that is about to show ``ids``, in order.

    A dataframe's selection is row positions, and Streamlit keeps them when the rows change (a run uploaded
    above them, one deleted, a filter): they would then tick other runs. So the positions are read against the
    ids the browser was last shown and moved to where those runs are now; a run no longer shown drops out.
    """
    shown_key = f"_{key}_shown"
    shown = st.session_state.get(shown_key) or []
    selection = (st.session_state.get(key) or {}).get("selection") or {}
    picked = [shown[i] for i in selection.get("rows") or [] if isinstance(i, int) and 0 <= i < len(shown)]
    picked = [run_id for run_id in dict.fromkeys(picked) if run_id in ids]
    if shown != ids:
        st.session_state[key] = _rows_ticked(sorted(ids.index(r) for r in picked))
    st.session_state[shown_key] = list(ids)
    return sorted(picked, key=ids.index)


def clear_ticks(key: str) -> None:
    """Untick every row of the selectable dataframe ``key`` (from a callback, before it is drawn again)."""
    st.session_state[key] = _rows_ticked([])


def _rows_ticked(rows: list[int]) -> dict[str, object]:
    """A dataframe selection as Streamlit takes it from session state (validated like the browser's)."""
    return {"selection": {"rows": rows, "columns": [], "cells": []}}


def upload_link() -> None:
    """A link to the Upload page, for sessions that may upload (the page is not in the menu otherwise)."""
    if state.allowed("upload"):
        st.page_link("app_pages/upload.py", label="Upload runs", icon=":material/upload_file:")


# ---------------------------------------------------------------- access


def _unlock() -> None:
    token = st.session_state.get(TOKEN_KEY) or ""
    st.session_state[TOKEN_KEY] = ""  # the token leaves the session (and the browser's box) at once
    if not token.strip():
        # Typing a token then clicking Unlock calls this twice (the box's on_change, then the button's
        # on_click, on an emptied box): the second call must not hide the first one's answer.
        already = isinstance(st.session_state.get(state.ACCESS_KEY), state.Unlocked)
        if ACCESS_FLASH not in st.session_state and not already:
            flash(ACCESS_FLASH, "info", "Enter your access token first.")
        return
    client = state.client_address()
    wait = state.UNLOCK_ATTEMPTS.retry_after(client)
    if wait > 0:  # refused before any hashing: guessing costs the server nothing more
        log.warning("dashboard: unlock attempt from %s refused unchecked: too many wrong tokens (retry in %d s)",
                    client, math.ceil(wait))
        flash(ACCESS_FLASH, "error", f"Too many wrong tokens: the token was not checked. Try again in "
                                     f"{math.ceil(wait)} s.")
        return
    member = auth.member_for_token(token.strip(), state.policy())
    if member is None:
        state.UNLOCK_ATTEMPTS.failed(client)
        log.warning("dashboard: unlock attempt from %s refused: unknown token", client)  # never the token
        flash(ACCESS_FLASH, "error", "That token is not valid: the dashboard stays locked.")
        return
    log.info("dashboard: %s unlocked from %s", member.name, client)
    st.session_state[state.ACCESS_KEY] = state.Unlocked(member.name)  # the panel now says who, with a Lock button


def _lock() -> None:
    st.session_state.pop(state.ACCESS_KEY, None)
    flash(ACCESS_FLASH, "info", "Locked: this session is anonymous again.")


def _clear_caches() -> None:
    if state.clear_caches():  # checks the role again: the button may be older than the session's role
        log.info("dashboard: caches cleared by %s from %s", state.who() or "an admin", state.client_address())
        flash(ACCESS_FLASH, "success", "Cleared the cached comparisons and drift matrices.")
    else:
        flash(ACCESS_FLASH, "error", "Only an admin may clear the caches.")


def access_panel() -> None:
    """Who this session is and how to change it (nothing in open mode), and an admin's "Clear caches"."""
    access = state.policy()
    if access.mode == "tokens":
        _token_panel()
    elif access.mode == "oidc":
        _oidc_panel()
    if state.is_admin():
        st.button("Clear caches", key="clear_caches", icon=":material/delete_sweep:", type="tertiary",
                  on_click=_clear_caches, help="Forget cached comparisons and drift matrices (for every session).")
    show_flash(ACCESS_FLASH)


def _token_panel() -> None:
    unlocked = st.session_state.get(state.ACCESS_KEY)
    if isinstance(unlocked, state.Unlocked):
        st.caption(f"Unlocked as **{markdown_text(unlocked.name, 64)}** ({state.role().word}).")
        st.button("Lock", key="lock", icon=":material/lock:", on_click=_lock)
        return
    st.text_input("Access token", type="password", key=TOKEN_KEY, autocomplete="off", on_change=_unlock,
                  help="Uploading, marking goldens and deleting need a team member's token. Enter unlocks too.")
    st.button("Unlock", key="unlock", icon=":material/lock_open:", on_click=_unlock)


def _oidc_panel() -> None:
    if not state.oidc_ready():
        st.error("Login is not configured: this server needs an [auth] section in .streamlit/secrets.toml and "
                 "Authlib (pip install 'streamlit[auth]'); see docs/DEPLOY.md.", icon=":material/error:")
        return
    if st.user.get("is_logged_in"):
        email = str(st.user.get("email") or "")
        st.caption(f"Signed in as **{markdown_text(email, 120)}** ({state.role().word}).")
        if st.button("Log out", key="logout", icon=":material/logout:"):
            st.logout()
        return
    if st.button("Log in", key="login", icon=":material/login:"):
        st.login()
