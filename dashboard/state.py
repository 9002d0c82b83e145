"""The dashboard's database and what it may cache: the Streamlit glue the pages share.

- The database URL comes from ``$DRIFTBOARD_DATABASE_URL`` (``driftboard serve``
  sets it), else the default SQLite file: ``db.session.database_url``.
- One ``Store`` per URL for the whole server (``st.cache_resource``): the engine
  and its connection pool are shared by every session.
- Only results that cannot go stale are cached (``st.cache_data``): a comparison
  is keyed by the bundle digests of its two runs, so a run deleted and stored
  again with other content is never answered from the cache. Lists of runs,
  goldens and machines are read fresh on every rerun (they are milliseconds).
- A ``DriftboardError`` (bad URL, out-of-date schema, unknown run) becomes one
  ``st.error`` line and stops the page; anything else is a bug and keeps its
  traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import streamlit as st

from core.compare import RunComparison
from core.errors import DriftboardError
from dashboard import data
from db.session import database_url
from db.store import Store


def fail(exc: DriftboardError) -> NoReturn:
    st.error(str(exc), icon=":material/error:")
    st.stop()


@contextmanager
def guard() -> Iterator[None]:
    """Run a block; a user-caused error is shown as one line and stops the page."""
    try:
        yield
    except DriftboardError as exc:
        fail(exc)


def current_url() -> str:
    with guard():
        return database_url(None)
    raise AssertionError("unreachable")  # guard() stops the page on error


@st.cache_resource(show_spinner=False, on_release=lambda store: store.close())
def _open(url: str) -> Store:
    return Store(url)


def store() -> Store:
    """The shared ``Store`` of this server's database (created on first use if it is an empty SQLite file)."""
    with guard():
        return _open(current_url())
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- content-keyed caches


@st.cache_data(show_spinner="Comparing…", max_entries=512)
def comparison(url: str, baseline: str, baseline_digest: str, candidate: str, candidate_digest: str,
               policy: str) -> RunComparison:
    """``Store.compare``; the digests are part of the key so a changed run is never answered from the cache."""
    return _open(url).compare(baseline, candidate, None if policy == "default" else policy)


@st.cache_data(show_spinner="Comparing every run with the baseline…", max_entries=32)
def matrix(url: str, baseline: str, baseline_digest: str, runs: tuple[tuple[str, str, str], ...],
           policy: str) -> data.MatrixData:
    """Verdict of every (run, case) against the baseline; ``runs`` are (run id, bundle digest, row label)."""
    return data.matrix_data(_open(url), baseline, [(run_id, label) for run_id, _, label in runs], policy)


def compare(baseline: str, candidate: str, policy: str = "default") -> RunComparison:
    """Two stored runs compared (cached by content)."""
    s = store()
    with guard():
        b, c = s.run(baseline), s.run(candidate)
        return comparison(s.url, b.run_id, b.bundle_digest, c.run_id, c.bundle_digest, policy)
    raise AssertionError("unreachable")
