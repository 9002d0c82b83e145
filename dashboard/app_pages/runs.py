"""Runs: every stored run, newest first, with filters and paging; mark a golden, compare, delete."""

import streamlit as st

from driftboard.core.compare import Verdict
from driftboard.core.errors import DriftboardError
from driftboard.dashboard import state, tables, ui
from driftboard.dashboard.data import run_name
from driftboard.db.store import GoldenKey, RunFilter

FLASH = "runs_flash"
PER_PAGE = (25, 50, 100, 200)

st.title("Runs", anchor=False)
store = state.store()
ui.show_flash(FLASH)

with st.expander("Filters", expanded=False, icon=":material/filter_list:"):
    c = st.columns(4)
    machine = c[0].text_input("Machine (hostname or key)", key="f_machine")
    label = c[1].text_input("Label contains", key="f_label")
    tags = c[2].text_input("Tags (comma-separated, all of them)", key="f_tags")
    variant = c[3].text_input("Settings variant", key="f_variant", placeholder="default, threads-1, …")
    c = st.columns(5)
    torch = c[0].text_input("torch", key="f_torch", placeholder="2.5")
    cuda = c[1].text_input("CUDA", key="f_cuda", placeholder="12")
    driver = c[2].text_input("Driver", key="f_driver", placeholder="535")
    gpu = c[3].text_input("GPU contains", key="f_gpu", placeholder="A100")
    capability = c[4].text_input("CPU capability", key="f_cpu", placeholder="AVX512")
    c = st.columns(3)
    verdict = c[0].selectbox("Verdict against the golden", ["any", *(v.value for v in Verdict)], key="f_verdict",
                             help="Only runs already judged against the golden can match.")
    since = c[1].date_input("Captured on or after", value=None, key="f_since")
    until = c[2].date_input("Captured up to", value=None, key="f_until")

filters = RunFilter(
    machine=machine.strip() or None, label=label.strip() or None,
    tags=tuple(t.strip() for t in tags.split(",") if t.strip()), variant=variant.strip() or None,
    torch=torch.strip() or None, cuda=cuda.strip() or None, driver=driver.strip() or None, gpu=gpu.strip() or None,
    cpu_capability=capability.strip() or None, verdict=None if verdict == "any" else verdict, since=since, until=until,
)
per_page = st.session_state.get("runs_per_page", 50)
can_golden, can_delete = state.allowed("golden"), state.allowed("delete")  # controls for the rest are not drawn
with state.guard():
    goldens = store.goldens()
    golden_ids = {g.run_id for g in goldens}
    page = store.runs(filters, page=st.session_state.get("runs_page", 1), per_page=per_page)
    if page.total and page.page > page.pages:  # filters narrowed the list: show its last page
        page = store.runs(filters, page=page.pages, per_page=per_page)
    unjudged = [r.run_id for r in page.runs if r.verdict is None and r.case_count and r.run_id not in golden_ids]
    if goldens and unjudged and store.refresh_verdicts(run_ids=unjudged):  # judged once, then cached in the db
        page = store.runs(filters, page=page.page, per_page=per_page)
st.session_state["runs_page"] = page.page

if not page.total:
    st.info("No runs match." if filters != RunFilter() else
            "No runs stored yet: upload bundles on the Upload page, or `driftboard push` them.")
    ui.upload_link()
    st.stop()

st.caption(f"{page.total:,} runs · page {page.page} of {page.pages} · newest first · verdict: worst case "
           "verdict against the golden of the run's suite and device class")
runs_frame = tables.runs_frame(page.runs, golden_ids)
st.dataframe(tables.styled(runs_frame), hide_index=True, key="runs_table")
c = st.columns([1, 1, 2, 2])
c[0].number_input("Page", min_value=1, max_value=page.pages, step=1, key="runs_page")
c[1].selectbox("Runs per page", PER_PAGE, index=PER_PAGE.index(50), key="runs_per_page")
c[3].download_button("Download this page (CSV)", data=lambda: tables.csv_bytes(runs_frame),
                     file_name=f"driftboard-runs-page-{page.page}.csv", mime="text/csv", key="runs_csv",
                     on_click="ignore", icon=":material/download:")

