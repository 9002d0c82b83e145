"""Upload: drop run bundles; each is validated and stored on its own, with its own result line."""

import pandas as pd
import streamlit as st

from dashboard import state, uploads
from dashboard.format import markdown_text

RESULTS = "upload_results"  # file id -> UploadOutcome, so a rerun never ingests a file twice

st.title("Upload runs", anchor=False)
store = state.store()
st.markdown("Drop one or many `.driftboard` bundle files. Each file is checked in full and stored in one "
            "piece, or refused with the reason; a bad file never stops the others.")

files = st.file_uploader("Run bundles", accept_multiple_files=True, key="upload_files",
                         max_upload_size=uploads.MAX_UPLOAD_MB, help="Files written by `driftboard capture`.")
done = st.session_state.setdefault(RESULTS, {})
for file in files or []:
    if file.file_id not in done:
        done[file.file_id] = uploads.ingest_upload(store, file.name, file.getvalue())

outcomes = [done[f.file_id] for f in files or [] if f.file_id in done]
if outcomes:
    counts = {status: sum(o.status == status for o in outcomes) for status in ("stored", "already present", "refused")}
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items() if n))
    for outcome in outcomes:
        line = f"**{markdown_text(outcome.name, 120)}**: {markdown_text(outcome.message, 600)}"
        if outcome.status == "stored":
            st.success(line, icon=":material/check_circle:")
        elif outcome.status == "already present":
            st.info(line, icon=":material/content_copy:")
        else:
            st.error(line, icon=":material/block:")
    st.dataframe(pd.DataFrame([{"file": o.name, "result": o.status, "run id": o.run_id or "", "detail": o.message}
                               for o in outcomes]), hide_index=True, key="upload_table")
    stored = list(dict.fromkeys(o.run_id for o in outcomes if o.run_id))
    if stored:  # two or more: the first is the baseline; one: against the golden
        params = {"baseline": stored[0], "candidate": stored[1:9]} if len(stored) > 1 else {"candidate": stored}
        st.page_link("app_pages/compare.py", label="Compare the uploaded runs", icon=":material/compare_arrows:",
                     query_params=params)

st.subheader("From a team member's machine", anchor=False)
capture, push = uploads.team_commands(store.url)
st.markdown("In the Python environment whose numbers matter, capture the machine (once per settings variant):")
st.code(capture, language="bash")
st.markdown("Then upload the files above, or push them straight to this dashboard's database if that machine "
            "can reach it:")
st.code(push, language="bash")
if "***" in push:
    st.caption("The password is hidden: use the database's real one, or set DRIFTBOARD_DATABASE_URL.")
elif store.url.startswith("sqlite"):
    st.caption("This database is a SQLite file on the dashboard's machine: push from there, or upload here.")
