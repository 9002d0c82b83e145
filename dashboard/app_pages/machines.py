"""Machines: one machine's history, environment changes as events, drift against the golden across each."""

import json

import streamlit as st

from driftboard.core.audit import audit_json
from driftboard.dashboard import charts, details, html_report, state, tables, ui
from driftboard.dashboard.format import fmt_time, markdown_text, plural, safe_text
from driftboard.db.audit import audit_machine

METRICS = {"drifted": "cases differing from the golden", "failing": "cases beyond tolerance",
           "ulp_max": "worst ULP distance"}

st.title("Machines", anchor=False)
store = state.store()
with state.guard():
    machines = store.machines()
if not machines:
    st.info("No machines yet: upload bundles on the Upload page first.")
    ui.upload_link()
    st.stop()

names = {m.machine_key: f"{safe_text(m.name, 60)} · {plural(m.run_count, 'run')} · last "
         f"{fmt_time(m.last_seen)}" for m in machines}
asked = st.query_params.get("machine")
if asked and st.session_state.get("_machine_param") != asked:
    st.session_state["_machine_param"] = asked
    match = next((m.machine_key for m in machines if asked in (m.machine_key, m.hostname)), None)
    if match:
        st.session_state["machine_pick"] = match
c = st.columns([3, 1, 3])
machine = c[0].selectbox("Machine", list(names), format_func=names.get, key="machine_pick")
limit = c[1].number_input("Newest runs", min_value=2, max_value=2000, value=100, step=10, key="machine_limit")
metric = c[2].segmented_control("Timeline shows", list(METRICS), format_func=METRICS.get, default="drifted",
                                key="machine_metric", required=True) or "drifted"
st.query_params["machine"] = machine
st.session_state["_machine_param"] = machine

with state.guard():
    audit = audit_machine(store, machine, limit=int(limit), compare=state.compare)

if audit.golden is None:
    st.info("No golden applies to this machine's runs: mark a run as the golden on the Runs page to see drift "
            "against it. Environment changes are listed below.", icon=":material/info:")
else:
    st.caption(f"Against the golden {audit.golden.run_id} ({markdown_text(audit.golden.label or audit.golden.hostname)}"
               f", {fmt_time(audit.golden.created_at)}).")
events = [e.event for e in audit.events]
if any(p.compared_with_golden for p in audit.points):
    st.plotly_chart(charts.machine_timeline(audit.points, events, y=metric,
                                            title=f"{audit.machine}: {METRICS[metric]}"),
                    key="machine_timeline", config={"displaylogo": False})
elif audit.points:
    st.caption("No run of this machine was compared with a golden (no golden, or environment-only runs): "
               "no drift to chart.")

ui.heading("Environment changes")
if audit.events:
    st.caption("Numerics-relevant changes between consecutive runs, with the drift against the golden just "
               "before and just after each: the hardware-upgrade audit.")
    st.dataframe(tables.with_run_links(tables.audit_events_frame(audit), ("run before", "run after")),
                 hide_index=True, key="machine_events",
                 column_config={**details.widths(tables.AUDIT_EVENT_WIDTHS), **ui.run_links("run before", "run after")})
    details.in_full("Each change with the drift before and after it, in full", tables.audit_event_texts(audit))
    pairs = {f"{e.event.before_run_id} → {e.event.after_run_id}": e for e in audit.events}
    chosen = st.selectbox("Compare the runs around a change", list(pairs), key="machine_event_pick")
    event = pairs[chosen].event
    st.page_link("app_pages/compare.py", label="Open this pair in Compare", icon=":material/compare_arrows:",
                 query_params={"baseline": event.before_run_id, "candidate": event.after_run_id})
else:
    st.caption("No field that can change numbers changed between consecutive runs of this machine.")

ui.heading("Runs")
st.dataframe(tables.styled(tables.with_run_links(tables.audit_points_frame(audit))), hide_index=True, key="machine_runs",
             column_config=ui.run_links(tables.RUN_ID))
ui.downloads("machine_report", f"driftboard-audit-{machine[:12]}", lambda: html_report.machine_report_html(audit),
             lambda: json.dumps(audit_json(audit), indent=2, allow_nan=False, ensure_ascii=False))