with st.expander(f"Goldens ({len(goldens)})", icon=":material/star:"):
    if goldens:
        st.dataframe(tables.goldens_frame(goldens), hide_index=True, key="goldens_table")
    else:
        st.info("No golden yet: pick a run below and make it the golden to judge every other run against it."
                if can_golden else "No golden yet: once someone allowed to mark goldens picks one, every run is judged against it.")

# ---------------------------------------------------------------- one run: compare, golden, delete

ui.heading("A run", 3)
choices = {r.run_id: run_name(r) for r in page.runs}
if st.session_state.get("run_pick") not in choices:
    st.session_state.pop("run_pick", None)
run_id = st.selectbox("Run (from this page)", list(choices), format_func=choices.get, key="run_pick")
run = next(r for r in page.runs if r.run_id == run_id)
with state.guard():
    golden = store.golden_for(run.run_id)
if run.note:
    st.text(f"Note: {run.note}")


def _make_golden(run_id: str) -> None:
    if not state.allowed("golden"):  # the server's own check: a control hidden from a role is also refused to it
        ui.flash(FLASH, "error", state.refusal("golden"))
        return
    try:
        g = store.set_golden(run_id, set_by=_by(), reason=st.session_state.get("golden_reason", "").strip())
    except DriftboardError as exc:
        ui.flash(FLASH, "error", str(exc))
    else:
        st.session_state["golden_reason"] = ""
        ui.flash(FLASH, "success", f"Run {g.run_id} is now the golden {g.key.name!r} for {g.key.suite_id} "
                                   f"v{g.key.suite_version} on {g.key.device_class}.")


def _clear_golden(key: GoldenKey) -> None:
    if not state.allowed("golden"):
        ui.flash(FLASH, "error", state.refusal("golden"))
        return
    store.clear_golden(key)
    ui.flash(FLASH, "success", "Golden cleared: runs of that suite are no longer judged until a new one is set.")


def _delete(run_id: str) -> None:
    st.session_state["delete_confirm"] = False
    if not state.allowed("delete"):
        ui.flash(FLASH, "error", state.refusal("delete"))
        return
    try:
        result = store.delete_run(run_id)
    except DriftboardError as exc:
        ui.flash(FLASH, "error", str(exc))
    else:
        ui.flash(FLASH, "success", f"Deleted run {result.run_id} ({result.arrays_removed} arrays no other run used).")


def _by() -> str:
    who = state.who()
    return f"dashboard ({who})" if who else "dashboard"


columns = st.columns(1 + can_golden + can_delete, border=True)
with columns[0]:
    st.markdown("**Compare**")
    if golden is not None and golden.run_id != run.run_id:
        st.page_link("app_pages/compare.py", label="Compare with the golden", icon=":material/compare_arrows:",
                     query_params={"baseline": golden.run_id, "candidate": run.run_id})
    elif golden is not None:
        st.caption("This run is the golden.")
    else:
        st.caption("No golden applies to this run yet.")
    st.page_link("app_pages/compare.py", label="Open in Compare", icon=":material/open_in_new:",
                 query_params={"candidate": run.run_id})
if can_golden:
    with columns[1]:
        st.markdown("**Golden**")
        if golden is not None and golden.run_id == run.run_id:
            st.button("Clear this golden", key="clear_golden", on_click=_clear_golden, args=(golden.key,))
        else:
            st.text_input("Reason", key="golden_reason", placeholder="e.g. reference A100 node, driver 535")
            st.button("Make this run the golden", key="make_golden", on_click=_make_golden, args=(run.run_id,),
                      disabled=not run.case_count, help=None if run.case_count else "An environment-only run has "
                      "no outputs to compare against.")
if can_delete:
    with columns[-1]:
        st.markdown("**Delete**")
        sure = st.checkbox("I understand: the run and the arrays no other run uses are removed for good",
                           key="delete_confirm")
        st.button("Delete this run", key="delete_run", type="primary", disabled=not sure, on_click=_delete,
                  args=(run.run_id,))
if not (can_golden and can_delete) and state.policy().restricted:
    locked = [state.ACTION_WORDS[a] for a in ("golden", "delete") if not state.allowed(a)]
    st.caption(f"To {' or '.join(locked)}, {'log in' if state.policy().mode == 'oidc' else 'unlock'} with a role "
               "that may (in the sidebar).")
