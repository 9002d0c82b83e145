"""driftboard's dashboard: the ``st.navigation`` router and nothing else (``driftboard serve`` runs it).

The page list depends on the session's role (``dashboard.state``): a session
that may not view sees only the locked page with its unlock/login form; one
that may view lands on the team status board (``status.py``); one that may
not upload has no Upload page at all (its address sends the visitor to Runs
with the reason). A run's page (``run?run=ID``) is not in the menu:
run ids link to it.
"""

from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from driftboard.dashboard import state, ui, upload_permits

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="driftboard", page_icon=":material/compare_arrows:", layout="wide")
upload_permits.grant(get_script_run_ctx().session_id, state.allowed("upload"))  # asked by guards.UploadGuard
if not state.allowed("view"):
    pages = [st.Page(PAGES / "locked.py", title="Locked", icon=":material/lock:", url_path="locked", default=True)]
else:
    with st.sidebar:
        ui.access_panel()
    if state.allowed("upload"):
        upload = st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload_file:", url_path="upload")
    else:  # the address still answers: it sends the visitor to Runs and says why
        upload = st.Page(PAGES / "upload_locked.py", title="Upload", url_path="upload", visibility="hidden")
    pages = [
        st.Page(PAGES / "status.py", title="Team status", icon=":material/groups:", url_path="status", default=True),
        st.Page(PAGES / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs"),
        upload,
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
        st.Page(PAGES / "matrix.py", title="Drift matrix", icon=":material/grid_on:", url_path="matrix"),
        st.Page(PAGES / "machines.py", title="Machines", icon=":material/dns:", url_path="machines"),
        st.Page(PAGES / "write_log.py", title="Write log", icon=":material/history:", url_path="log"),
        st.Page(PAGES / "run.py", title="Run", icon=":material/description:", url_path="run", visibility="hidden"),
    ]
st.navigation(pages).run()
