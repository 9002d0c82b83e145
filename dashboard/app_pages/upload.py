"""Upload: drop run bundles, or paste a ``collect_env`` report; each is stored on its own, with its own result line.

Bundles go through ``db.push.push_files``, as ``driftboard push`` does. Only in
the menu for roles that may upload; the page checks the role again itself.
"""

import pandas as pd
import streamlit as st

from driftboard.core.bundle import DEFAULT_LIMITS
from driftboard.dashboard import state, uploads
from driftboard.dashboard.format import markdown_text
from driftboard.db.push import push_files

RESULTS = "upload_results"  # file id -> PushOutcome, so a rerun never pushes a file twice
PASTED = "paste_result"  # the last pasted report's ImportOutcome
STATUSES = ("stored", "already present", "refused", "not attempted")

st.title("Upload runs", anchor=False)
state.require("upload")
store = state.store()
uploader = f"{uploads.UPLOADER} ({state.who()})" if state.who() else uploads.UPLOADER
st.markdown("Drop one or many `.driftboard` bundle files. Each file is checked in full and stored in one "
            "piece, or refused with the reason; a bad file never stops the others.")

files = st.file_uploader("Run bundles", accept_multiple_files=True, key="upload_files",
                         max_upload_size=DEFAULT_LIMITS.upload_mb, help="Files written by `driftboard capture`.")
done = st.session_state.setdefault(RESULTS, {})
todo = [file for file in files or [] if file.file_id not in done]
if todo:
    pushed = push_files(store, [(file.name, file.getvalue()) for file in todo], uploader=uploader, channel="page",
                        address=state.client_address())
    done.update(zip((file.file_id for file in todo), pushed))

outcomes = [done[f.file_id] for f in files or [] if f.file_id in done]


def _show(status: str, line: str) -> None:
    """One result line: stored, already present, not attempted or refused (icon and words, never colour alone)."""
    if status == "stored":
        st.success(line, icon=":material/check_circle:")
    elif status == "already present":
        st.info(line, icon=":material/content_copy:")
    elif status == "not attempted":
        st.warning(line, icon=":material/schedule:")
    else:
        st.error(line, icon=":material/block:")


def _forget(file_ids: list[str]) -> None:
    """Drop these files' results: the rerun this click starts pushes them again."""
    for file_id in file_ids:
        st.session_state[RESULTS].pop(file_id, None)


if outcomes:
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    st.caption(" · ".join(f"{n} {status}" for status, n in counts.items() if n))
    for outcome in outcomes:
        _show(outcome.status, uploads.outcome_markdown(outcome))
    retry = [f.file_id for f in files or [] if f.file_id in done and done[f.file_id].retry]
    if retry:  # the database failed, not the files: nothing of them was written
        st.button(f"Try the {len(retry)} file{'s' if len(retry) > 1 else ''} not stored again", key="upload_retry",
                  icon=":material/refresh:", on_click=_forget, args=(retry,))
    st.dataframe(pd.DataFrame([{"file": o.name, "result": o.status, "run id": o.run_id or "",
                                "detail": uploads.outcome_text(o)} for o in outcomes]),
                 hide_index=True, key="upload_table")
    stored = list(dict.fromkeys(o.run_id for o in outcomes if o.run_id))
    if stored:  # two or more: the first is the baseline; one: against the golden
        params = {"baseline": stored[0], "candidate": stored[1:9]} if len(stored) > 1 else {"candidate": stored}
        st.page_link("app_pages/compare.py", label="Compare the uploaded runs", icon=":material/compare_arrows:",
                     query_params=params)


def _import_pasted() -> None:
    if not state.allowed("upload"):  # callbacks run before the page's own check
        st.session_state[PASTED] = uploads.ImportOutcome("refused", state.refusal("upload"))
        return
    st.session_state[PASTED] = uploads.import_report(
        store, st.session_state.get("paste_text") or "", label=st.session_state.get("paste_label") or "",
        note=st.session_state.get("paste_note") or "", uploader=uploader, address=state.client_address())


st.subheader("Or paste a collect_env report", anchor=False)
st.markdown("The output of `python -m torch.utils.collect_env` from a bug report becomes an environment-only "
            "run: no outputs, compared with your runs by its environment alone. Text around it (the rest of "
            "the issue, code fences, `<details>`) is fine.")
st.text_area("collect_env report", key="paste_text", height=220, max_chars=uploads.MAX_REPORT_CHARS,
             placeholder="PyTorch version: 2.5.1+cu124\nIs debug build: False\n…")
c = st.columns(2)
c[0].text_input("Label (optional)", key="paste_label", placeholder="e.g. reporter's laptop")
c[1].text_input("Source note (optional)", key="paste_note", placeholder="e.g. the issue's URL")
st.button("Import the report", key="paste_import", icon=":material/content_paste_go:", on_click=_import_pasted)
pasted = st.session_state.get(PASTED)
if pasted is not None:
    _show(pasted.status, markdown_text(pasted.message, 600))
    if pasted.missing:
        st.warning("Missing from this report (imported without them): "
                   + ", ".join(markdown_text(m, 80) for m in pasted.missing), icon=":material/help:")
    if pasted.run_id:
        st.page_link("app_pages/compare.py", label="Compare it with the golden", icon=":material/compare_arrows:",
                     query_params={"candidate": pasted.run_id})

st.subheader("From a team member's machine", anchor=False)
commands = uploads.team_commands(store.url, uploads.server_address(st.context.url,
                                                                  str(st.get_option("server.baseUrlPath") or "")))
st.markdown("In the Python environment whose numbers matter, capture the machine (once per settings variant):")
st.code(commands.capture, language="bash")
if commands.push_server:
    st.markdown("Then upload the files above, or push them to this server over HTTP with your token (from a "
                "file, or `$DRIFTBOARD_TOKEN`; never on the command line):")
    st.code(commands.push_server, language="bash")
    st.markdown("A machine that can reach the database itself can also push there directly:")
else:
    st.markdown("Then upload the files above, or push them straight to this dashboard's database if that machine "
                "can reach it:")
st.code(commands.push_db, language="bash")
if "***" in commands.push_db:
    st.caption("The password is hidden: use the database's real one, or set DRIFTBOARD_DATABASE_URL.")
elif store.url.startswith("sqlite"):
    st.caption("This database is a SQLite file on the dashboard's machine: push from there, over HTTP, or upload "
               "here.")
