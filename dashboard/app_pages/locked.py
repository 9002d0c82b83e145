"""Locked: the only page of a dashboard whose viewing needs a role this session lacks."""

import streamlit as st

from driftboard.dashboard import state, ui

st.title("driftboard is locked", anchor=False)
if state.policy().mode == "oidc":
    st.markdown("Viewing this dashboard needs an account with access: log in to see the runs.")
else:
    st.markdown("Viewing this dashboard needs a team member's token: enter yours to see the runs.")
ui.access_panel()
