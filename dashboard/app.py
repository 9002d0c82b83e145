"""driftboard's dashboard: the ``st.navigation`` router and nothing else (``driftboard serve`` runs it)."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="driftboard", page_icon=":material/compare_arrows:", layout="wide")
st.navigation([
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/table_rows:", url_path="runs", default=True),
    st.Page(PAGES / "upload.py", title="Upload", icon=":material/upload_file:", url_path="upload"),
    st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(PAGES / "matrix.py", title="Drift matrix", icon=":material/grid_on:", url_path="matrix"),
    st.Page(PAGES / "machines.py", title="Machines", icon=":material/dns:", url_path="machines"),
]).run()
