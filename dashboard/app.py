"""driftboard's dashboard: the ``st.navigation`` router and nothing else (``driftboard serve`` runs it).

The page list depends on the session's role (``dashboard.state``): a session
that may not view sees only the locked page with its unlock/login form; one
that may not upload has no Upload page at all.
"""

from pathlib import Path

import streamlit as st

from driftboard.dashboard import state, ui

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="driftboard", page_icon=":material/compare_arrows:", layout="wide")
if not state.allowed("view"):
    pages = [st.Page(PAGES / "locked.py", title="Locked", icon=":material/lock:", url_path="locked", default=True)]
else:
    with st.sidebar:
        ui.access_panel()
    upload = st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload_file:", url_path="upload")
    pages = [
        st.Page(PAGES / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs", default=True),
        *([upload] if state.allowed("upload") else []),
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page(PAGES / "matrix.py", title="Drift matrix", icon=":material/grid_on:", url_path="matrix"),
        st.Page(PAGES / "machines.py", title="Machines", icon=":material/dns:", url_path="machines"),
    ]
st.navigation(pages).run()
