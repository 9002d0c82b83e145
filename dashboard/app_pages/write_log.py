"""Write log: every push, delete, golden set and golden clear, newest first (``Store.write_log``).

In the menu for every role that may view runs: who changed the data and the
golden is the team's business. The client addresses are an admin's: other
roles see the entries without them. The page checks the role itself as well.
"""

import pandas as pd
import streamlit as st

from driftboard.dashboard import state
from driftboard.dashboard.format import fmt_time, plural, safe_text
from driftboard.db.store.write_log import ACTIONS

CHANNELS = {"cli": "command line", "page": "dashboard", "api": "HTTP API"}

st.title("Write log", anchor=False)
state.require("view")
store = state.store()
st.caption("Every write to the database: runs pushed (command line, Upload page or HTTP API), runs deleted, "
           "goldens set and cleared. Each entry is written in the same transaction as the write itself.")
c = st.columns([2, 2, 1])
action = c[0].selectbox("Action", ["every action", *ACTIONS], key="log_action")
actor = c[1].text_input("Actor (exactly)", key="log_actor", placeholder="every actor").strip()
limit = c[2].number_input("Newest entries", min_value=10, max_value=10_000, value=200, step=50, key="log_limit")
with state.guard():
    entries = store.write_log(limit=int(limit), action=None if action == "every action" else action,
                              actor=actor or None)
if not entries:
    st.info("No writes logged" + (" matching these filters." if action != "every action" or actor else " yet."),
            icon=":material/history:")
    st.stop()
admin = state.is_admin()
rows = [{"when": fmt_time(e.at), "action": e.action, "actor": safe_text(e.actor, 200) or "-",
         "through": CHANNELS.get(e.channel, e.channel), **({"address": safe_text(e.address or "-", 80)} if admin else {}),
         "run": safe_text(e.run_id or "-", 80), "detail": safe_text(e.detail, 600)} for e in entries]
st.dataframe(pd.DataFrame(rows), hide_index=True, key="write_log_table")
st.caption(f"{plural(len(entries), 'entry', 'entries')}, newest first."
           + ("" if admin else " Client addresses are shown to admins only."))
