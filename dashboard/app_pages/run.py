"""One run: what it is, its cases against the golden, its place in its machine's history, its full fingerprint.

Opened with ``?run=RUN_ID`` (or an unambiguous prefix of it) from the run ids the Runs, Machines and Compare
pages show; it is not in the menu.
"""

import streamlit as st

from driftboard.core.seeding import summary as seeding_summary
from driftboard.dashboard import data, state, tables, ui
from driftboard.dashboard.fingerprint_groups import fingerprint_groups
from driftboard.dashboard.format import fmt_time, markdown_text, plural, verdict_label

AROUND = 5  # runs of the machine's history shown before and after this one

st.title("Run", anchor=False)
store = state.store()
asked = (st.query_params.get("run") or "").strip()
if not asked:
    st.info("Every run id in the Runs table links to its page; or enter one here.")
    asked = st.text_input("Run id", key="run_find", placeholder="its id or first characters").strip()
    if not asked:
        st.stop()
with state.guard():  # an unknown or ambiguous id is one line
    run = store.run(asked)
    full, _ = store.load_run(run.run_id)
    golden = store.golden_for(run.run_id)
    history = store.machine_history(run.machine_key)
    golden_ids = {g.run_id for g in store.goldens()}
st.query_params["run"] = run.run_id  # a prefix becomes the whole id: the address names one run for good

is_golden = golden is not None and golden.run_id == run.run_id
place = next(i for i, r in enumerate(history) if r.run_id == run.run_id)
previous = history[place - 1] if place else None
following = history[place + 1] if place + 1 < len(history) else None
comparison = None
if golden is not None and not is_golden and run.case_count:
    comparison = state.compare(golden.run_id, run.run_id)

ui.heading(f"{run.run_id} · {data.machine_name(run)}" + (f" · {run.label}" if run.label else ""), 2)
st.caption(f"Captured {fmt_time(run.captured_at)} on {markdown_text(data.machine_name(run), 80)} · "
           f"suite {markdown_text(run.suite_id, 80)} v{run.suite_version} on {markdown_text(run.device_class, 40)} · "
           f"settings variant {markdown_text(run.variant, 60)} · "
           f"{plural(run.case_count, 'case') if run.case_count else 'environment only'} · uploaded "
           f"{fmt_time(run.uploaded_at)}" + (f" by {markdown_text(run.uploader, 80)}" if run.uploader else ""))
if run.tags:
    st.caption("Tags: " + ", ".join(markdown_text(t, 60) for t in run.tags))
if run.note:
    st.text(f"Note: {run.note}")
if run.case_count:  # what the run's training was seeded with, and what the seed posts' recipe lacks (core/seeding.py)
    st.caption("Seeding recipe: " + markdown_text(seeding_summary(full.settings), 600))

if is_golden:
    st.markdown(f"**★ This run is the golden {markdown_text(golden.key.name, 60)}** for "
                f"{markdown_text(golden.key.suite_id)} v{golden.key.suite_version} on "
                f"{markdown_text(golden.key.device_class, 40)}: the other runs are judged against it.")
elif comparison is not None:
    ui.verdict_badge(comparison.worst, "against the golden: ")
    counts = [f"{n} {verdict_label(v)}" for v, n in reversed(comparison.counts().items()) if n]
    st.caption(f"{plural(len(comparison.cases), 'case')} compared with the golden {golden.run_id} under policy "
               f"{markdown_text(str(comparison.policy), 80)}: " + " · ".join(counts))
elif run.case_count:
    st.caption("No golden applies to this run (its suite version and device class have none): mark one on the "
               "Runs page to judge it.")

links = []  # (page, label, icon, query parameters)
if golden is not None and not is_golden:
    links.append(("compare", "Compare with the golden", ":material/compare_arrows:",
                  {"baseline": golden.run_id, "candidate": run.run_id}))
if previous is not None:
    links.append(("compare", "Compare with the previous run", ":material/history:",
                  {"baseline": previous.run_id, "candidate": run.run_id}))
links.append(("machines", "This machine's history", ":material/dns:", {"machine": run.machine_key}))
for column, (page, label, icon, params) in zip(st.columns(3), links):
    with column:
        st.page_link(f"app_pages/{page}.py", label=label, icon=icon, query_params=params)

# ---------------------------------------------------------------- cases

ui.heading("Cases")
if not run.case_count:
    st.info("This run has no cases: it holds an environment only (imported from a collect_env report, or captured "
            "without cases). Its fingerprint is below, and Compare shows how it differs from any other run's.",
            icon=":material/info:")
else:
    if comparison is not None:
        st.caption(f"Each case against the golden {golden.run_id}, most severe first; a case of the golden that "
                   "this run lacks has a row of its own.")
    st.dataframe(tables.styled(tables.run_cases_frame(full.cases, comparison, is_golden)), hide_index=True,
                 key="run_cases")

# ---------------------------------------------------------------- the machine's history

ui.heading("In its machine's history")
machine = markdown_text(data.machine_name(run), 80)
st.caption(f"Run {place + 1} of the {len(history):,} runs of {machine}, oldest first; up to {AROUND} before and after "
           "it." if len(history) > 1 else f"The only run of {machine} so far.")
st.dataframe(tables.styled(tables.with_run_links(tables.history_frame(history, run.run_id, golden_ids, AROUND))),
             hide_index=True, key="run_history", column_config=ui.run_links(tables.RUN_ID))
steps = st.columns(2)
with steps[0]:
    if previous is not None:
        ui.run_page_link(previous.run_id, label=f"Previous run ({fmt_time(previous.captured_at)})",
                         icon=":material/arrow_back:")
with steps[1]:
    if following is not None:
        ui.run_page_link(following.run_id, label=f"Next run ({fmt_time(following.captured_at)})",
                         icon=":material/arrow_forward:")

# ---------------------------------------------------------------- the fingerprint

ui.heading("Fingerprint")
st.caption("Grouped as the README's \"The fingerprint\" describes it; \"can change numbers\" marks the fields the "
           f"environment diff treats as possible causes of drift. Digest {run.environment.digest[:16]}… (runs with "
           "the same numerics-relevant environment share it).")
groups = fingerprint_groups(full.fingerprint)
for tab, group in zip(st.tabs([g.title for g in groups]), groups):
    with tab:
        st.caption(f"{plural(len(group.frame), 'field')}, {group.numerics} of them can change numbers.")
        st.dataframe(group.frame, hide_index=True, key=f"run_fp_{group.title}")
        for what, text in group.raw:
            with st.expander(what):
                st.code(text, language=None)
