"""The dashboard under ``streamlit.testing.v1.AppTest`` on a seeded SQLite database.

Each dashboard test module seeds one database per module (``seed_sqlite``),
gives every test a private copy named to the dashboard through the
environment (``private_copy``, the body of its ``db_url`` fixture), and opens
pages with ``open_page``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from db_factory import copy_sqlite
from streamlit.testing.v1 import AppTest

import driftboard.dashboard
from driftboard.db.session import ENV_VAR
from driftboard.db.store import Store, close_shared_stores

APP = Path(driftboard.dashboard.__file__).with_name("app.py")


def seed_sqlite(directory: Path, bundles: Iterable[bytes], golden: str, **golden_options: Any) -> Path:
    """A SQLite database in ``directory`` holding ``bundles``, with ``golden`` set as the golden run."""
    path = Path(directory) / "seed.sqlite"
    with Store(f"sqlite:///{path}") as store:
        for data in bundles:
            store.ingest(data, uploader="seed")
        store.set_golden(golden, set_by="seed", **golden_options)
    return path


def private_copy(seeded_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A ``db_url`` fixture's body: this test's copy of the seed; afterwards its Store and Streamlit's caches go."""
    url = copy_sqlite(seeded_file, tmp_path)
    monkeypatch.setenv(ENV_VAR, url)
    yield url
    import streamlit as st

    close_shared_stores()
    st.cache_resource.clear()
    st.cache_data.clear()


def open_page(page: str | None = None, **params: str | list[str]) -> AppTest:
    """The app run once (it opens on the status board), then switched to ``page`` with ``params``; no exception."""
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page:
        at.query_params.update(params)
        at.switch_page(f"app_pages/{page}.py").run()
        assert not at.exception, [e.value for e in at.exception]
    return at
