"""Runs: every stored run, newest first, with filters and paging; tick runs in the table to compare them,
open one, mark one as the golden or delete them.

Ticks are kept by run id (``ui.ticked_ids``), so runs uploaded or deleted meanwhile never move them onto other
runs. A deletion acts on the runs its confirmation named, captured in the session when the box was ticked,
never on whatever is ticked when the click arrives; afterwards nothing is ticked.
"""

import streamlit as st

from driftboard.core.compare import Verdict
from driftboard.core.errors import DriftboardError, NotFoundError
from driftboard.dashboard import state, tables, ui
from driftboard.dashboard.data import run_name
from driftboard.dashboard.format import markdown_text, plural
from driftboard.db.store import GoldenKey, RunFilter, RunSummary
from driftboard.db.store.goldens import no_golden_text

FLASH = ui.RUNS_FLASH
TABLE = "runs_table"
DELETE_IDS = "_runs_delete_ids"  # the runs the delete confirmation named, captured when it was ticked
PER_PAGE = (25, 50, 100, 200)
MAX_CANDIDATES = 8  # the Compare page's limit
NAMED = 10  # runs named in full in a sentence; the rest are counted
VERDICT_HELP = "The worst case verdict against the golden of the run's suite and device class."
OWN_HELP = "Of the run's cases, those of the team's own models (its cases file or --model), not the reference suite."

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
    c = st.columns(4)
    verdict = c[0].selectbox("Verdict against the golden", ["any", *(v.value for v in Verdict)], key="f_verdict",
                             help="Only runs already judged against the golden can match.")
    since = c[1].date_input("Captured on or after", value=None, key="f_since")
    until = c[2].date_input("Captured up to", value=None, key="f_until")
    own_case = c[3].text_input("Own case", key="f_own_case", placeholder="a case id of your models",
                               help="Only runs holding this case of the team's own models (exact case id).")

