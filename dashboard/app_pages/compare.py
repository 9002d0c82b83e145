"""Compare: a baseline (the golden by default) against one or more candidates.

Opened with ``?baseline=RUN&candidate=RUN[&candidate=RUN…][&case=ID/DEVICE/DTYPE]`` by the Runs, Upload
and Drift matrix pages; the chosen runs are written back to the address so a comparison can be shared.
"""

import json

import streamlit as st

from driftboard.dashboard import data, html_report, state, ui
from driftboard.dashboard.compare_view import show_comparison
from driftboard.dashboard.decode_budget import DecodeBudget
from driftboard.dashboard.format import markdown_text, tab_name

st.title("Compare runs", anchor=False)
store = state.store()

# Query parameters set the widgets once per distinct address (then the widgets lead).
params = st.query_params
asked = (params.get("baseline"), tuple(params.get_all("candidate")), params.get("case"))
if st.session_state.get("_compare_params") != asked:
    st.session_state["_compare_params"] = asked
    if asked[0]:
        st.session_state["compare_baseline"] = asked[0]
    if asked[1]:
        st.session_state["compare_candidates"] = list(asked[1])[:8]
    st.session_state["compare_case_wanted"] = asked[2]

search = st.text_input("Find runs by label, hostname or run id", key="compare_search",
                       placeholder="Leave empty for the newest runs")
wanted = [st.session_state.get("compare_baseline"), *st.session_state.get("compare_candidates", [])]
with state.guard():
    choices = data.run_choices(store, search, [w for w in wanted if w])
    if not choices:
        st.info("No runs stored yet: upload bundles on the Upload page first.")
        ui.upload_link()
        st.stop()
    missing = [w for w in wanted if w and w not in choices]
    if missing:
        st.warning("Not in the database: " + ", ".join(markdown_text(m, 80) for m in missing))
    asked_candidates = [c for c in st.session_state.get("compare_candidates", []) if c in choices]
    if st.session_state.get("compare_baseline") not in choices:
        golden = data.default_golden(store, asked_candidates[0] if asked_candidates else None)
        others = [r for r in choices if r not in asked_candidates] or list(choices)
        st.session_state["compare_baseline"] = golden.run_id if golden and golden.run_id in choices else others[0]
    base = st.session_state["compare_baseline"]
    candidates = [c for c in asked_candidates if c != base]
    # Only a first visit gets a candidate picked for it: a user who cleared the list meant it.
    if not candidates and not asked_candidates and "compare_candidates" not in st.session_state:
        newest = [r.run_id for r in store.runs(per_page=5).runs if r.run_id != base and r.run_id in choices]
        candidates = newest[:1] or [r for r in choices if r != base][:1]
    st.session_state["compare_candidates"] = candidates

left, right = st.columns([1, 2])
baseline = left.selectbox("Baseline", list(choices), format_func=choices.get, key="compare_baseline")
candidates = right.multiselect("Candidates", list(choices), format_func=choices.get, key="compare_candidates",
                               max_selections=8)
policy = st.text_input("Tolerance policy", value="default", key="compare_policy",
                       help="default (torch.testing's per-dtype rtol+atol), bitwise, ulp:N, or rtol=R,atol=A.")
st.query_params.from_dict({"baseline": baseline, "candidate": candidates})
st.session_state["_compare_params"] = (baseline, tuple(candidates), None)

if not candidates:
    st.info("Choose at least one candidate run to compare with the baseline.")
    st.stop()

with state.guard():
    results = [state.compare(baseline, c, policy.strip() or "default") for c in candidates]


def _report_html() -> str:
    sources = {run_id: store.load_run(run_id) for run_id in dict.fromkeys([baseline, *candidates])}
    explanations = {(r.baseline.run_id, r.candidate.run_id): store.explanation(r.baseline.run_id, r.candidate.run_id)
                    for r in results}
    return html_report.comparison_report_html(results, sources,
                                              explanations={k: v for k, v in explanations.items() if v is not None})


def _report_json() -> str:
    return json.dumps(html_report.comparison_report_json(results), indent=2, allow_nan=False, ensure_ascii=False)


ui.downloads("compare_report", "driftboard-comparison", _report_html, _report_json)
tabs = st.tabs([f"vs {markdown_text(tab_name(r.candidate), 60)}" for r in results]) if len(results) > 1 else [
    st.container()]
budget = DecodeBudget()  # arrays the charts of this render may decode, every tab together
for i, (tab, result) in enumerate(zip(tabs, results)):
    with tab, state.guard():
        show_comparison(store, result, i, budget)
