"""One comparison laid out on the Compare page: verdicts, causes, environment, and one case in charts.

The case charts are drawn from ``element_data.ElementCharts`` (a bounded
summary of the two outputs, computed from arrays inflated a chunk at a time)
cached by array digest for the whole server, so every viewer of a comparison
after the first decodes nothing; the first one pays with the page's
``DecodeBudget`` and waits its turn at the process-wide decode gate. A case
of the team's own models also gets its module calls (``module_view``), drawn
from the comparison's records without decoding anything.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from driftboard.core.compare import RunComparison, RunInfo
from driftboard.core.errors import DriftboardError
from driftboard.core.explain.result import command_line
from driftboard.core.run import CaseResult, Run
from driftboard.dashboard import charts, details, module_view, tables, ui
from driftboard.dashboard.decode_budget import DecodeBudget
from driftboard.dashboard.element_data import ElementCharts, ElementRequest
from driftboard.dashboard.format import (
    MISSING,
    case_key_text,
    fmt_time,
    markdown_text,
    plural,
    safe_text,
    verdict_label,
)
from driftboard.db.array_stream import StreamedArrays
from driftboard.db.store import Store

ULP_HELP = ("ULP (unit in the last place): how many representable numbers of the dtype lie between two values; "
            "0 means the same bits, 1 the nearest neighbour. Verdicts use the policy's rtol+atol; ULPs say how "
            "far apart the bits are.")


def show_comparison(store: Store, result: RunComparison, index: int, budget: DecodeBudget | None = None) -> None:
    """The comparison, its ``index``-th on the page; ``budget``: the page's decode budget for charts, shared
    by its tabs (a fresh one when None)."""
    b, c = result.baseline, result.candidate
    ui.heading(f"{b.name} → {c.name}")
    st.dataframe(_runs_frame(b, c), hide_index=True, key=f"compare_runs_{index}")
    pages = st.columns(2)
    with pages[0]:
        ui.run_page_link(b.run_id, "Baseline's run page")
    with pages[1]:
        ui.run_page_link(c.run_id, "Candidate's run page")
    empty = [(side, info) for side, info in (("baseline", b), ("candidate", c)) if not store.run(info.run_id).case_count]
    if empty:
        sides = " and the ".join(f"{side} ({info.run_id})" for side, info in empty)
        st.info(markdown_text(f"The {sides} has no outputs: an environment-only run (imported from a collect_env "
                              "report, or captured without cases). Only the environments are compared.", 600),
                icon=":material/info:")
        _environment(result, index)
        return
    _headline(result)
    for note in result.notes:
        st.warning(markdown_text(note, 600))
    if result.causes:
        st.markdown("**Likely causes**")
        st.dataframe(tables.causes_frame(result.causes), hide_index=True, key=f"compare_causes_{index}",
                     column_config=details.widths({"likely cause": "medium", "evidence": "large"}))
        details.in_full("Likely causes with their evidence, in full", tables.cause_texts(result.causes))
    _explanation(store, result, index)
    st.markdown("**Cases**", help=f"{ULP_HELP}\n\n{tables.TIERS_HELP}")
    st.dataframe(tables.styled(tables.verdict_frame(result)), hide_index=True, key=f"compare_verdicts_{index}",
                 column_config=details.widths({"what was found": "large"}))
    details.in_full("What was found in each case that is not identical, in full", tables.found_texts(result))
    _truth(result, index)
    _environment(result, index)
    _case_detail(store, result, index, budget or DecodeBudget())


def _explanation(store: Store, result: RunComparison, index: int) -> None:
    """What ``driftboard explain`` found for this pair, if it ran: the likely causes it confirms or refutes."""
    if not any(c.verdict.changed for c in result.cases):
        return
    st.markdown("**Explained by re-running**", help=EXPLAIN_HELP)
    try:
        found = store.explanation(result.baseline.run_id, result.candidate.run_id)
    except DriftboardError as exc:
        st.warning(markdown_text(str(exc), 400))
        return
    if found is None:
        st.caption("No explanation is stored for this pair. On the machine that captured one of the runs:")
        st.code(command_line(result.baseline.run_id, result.candidate.run_id), language="bash")
        return
    st.markdown(markdown_text(found.summary, 600))
    st.caption(markdown_text(f"re-run on the {found.this_side}'s machine, {fmt_time(found.created_at)}; "
                             f"{sum(t.status == 'done' for t in found.trials)} of {len(found.trials)} settings ran"
                             + ("" if found.complete else " (stopped by the budget)"), 300))
    if found.own:
        st.caption(markdown_text("own-model cases re-run: " + ", ".join("/".join(k) for k, _ in found.own), 600))
    if found.skipped:
        st.caption(markdown_text("not re-run: " + "; ".join(found.skipped), 600))
    if found.causes:
        st.dataframe(pd.DataFrame([{"likely cause": safe_text(c.title, 160), "re-runs": c.status,
                                    "because": safe_text(c.reason, 400)} for c in found.causes]),
                     hide_index=True, key=f"compare_explained_{index}",
                     column_config=details.widths({"likely cause": "medium", "because": "large"}))


EXPLAIN_HELP = ("`driftboard explain BASELINE CANDIDATE` re-runs the differing cases on the machine that captured one "
                "of the runs, once per numerics knob toggled (threads, oneDNN, TF32, cuDNN, deterministic algorithms, "
                "float32 matmul precision, each lower ATEN_CPU_CAPABILITY), each in a fresh process, and says which "
                "setting reproduces the other run bit for bit or within tolerance.")


def _truth(result: RunComparison, index: int) -> None:
    """Each machine's error against the float64 truth per case: which machine is closer to the true result."""
    if not result.cases:
        return
    st.markdown("**Against the float64 truth**", help=TRUTH_HELP)
    st.caption(markdown_text(result.truth.words, 400))
    frame = tables.truth_frame(result)
    if len(frame):
        st.dataframe(frame, hide_index=True, key=f"compare_truth_{index}",
                     column_config=details.widths(tables.TRUTH_WIDTHS))


