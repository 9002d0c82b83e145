"""Drift matrix: runs × cases against the golden (or any baseline); a click opens Compare for that pair."""

import streamlit as st

from driftboard.dashboard import charts, data, state, ui
from driftboard.dashboard.format import markdown_text
from driftboard.db.store import RunFilter

COUNTS = (50, 100, 200, 500)

st.title("Drift matrix", anchor=False)
store = state.store()

with state.guard():
    choices = data.run_choices(store, extra=[st.session_state.get("matrix_baseline") or ""], limit=100)
if not choices:
    st.info("No runs stored yet: upload bundles on the Upload page first.")
    ui.upload_link()
    st.stop()
if st.session_state.get("matrix_baseline") not in choices:
    golden = data.default_golden(store)
    st.session_state["matrix_baseline"] = golden.run_id if golden and golden.run_id in choices else next(iter(choices))

c = st.columns([3, 2, 2, 1])
baseline = c[0].selectbox("Baseline", list(choices), format_func=choices.get, key="matrix_baseline",
                          help="Goldens come first; any stored run can be the baseline.")
machine = c[1].text_input("Machine (hostname or key)", key="matrix_machine")
label = c[2].text_input("Label contains", key="matrix_label")
count = c[3].selectbox("Newest runs", COUNTS, index=COUNTS.index(200), key="matrix_count")

with state.guard():
    base = store.run(baseline)
    if not base.case_count:
        st.info("This baseline is an environment-only run: it has no outputs to compare. Choose another baseline.")
        st.stop()
    filters = RunFilter(machine=machine.strip() or None, label=label.strip() or None, imported=False,
                        suite_version=base.suite_version)
    runs = data.by_machine(data.comparable_runs(store, base, filters, count))
    if not runs:
        st.info("No other runs of this suite version and device class match: nothing to compare with the baseline.")
        st.stop()
    key = tuple((r.run_id, r.bundle_digest, data.matrix_label(r, machine=False)) for r in runs)
    matrix = state.matrix(store.url, base.run_id, base.bundle_digest, key, "default")

st.caption(f"{len(matrix.run_ids)} newest runs of {markdown_text(base.suite_id, 80)} v{base.suite_version} on "
           f"{base.device_class} against {markdown_text(data.run_name(base), 160)}, grouped by machine (newest "
           "first within each). Cells are shaded by their max ULP distance on a log scale (green: identical) and "
           "carry their verdict's icon; cells without figures (missing, errors) keep their verdict's colour. Hover "
           "for the figures; click a cell, or box-select several, to open the comparison."
           + (f" The last {matrix.own_columns} columns, after the rule and marked “own ·”, are cases of your own "
              "models (your cases file), matched by case, device and dtype whatever the suite."
              if matrix.own_columns else ""))
machine_of = {r.run_id: data.machine_name(r) for r in runs}
fig = charts.drift_matrix(matrix.run_labels, matrix.case_labels, matrix.verdicts, matrix.hovers,
                          run_ids=matrix.run_ids, case_keys=matrix.case_keys,
                          magnitude_grid=matrix.magnitudes or None,
                          row_groups=[machine_of.get(r, "") for r in matrix.run_ids],
                          column_groups=matrix.case_groups if matrix.own_columns else None,
                          case_notes=matrix.case_notes)
# Streamlit selects on click only when the drag mode is not box/lasso select (it then sets clickmode to
# "event+select"); so clicks select a cell, dragging zooms, and the modebar's box tool still selects several.
fig.update_layout(dragmode="zoom")
event = st.plotly_chart(fig, key="drift_matrix", on_select="rerun", selection_mode=("points", "box"),
                        config={"displaylogo": False})
points = ((event or {}).get("selection") or {}).get("points") or []  # PlotlyState is a dict
pairs = charts.selected_cells(fig, points)
if pairs:
    candidates = list(dict.fromkeys(run for run, _ in pairs))[:8]
    st.switch_page("app_pages/compare.py", query_params={"baseline": base.run_id, "candidate": candidates,
                                                      "case": pairs[0][1]})
