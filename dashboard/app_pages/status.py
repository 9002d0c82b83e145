"""Team status: one row per machine with its latest run against the golden, worst first: "do all our
machines agree?" in one look. ``db.status.team_status`` computes it; this page lays it out."""

import streamlit as st

from driftboard.dashboard import state, tables, ui
from driftboard.dashboard.format import markdown_text
from driftboard.db.status import team_status

st.title("Team status", anchor=False)
store = state.store()
with state.guard():
    status = team_status(store, compare=state.compare)
if not status.machines:
    st.info("No machines yet: run `driftboard capture --push` on each machine, or upload bundles on the "
            "Upload page.")
    ui.upload_link()
    st.stop()

summary = markdown_text(status.summary, 300)
if status.agree:
    st.success(summary, icon=":material/check_circle:")
else:
    st.markdown(f"**{summary}**")
st.caption("Each machine's latest run (of a settings sweep, its default variant) against the golden that applies "
           "to it, worst first, with the numerics-relevant environment changes since its previous capture. "
           "Environment-only runs (imported reports) are listed, not judged. A run id opens its page.")
st.dataframe(
    tables.styled(tables.with_run_links(tables.status_frame(status), ("latest run",)), ("status",)),
    hide_index=True, key="status_table",
    column_config={
        **ui.run_links("latest run"),
        "changed since the previous run": st.column_config.TextColumn(
            "changed since the previous run", width="large",
            help="Numerics-relevant environment fields that differ from the machine's previous capture"),
    },
)
st.page_link("app_pages/runs.py", label="Every run", icon=":material/table_rows:")
