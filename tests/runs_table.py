"""The Runs page's table under AppTest: tick rows as a reader does, and read link cells as a reader sees them.

AppTest cannot click a dataframe's row boxes; a selectable dataframe's selection is its widget state, which
a test may set (Streamlit validates it as it validates the browser's). Run id cells hold run page addresses
(``run?run=ID``) that the browser shows as the id.
"""

from __future__ import annotations

import re

import pandas as pd
from streamlit.testing.v1 import AppTest

TABLE = "runs_table"
_LINK = re.compile(r"^run\?run=(.+)$")


def shown(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every run page address replaced by the run id the link column shows."""
    out = frame.copy()
    for column in out.columns:
        if any(isinstance(v, str) and _LINK.match(v) for v in out[column]):
            out[column] = [_LINK.sub(r"\1", v) if isinstance(v, str) else v for v in out[column]]
    return out


def runs_table(at: AppTest) -> pd.DataFrame:
    """The Runs table as shown (run ids, not addresses)."""
    found = [df for df in at.dataframe if df.key == TABLE]
    assert found, "no Runs table on the page"
    return shown(found[0].value)


def tick(at: AppTest, *run_ids: str) -> AppTest:
    """Tick the rows of ``run_ids`` in the Runs table (nothing else ticked), then rerun."""
    ids = list(runs_table(at)["run id"])
    at.session_state[TABLE] = {"selection": {"rows": [ids.index(r) for r in run_ids], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
