"""/upload for a session that may not upload: the Upload page is not served; Runs says why in one line."""

import streamlit as st

from driftboard.dashboard import state, ui

access = state.policy()
how = "log in with an account that has it" if access.mode == "oidc" else "unlock with a member's token that has it"
ui.flash(ui.RUNS_FLASH, "info", f"Upload is locked for this session: uploading runs needs the "
                                f"{access.needs['upload'].word} role, and this session is {state.role().word}. "
                                f"To upload, {how} (in the sidebar).")
st.switch_page("app_pages/runs.py")