filters = RunFilter(
    machine=machine.strip() or None, label=label.strip() or None,
    tags=tuple(t.strip() for t in tags.split(",") if t.strip()), variant=variant.strip() or None,
    torch=torch.strip() or None, cuda=cuda.strip() or None, driver=driver.strip() or None, gpu=gpu.strip() or None,
    cpu_capability=capability.strip() or None, verdict=None if verdict == "any" else verdict, since=since, until=until,
    own_case=own_case.strip() or None,
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
    ui.ticked_ids(TABLE, [])  # no table: nothing stays ticked
    st.info("No runs match." if filters != RunFilter() else
            "No runs stored yet: upload bundles on the Upload page, or `driftboard push` them.")
    ui.upload_link()
    st.stop()

st.caption(f"{plural(page.total, 'run')} · page {page.page} of {page.pages} · newest first · verdict: the worst "
           "case verdict against the golden of the run's suite and device class · a run id opens its page")
runs_frame = tables.runs_frame(page.runs, golden_ids)
by_id = {r.run_id: r for r in page.runs}
ticked = [by_id[run_id] for run_id in ui.ticked_ids(TABLE, list(by_id))]
st.dataframe(tables.styled(tables.with_run_links(runs_frame)), hide_index=True, key=TABLE, on_select="rerun",
             selection_mode="multi-row", column_config={
                 tables.VERDICT: st.column_config.TextColumn(tables.VERDICT, pinned=True, help=VERDICT_HELP),
                 tables.OWN_CASES: st.column_config.NumberColumn(tables.OWN_CASES, help=OWN_HELP),
                 **ui.run_links(tables.RUN_ID)})
c = st.columns([1, 1, 2, 2])
c[0].number_input("Page", min_value=1, max_value=page.pages, step=1, key="runs_page")
c[1].selectbox("Runs per page", PER_PAGE, index=PER_PAGE.index(50), key="runs_per_page")
c[3].download_button("Download this page (CSV)", data=lambda: tables.csv_bytes(runs_frame),
                     file_name=f"driftboard-runs-page-{page.page}.csv", mime="text/csv", key="runs_csv",
                     on_click="ignore", icon=":material/download:")
with c[2]:
    wanted = st.text_input("Find a run by id", key="runs_find", placeholder="its id or first characters",
                           help="Any run in the database, whatever the filters and the page.").strip()
    if wanted:
        with state.guard():
            try:
                found = store.run(wanted)
            except NotFoundError as exc:  # unknown, or a prefix of several: said under the box
                st.caption(markdown_text(str(exc), 200))
            else:
                ui.run_page_link(found.run_id, label=f"Open run {markdown_text(found.run_id, 80)}")


# ---------------------------------------------------------------- ticked runs: compare, golden, delete


def names(runs: list[RunSummary]) -> str:
    """The runs named in one line of Markdown (user text escaped), the ones past ``NAMED`` counted."""
    text = "; ".join(markdown_text(run_name(r), 160) for r in runs[:NAMED])
    return text + (f"; and {plural(len(runs) - NAMED, 'more run')}" if len(runs) > NAMED else "")


def _make_golden(run_id: str) -> None:
    if not state.allowed("golden"):  # the server's own check: a control hidden from a role is also refused to it
        ui.flash(FLASH, "error", state.refusal("golden"))
        return
    try:
        g = store.set_golden(run_id, set_by=_by(), reason=st.session_state.get("golden_reason", "").strip(),
                             channel="page", address=state.client_address())
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
    store.clear_golden(key, actor=_by(), channel="page", address=state.client_address())
    ui.flash(FLASH, "success", "Golden cleared: runs of that suite are no longer judged until a new one is set.")


def _confirm_delete(run_ids: tuple[str, ...]) -> None:
    """The box was ticked (or unticked) next to the names of ``run_ids``: those are what a click deletes."""
    if st.session_state.get("delete_confirm"):
        st.session_state[DELETE_IDS] = run_ids
    else:
        st.session_state.pop(DELETE_IDS, None)


def _delete() -> None:
    run_ids = st.session_state.pop(DELETE_IDS, None)
    st.session_state["delete_confirm"] = False
    if not state.allowed("delete"):
        ui.flash(FLASH, "error", state.refusal("delete"))
        return
    if not run_ids:
        ui.flash(FLASH, "error", "Nothing was deleted: tick the runs, then confirm, then delete.")
        return
    deleted, refused = [], []
    for run_id in run_ids:
        try:
            deleted.append(store.delete_run(run_id, actor=_by(), channel="page", address=state.client_address()))
        except DriftboardError as exc:
            refused.append(str(exc))
    ui.clear_ticks(TABLE)
    arrays = sum(d.arrays_removed for d in deleted)
    done = (f"Deleted run {deleted[0].run_id}" if len(deleted) == 1 else
            f"Deleted {plural(len(deleted), 'run')}: {', '.join(d.run_id for d in deleted)}") + \
        f" ({plural(arrays, 'array')} no other run used)."
    if not refused:
        ui.flash(FLASH, "success", done)
    else:
        ui.flash(FLASH, "warning" if deleted else "error",
                 (done + " " if deleted else "") + "Not deleted: " + "; ".join(refused))


def _by() -> str:
    who = state.who()
    return f"dashboard ({who})" if who else "dashboard"


def compare_panel(chosen: list[RunSummary]) -> None:
    st.markdown("**Compare**")
    if len(chosen) == 1:
        run = chosen[0]
        ui.run_page_link(run.run_id)
        with state.guard():
            golden = store.golden_for(run.run_id)
        if golden is not None and golden.run_id != run.run_id:
            st.page_link("app_pages/compare.py", label="Compare with the golden", icon=":material/compare_arrows:",
                         query_params={"baseline": golden.run_id, "candidate": run.run_id})
        elif golden is not None:
            st.caption("This run is the golden.")
        elif not run.case_count:  # an environment only: say so, not "yet"
            why = no_golden_text(run.run_id, case_count=0, imported=run.imported)
            st.caption(markdown_text(why[:1].upper() + why[1:] + "."))
        else:
            st.caption("No golden applies to this run yet.")
        st.page_link("app_pages/compare.py", label="Open in Compare", icon=":material/open_in_new:",
                     query_params={"candidate": run.run_id})
        return
    ticked_golden = next((r for r in chosen if r.run_id in golden_ids), None)
    base = ticked_golden or min(chosen, key=lambda r: r.captured_at)
    others = [r for r in chosen if r.run_id != base.run_id]
    st.page_link("app_pages/compare.py", label=f"Compare these {len(chosen)} runs", icon=":material/compare_arrows:",
                 query_params={"baseline": base.run_id, "candidate": [r.run_id for r in others[:MAX_CANDIDATES]]})
    why = "the ticked golden" if ticked_golden else "the oldest ticked run, as no golden is ticked"
    st.caption(f"Baseline: {markdown_text(run_name(base), 160)} ({why}); the other ticked runs are the candidates."
               + (f" Compare shows {MAX_CANDIDATES} candidates at most: the {MAX_CANDIDATES} newest."
                  if len(others) > MAX_CANDIDATES else ""))


def golden_panel(chosen: list[RunSummary]) -> None:
    st.markdown("**Golden**")
    if len(chosen) != 1:
        st.caption("Tick exactly one run to make it the golden, or to clear it.")
        return
    run = chosen[0]
    with state.guard():
        golden = store.golden_for(run.run_id)
    if golden is not None and golden.run_id == run.run_id:
        st.button("Clear this golden", key="clear_golden", on_click=_clear_golden, args=(golden.key,))
        return
    st.text_input("Reason", key="golden_reason", placeholder="e.g. reference A100 node, driver 535")
    st.button("Make this run the golden", key="make_golden", on_click=_make_golden, args=(run.run_id,),
              disabled=not run.case_count, help=None if run.case_count else "An environment-only run has "
              "no outputs to compare against.")


def delete_panel(chosen: list[RunSummary]) -> None:
    st.markdown("**Delete**")
    run_ids = tuple(r.run_id for r in chosen)
    captured = st.session_state.get(DELETE_IDS)
    if (captured is not None and captured != run_ids) or (st.session_state.get("delete_confirm") and captured is None):
        st.session_state.pop(DELETE_IDS, None)  # the ticks changed since the confirmation: it named other runs
        st.session_state["delete_confirm"] = False
    st.caption(f"Deletes {plural(len(chosen), 'run')}: {', '.join(markdown_text(r) for r in run_ids)}.")
    sure = st.checkbox("Delete for good", key="delete_confirm", on_change=_confirm_delete, args=(run_ids,),
                       help="The runs named above, their results and the arrays no other run uses are removed "
                            "from the database. There is no undo.")
    st.button(f"Delete {plural(len(chosen), 'run')}", key="delete_run", type="primary", disabled=not sure,
              on_click=_delete)


ui.heading(f"{plural(len(ticked), 'run')} ticked" if ticked else "Tick runs to act on them", 3)
if not ticked:
    st.caption("Tick runs in the table (the box at the start of each row) to open one, compare them, mark one as "
               "the golden or delete them. With several ticked, Compare takes the ticked golden as the baseline, "
               "else the oldest ticked run.")
    if DELETE_IDS in st.session_state:  # nothing ticked any more: no confirmation stands
        st.session_state.pop(DELETE_IDS, None)
        st.session_state["delete_confirm"] = False
else:
    st.markdown(names(ticked))
    if len(ticked) == 1 and ticked[0].note:
        st.text(f"Note: {ticked[0].note}")
    columns = st.columns(1 + can_golden + can_delete, border=True)
    with columns[0]:
        compare_panel(ticked)
    if can_golden:
        with columns[1]:
            golden_panel(ticked)
    if can_delete:
        with columns[-1]:
            delete_panel(ticked)
if not (can_golden and can_delete) and state.policy().restricted:
    locked = [state.ACTION_WORDS[a] for a in ("golden", "delete") if not state.allowed(a)]
    st.caption(f"To {' or '.join(locked)}, {'log in' if state.policy().mode == 'oidc' else 'unlock'} with a role "
               "that may (in the sidebar).")

with st.expander(f"Goldens ({len(goldens)})", icon=":material/star:"):
    if goldens:
        st.dataframe(tables.with_run_links(tables.goldens_frame(goldens)), hide_index=True, key="goldens_table",
                     column_config=ui.run_links(tables.RUN_ID))
    else:
        st.info("No golden yet: tick a run above and make it the golden to judge every other run against it."
                if can_golden else "No golden yet: once someone allowed to mark goldens picks one, every run is "
                "judged against it.")
