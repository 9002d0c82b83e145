"""One case of the team's own models on the Compare page: where in its forward the numbers start to differ.

The first divergent module in words, the smallest tolerance that would have
passed, the chart of every module call (``charts.module_divergence``, full
width) and the layer table (``tables.module_frame``). Everything comes from
the comparison's module records: nothing is decoded here.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from driftboard.core.compare import CaseComparison, Verdict
from driftboard.dashboard import details, tables
from driftboard.dashboard.format import markdown_text, plural

MODULES_HELP = ("Each call of each submodule in the order the forward ran it, matched by qualified name and call "
                "number. Bitwise identical calls are found by digest; the others show how their outputs changed: "
                "the relative change of the L2 norm and how far min, max and mean moved (statistics), or relative "
                "L2 error, ULP, abs and rel element by element (captured with --layers full). The first call that "
                "differs is where the drift starts.")


def show_modules(case: CaseComparison, chart: go.Figure | None, index: int) -> None:
    """The module calls of ``case`` (an own case with module records); ``chart``: its module chart, if any."""
    st.markdown("**Module calls**", help=MODULES_HELP)
    n = len(case.modules)
    if case.verdict is Verdict.INPUTS_DIFFER:
        st.caption(f"{plural(n, 'module call')} recorded, not compared: the two sides ran other weights, inputs "
                   "or settings, so every call may differ for that reason alone.")
        return
    first = case.first_divergent_module
    differ = sum(not m.identical for m in case.modules)
    if first is None:
        st.caption(f"All {plural(n, 'module call')} are bitwise identical on both machines.")
    else:
        position = case.modules.index(first) + 1
        unaffected = " The model's outputs are unaffected." if case.verdict is Verdict.IDENTICAL else ""
        st.markdown(f"First divergent module: **{markdown_text(first.label, 200)}**, call {position:,} of {n:,} "
                    f"in execution order; {plural(differ, 'call')} differ.{unaffected}")
    if case.passing is not None and case.verdict.changed:
        st.markdown(f"Smallest tolerance that would have passed: {markdown_text(case.passing.text, 300)}.")
    if case.case_tolerance:
        st.caption(f"Judged under the case's own tolerance {markdown_text(case.case_tolerance, 100)}.")
    if chart is not None:
        st.plotly_chart(chart, key=f"compare_modules_chart_{index}", config={"displaylogo": False})
    st.dataframe(tables.module_frame(case.modules, first), hide_index=True, key=f"compare_modules_{index}",
                 column_config=details.widths({"module call": "large", "note": "medium"}))