TRUTH_HELP = ("Each float32, float16 and bfloat16 case is also run on the CPU in float64 with the same weights and "
              "inputs, exactly upcast: the error of each machine's output against that result (relative L2, and the "
              "largest ULP distance to it rounded to the case's dtype). The ratio candidate/baseline says which "
              "machine is closer to the true result: up to ×1 as close, up to ×2 slightly further, above further.")


def _runs_frame(b: RunInfo, c: RunInfo) -> pd.DataFrame:
    rows = [("run id", b.run_id, c.run_id), ("label", b.label, c.label), ("host", b.hostname, c.hostname),
            ("captured", fmt_time(b.created_at), fmt_time(c.created_at)), ("settings variant", b.variant, c.variant),
            ("suite", f"{b.suite_id} v{b.suite_version}", f"{c.suite_id} v{c.suite_version}")]
    return pd.DataFrame([{"": name, "baseline": safe_text(x) or MISSING, "candidate": safe_text(y) or MISSING}
                         for name, x, y in rows])


def _headline(result: RunComparison) -> None:
    cols = st.columns([1, 3])
    with cols[0]:
        ui.verdict_badge(result.worst, "worst: ")
    counts = [f"{n} {verdict_label(v)}" for v, n in reversed(result.counts().items()) if n]
    cols[1].caption(f"{plural(len(result.cases), 'case')} under policy {markdown_text(str(result.policy), 80)}: "
                    + (" · ".join(counts) or "none"))


def _environment(result: RunComparison, index: int) -> None:
    env = result.env
    st.markdown("**Environment**")
    if not env.changes:
        st.caption("The two fingerprints are identical.")
        return
    if env.numerics:
        st.caption(f"{plural(len(env.numerics), 'change')} that can change numbers, most likely cause first.")
        st.dataframe(tables.env_frame(env.numerics), hide_index=True, key=f"compare_env_{index}")
    else:
        st.caption("No field that can change numbers differs.")
    if env.informational:
        with st.expander(f"{plural(len(env.informational), 'informational change')}: hostname, paths, memory…"):
            st.dataframe(tables.env_frame(env.informational), hide_index=True, key=f"compare_env_info_{index}")


def _case_detail(store: Store, result: RunComparison, index: int, budget: DecodeBudget) -> None:
    if not result.cases:
        st.info("Neither run has cases to compare.")
        return
    cases = sorted(result.cases, key=lambda c: (-c.verdict.severity, c.key))
    keys = [case_key_text(c.key) for c in cases]
    key = f"compare_case_{index}"
    wanted = st.session_state.pop("compare_case_wanted", None) if index == 0 else None
    if wanted in keys:
        st.session_state[key] = wanted
    elif st.session_state.get(key) not in keys:
        st.session_state[key] = next((k for k, c in zip(keys, cases) if c.verdict.changed), keys[0])
    verdicts = {k: verdict_label(c.verdict) for k, c in zip(keys, cases)}
    st.markdown("**One case in detail**")
    chosen = st.selectbox("Case", keys, key=key, format_func=lambda k: f"{verdicts[k]} · {k}")
    case = cases[keys.index(chosen)]
    base_run, _ = store.load_run(result.baseline.run_id)
    cand_run, _ = store.load_run(result.candidate.run_id)
    arrays = StreamedArrays(store.engine)  # inflated a chunk at a time: the outputs are never whole here
    figures = charts.case_figures(case, arrays, arrays, _case(base_run, case.key), _case(cand_run, case.key),
                                  budget=budget, summarise=lambda request: _element_charts(store.url, request))
    if figures.figures:
        st.caption(markdown_text(figures.explanation, 600))
    else:
        st.info(markdown_text(figures.explanation, 600), icon=":material/info:")
    if case.training is not None:  # a training case: the verdict is on the final parameters, the steps say how
        st.markdown("**Training, step by step:** " + markdown_text(case.training.text, 600))
    if case.modules:  # an own model: its module calls, their chart full width
        module_view.show_modules(case, next((f for t, f in figures if t == charts.MODULE_CHART), None), index)
    columns = st.columns(2)
    for j, (_, fig) in enumerate((t, f) for t, f in figures if t != charts.MODULE_CHART):
        with columns[j % 2]:
            st.plotly_chart(fig, key=f"compare_chart_{index}_{j}", config={"displaylogo": False})


def _case(run: Run, key: tuple[str, str, str]) -> CaseResult | None:
    return next((c for c in run.cases if c.key == key), None)


def _element_charts(url: str, request: ElementRequest) -> ElementCharts:
    a, b = request.baseline, request.candidate
    return _cached_element_charts(url, a.sha256, b.sha256, a.dtype, a.shape, request.time_axis, request.max_points,
                                  request)


@st.cache_data(show_spinner="Preparing the charts…", max_entries=16)
def _cached_element_charts(url: str, baseline_sha: str, candidate_sha: str, dtype: str, shape: tuple[int, ...],
                           time_axis: int | None, max_points: int,
                           _request: ElementRequest) -> ElementCharts:
    """What a case's element charts draw, by content: at most ~1 MB each whatever the arrays' size.

    Streamlit computes one key at a time, so viewers opening the same case together wait for the first
    one's result instead of decoding the arrays again. A budget refusal raises and is not cached.
    """
    return _request.compute()
