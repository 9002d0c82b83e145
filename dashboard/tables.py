"""Tables for ``st.dataframe``: plain pandas frames, verdict cells coloured *and* worded.

No Streamlit here. Every user-supplied value (label, tags, hostname, note,
fingerprint values) goes in as plain text; ``st.dataframe`` draws cells as
text, never as HTML or Markdown.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence, Set
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from pandas.io.formats.style import Styler

from driftboard.core.audit import MachineAudit
from driftboard.core.compare import EnvChange, LikelyCause, RunComparison, Verdict
from driftboard.core.compare.envdiff import shown_pair
from driftboard.core.compare.own import ModuleChange
from driftboard.core.run import CaseResult
from driftboard.core.status import TeamStatus
from driftboard.core.text import spreadsheet_safe
from driftboard.dashboard.format import (
    MISSING,
    NO_RESULT,
    VERDICT_STYLES,
    fmt_abs,
    fmt_count,
    fmt_index,
    fmt_rel,
    fmt_shape,
    fmt_time,
    fmt_ulp,
    plural,
    safe_text,
    verdict_label,
)
from driftboard.db.store import Golden, RunSummary

VERDICT = "verdict"
RUN_ID = "run id"
_CELL_STYLES = {style.label: f"background-color: {style.colour}; color: {style.text_colour}"
                for style in (*VERDICT_STYLES.values(), NO_RESULT)}


def styled(frame: pd.DataFrame, columns: Sequence[str] = (VERDICT,)) -> Styler | pd.DataFrame:
    """The verdict columns filled with their verdict's colour, with a text colour that contrasts with it."""
    present = [c for c in columns if c in frame.columns]
    if frame.empty or not present:
        return frame
    return frame.style.map(lambda value: _CELL_STYLES.get(value, ""), subset=present)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as CSV for a spreadsheet: text cells that would run as formulas are shown as text.

    driftboard's own export: Streamlit's built-in table download is turned off
    (``serve`` passes ``client.disableDataExport``) because it writes cells as they are.
    """
    return frame.map(spreadsheet_safe).to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode("utf-8")


def _text(value: Any, limit: int = 200) -> str:
    return safe_text(value, limit) if value not in (None, "") else MISSING


# ---------------------------------------------------------------- runs


RUN_PAGE = "run"  # the run page's url_path (dashboard/app.py)
RUN_LINK_TEXT = r"run=([^&]+)"  # what a link cell shows of a run page's address: the run id


def run_url(run_id: str) -> str:
    """The run page's address, relative to whichever page links it, so it also works under a proxy's path."""
    return f"{RUN_PAGE}?{urlencode({'run': run_id})}"


def with_run_links(frame: pd.DataFrame, columns: Sequence[str] = (RUN_ID,)) -> pd.DataFrame:
    """A copy of ``frame`` whose run id columns hold run page addresses (shown as the ids by a link column)."""
    out = frame.copy()
    for column in columns:
        if column in out.columns:
            out[column] = [run_url(v) if isinstance(v, str) and v and v != MISSING else None for v in out[column]]
    return out


def run_verdict(run: RunSummary, golden_ids: Set[str] = frozenset()) -> str:
    """The word a list of runs shows for a run against its golden (``golden_ids``: a set, built once per table)."""
    if run.run_id in golden_ids:
        return "★ golden"
    if run.imported or not run.case_count:
        return "environment only"
    return verdict_label(run.verdict) if run.verdict else "not judged"


OWN_CASES = "own cases"  # of "cases", those of the team's own models


def runs_frame(runs: Sequence[RunSummary], golden_ids: Iterable[str] = ()) -> pd.DataFrame:
    """One row per run, newest first as given: the verdict against the golden first (what a reader looks for,
    visible without scrolling), the run id whole, then who and what environment."""
    goldens = set(golden_ids)
    rows = []
    for run in runs:
        env = run.environment
        rows.append({
            VERDICT: run_verdict(run, goldens),
            RUN_ID: run.run_id,
            "captured": fmt_time(run.captured_at),
            "machine": _text(run.hostname or run.machine_key, 80),
            "label": _text(run.label),
            "tags": _text(", ".join(run.tags)),
            "torch": _text(env.torch_version),
            "CUDA": _text(env.cuda),
            "driver": _text(env.driver),
            "GPU": _text(env.gpu_model),
            "CPU capability": _text(env.cpu_capability),
            "variant": _text(run.variant),
            "cases": run.case_count,
            OWN_CASES: run.own_case_count,
        })
    return pd.DataFrame(rows, columns=list(_RUN_COLUMNS))


_RUN_COLUMNS = (VERDICT, RUN_ID, "captured", "machine", "label", "tags", "torch", "CUDA", "driver", "GPU",
                "CPU capability", "variant", "cases", OWN_CASES)


def goldens_frame(goldens: Sequence[Golden]) -> pd.DataFrame:
    rows = [{
        "golden": _text(g.key.name, 64),
        "suite": f"{_text(g.key.suite_id, 80)} v{g.key.suite_version}",
        "device class": g.key.device_class,
        "run id": g.run_id,
        "set": fmt_time(g.set_at),
        "by": _text(g.set_by, 80),
        "reason": _text(g.reason, 300),
    } for g in goldens]
    return pd.DataFrame(rows, columns=["golden", "suite", "device class", "run id", "set", "by", "reason"])


# ---------------------------------------------------------------- one run


def run_cases_frame(cases: Sequence[CaseResult], comparison: RunComparison | None, is_golden: bool = False
                    ) -> pd.DataFrame:
    """A run's cases with their verdict against the golden (``comparison``: golden → this run), most severe
    first, and a row for each golden case the run lacks."""
    judged = {c.key: c for c in comparison.cases} if comparison is not None else {}
    rows: list[tuple[tuple[int, tuple[str, str, str]], dict[str, Any]]] = []
    for case in cases:
        result = judged.pop(case.key, None)
        verdict = "★ golden" if is_golden else (verdict_label(result.verdict) if result else "not judged")
        m = result.metrics if result else None
        rows.append(((-result.verdict.severity if result else 1, case.key), {
            VERDICT: verdict, "case": _text(case.case_id, 80), "device": _text(case.device, 20),
            "dtype": _text(case.dtype, 20), "shape": fmt_shape(case.output.shape) if case.output else MISSING,
            "repeats": case.repeats, "repeats identical": "yes" if case.repeat_identical else "no",
            "seconds": f"{case.seconds:.3f}", "max ULP": fmt_ulp(m.ulp_max, m.dtype) if m else MISSING,
            "against the golden": _text(result.detail, 400) if result else MISSING,
            "error": _text(case.error, 400),
        }))
    for key, result in judged.items():  # in the golden, not in this run
        rows.append(((-result.verdict.severity, key), {
            VERDICT: verdict_label(result.verdict), "case": _text(key[0], 80), "device": _text(key[1], 20),
            "dtype": _text(key[2], 20), "shape": MISSING, "repeats": 0, "repeats identical": MISSING,
            "seconds": MISSING, "max ULP": MISSING, "against the golden": _text(result.detail, 400), "error": MISSING,
        }))
    return pd.DataFrame([row for _, row in sorted(rows, key=lambda r: r[0])], columns=list(_CASE_COLUMNS))


_CASE_COLUMNS = (VERDICT, "case", "device", "dtype", "max ULP", "against the golden", "repeats identical", "repeats",
                 "seconds", "shape", "error")


def history_frame(history: Sequence[RunSummary], run_id: str, golden_ids: Iterable[str] = (), around: int = 5
                  ) -> pd.DataFrame:
    """The ``around`` runs before and after ``run_id`` in its machine's history (oldest first, as given), each
    with whether its numerics-relevant environment differs from the run before it."""
    ids = [r.run_id for r in history]
    here = ids.index(run_id)
    goldens = set(golden_ids)
    rows = []
    for i in range(max(0, here - around), min(len(history), here + around + 1)):
        run = history[i]
        env = ("first run" if i == 0 else
               "changed" if run.environment.digest != history[i - 1].environment.digest else "same")
        rows.append({
            "position": "this run" if i == here else (f"{plural(here - i, 'run')} before" if i < here
                                                      else f"{plural(i - here, 'run')} after"),
            VERDICT: run_verdict(run, goldens),
            RUN_ID: run.run_id,
            "captured": fmt_time(run.captured_at),
            "label": _text(run.label),
            "variant": _text(run.variant),
            "torch": _text(run.environment.torch_version),
            "environment vs the run before": env,
        })
    return pd.DataFrame(rows, columns=["position", VERDICT, RUN_ID, "captured", "label", "variant", "torch",
                                       "environment vs the run before"])


# ---------------------------------------------------------------- a comparison


def verdict_frame(comparison: RunComparison) -> pd.DataFrame:
    """One row per case, most severe first: verdict, ULP, abs and rel figures, what was found."""
    rows = []
    for case in sorted(comparison.cases, key=lambda c: (-c.verdict.severity, c.key)):
        m = case.metrics
        rows.append({
            VERDICT: verdict_label(case.verdict),
            "case": _text(case.case_id, 80),
            "device": _text(case.device, 20),
            "dtype": _text(case.dtype, 20),
            "mismatched": fmt_count(m.mismatched, m.n) if m else MISSING,
            "max ULP": fmt_ulp(m.ulp_max, m.dtype) if m else MISSING,
            "p99 ULP": fmt_ulp(m.ulp_p99, m.dtype) if m else MISSING,
            "max abs": fmt_abs(m.max_abs) if m else MISSING,
            "at": fmt_index(m.max_abs_index) if m and m.max_abs_index else MISSING,
            "max rel": fmt_rel(m.max_rel) if m else MISSING,
            TIERS_COLUMN: case.tiers.marks if case.tiers else MISSING,
            "tolerance from": _text(case.tolerance_source or MISSING, 200),
            "what was found": _text(case.detail, 400),
        })
    return pd.DataFrame(rows, columns=[VERDICT, "case", "device", "dtype", "mismatched", "max ULP", "p99 ULP",
                                       "max abs", "at", "max rel", TIERS_COLUMN, "tolerance from", "what was found"])


# The determinism tiers as marks (core/compare/tiers.py): run-to-run, processes, machines, device classes.
TIERS_COLUMN = "bitwise"
TIERS_HELP = ("Bitwise: the guarantees that held for the case, in order: run to run in one process, across processes "
              "on one machine and environment, across machines of one device class, across device classes. "
              "✓ held, ✗ broken, ? unknown (nothing at hand shows it).")


FIRST_DIVERGENT = "no ← first divergent"  # the "identical" cell of the call where the drift starts
_MODULE_STATS = ("rel change of L2", "min change", "max change", "mean change")
_MODULE_FULL = ("rel L2 error", "max ULP", "max abs", "max rel")


def module_frame(modules: Sequence[ModuleChange], first: ModuleChange | None = None) -> pd.DataFrame:
    """One row per module call of an own model, in execution order: identical or not (the first divergent
    call marked), then the statistics' changes (relative change of the L2 norm, absolute change of min, max
    and mean) or, when the calls were compared element by element (``--layers full``), rel L2 error, ULP,
    abs and rel. Figures only: nothing is decoded."""
    full = any(m.change.elementwise for m in modules)
    truth = any(m.baseline_truth is not None or m.candidate_truth is not None for m in modules)
    figures = (*_MODULE_FULL, "rel change of L2") if full else _MODULE_STATS
    rows = []
    for i, m in enumerate(modules, 1):
        c = m.change
        row: dict[str, Any] = {"#": i, "module call": _text(m.label, 200),
                               "identical": "yes" if c.identical else (FIRST_DIVERGENT if m is first else "no")}
        if full:
            row.update({"rel L2 error": fmt_rel(c.rel_error) if c.elementwise else MISSING,
                        "max ULP": fmt_ulp(c.ulp_max), "max abs": fmt_abs(c.max_abs), "max rel": fmt_rel(c.max_rel),
                        "rel change of L2": fmt_rel(c.l2_rel)})
        else:
            row.update({"rel change of L2": fmt_rel(c.l2_rel), "min change": fmt_abs(c.min_change),
                        "max change": fmt_abs(c.max_change), "mean change": fmt_abs(c.mean_change)})
        if c.identical:
            row.update(dict.fromkeys(figures, "0"))
        if truth:
            row[TRUTH_COLUMN] = f"{fmt_rel(m.baseline_truth)} → {fmt_rel(m.candidate_truth)}"
        row["note"] = _text(c.note, 200)
        rows.append(row)
    return pd.DataFrame(rows, columns=["#", "module call", "identical", *figures, *([TRUTH_COLUMN] if truth else []),
                                       "note"])


TRUTH_COLUMN = "vs float64 truth (base → cand)"  # each side's relative L2 error against the float64 pass


def env_frame(changes: Sequence[EnvChange]) -> pd.DataFrame:
    """Environment changes as given (numerics-relevant first, as ``core.compare`` orders them)."""
    rows = [{
        "field": _text(c.label, 80),
        "change": c.kind,
        **dict(zip(("baseline", "candidate"), (_text(v, 400) for v in shown_pair(c, 400)), strict=True)),
        "can change numbers": "yes" if c.numerics else "no",
        "key": _text(c.key, 120),
    } for c in changes]
    return pd.DataFrame(rows, columns=["field", "change", "baseline", "candidate", "can change numbers", "key"])


def causes_frame(causes: Sequence[LikelyCause]) -> pd.DataFrame:
    rows = [{
        "likely cause": _text(c.title, 160),
        "confidence": c.confidence,
        "evidence": _text(c.evidence, 600),
        "cases": len(c.cases),
    } for c in causes]
    return pd.DataFrame(rows, columns=["likely cause", "confidence", "evidence", "cases"])


def cause_texts(causes: Sequence[LikelyCause]) -> list[tuple[str, str]]:
    """(title, evidence) of each likely cause, whole: what the causes table cuts to its column width."""
    return [(f"{c.title} ({c.confidence})", c.evidence) for c in causes]


def found_texts(comparison: RunComparison) -> list[tuple[str, str]]:
    """(case and verdict, what was found) of each case that is not identical, most severe first."""
    cases = sorted((c for c in comparison.cases if c.verdict is not Verdict.IDENTICAL),
                   key=lambda c: (-c.verdict.severity, c.key))
    return [(f"{'/'.join(c.key)}: {verdict_label(c.verdict)}", c.detail) for c in cases]


# ---------------------------------------------------------------- machine audit


AUDIT_EVENT_WIDTHS = {"between": 170, "what changed": 280, "before": 300, "after": 300, "conclusion": "large",
                      "float64 truth": 300}


def audit_event_texts(audit: MachineAudit) -> list[tuple[str, str]]:
    """Each environment change written out: what changed, the drift before and after it, the conclusion."""
    return [(f"{fmt_time(e.event.before_at)} → {fmt_time(e.event.after_at)}: {'; '.join(e.event.changes)}",
             f"Before: {_point_text(e.before)}. After: {_point_text(e.after)}. {e.conclusion()}"
             + (f" Float64 truth: {truth[1]}." if (truth := e.truth()) else ""))
            for e in audit.events]


def audit_events_frame(audit: MachineAudit) -> pd.DataFrame:
    """One row per environment change: what changed, drift against the golden before and after, and what
    the change did to the results."""
    rows = []
    for e in audit.events:
        rows.append({
            "between": f"{fmt_time(e.event.before_at)} → {fmt_time(e.event.after_at)}",
            "what changed": _text("; ".join(e.event.changes), 400),
            "before": _point_text(e.before),
            "after": _point_text(e.after),
            "conclusion": _text(e.conclusion(), 400),
            "float64 truth": _text(truth[1], 200) if (truth := e.truth()) else "not compared",
            "run before": e.event.before_run_id,
            "run after": e.event.after_run_id,
        })
    return pd.DataFrame(rows, columns=["between", "what changed", "before", "after", "conclusion", "float64 truth",
                                       "run before", "run after"])


def _point_text(point: Any) -> str:
    if point.is_golden:
        return "the golden itself"
    if point.worst is None:
        return "not compared"
    return f"{verdict_label(point.worst)}: {fmt_count(point.drifted, point.compared)} cases differ"


def audit_points_frame(audit: MachineAudit) -> pd.DataFrame:
    rows = []
    for p in reversed(audit.points):  # newest first, like the Runs page
        rows.append({
            "captured": fmt_time(p.captured_at),
            "label": _text(p.label),
            VERDICT: "★ golden" if p.is_golden else (verdict_label(p.worst) if p.worst else "not compared"),
            "cases differing": fmt_count(p.drifted, p.compared) if p.worst else MISSING,
            "beyond tolerance": str(p.failing) if p.worst else MISSING,
            "max ULP": fmt_ulp(p.ulp_max) if p.ulp_max is not None else MISSING,
            "run id": p.run_id,
        })
    return pd.DataFrame(rows, columns=["captured", "label", VERDICT, "cases differing", "beyond tolerance",
                                       "max ULP", "run id"])


# ---------------------------------------------------------------- team status


STATUS_COLUMNS = ("status", "machine", "latest run", "captured", "cases differing", "max ULP",
                  "changed since the previous run", "runs")


def status_frame(status: TeamStatus) -> pd.DataFrame:
    """One row per machine, worst first as ``core.status`` orders them: the verdict of its latest run against
    the golden (worded; environment-only and unjudged runs say so), then what changed since its previous run."""
    rows = []
    for m in status.machines:
        judged = m.worst is not None
        word = verdict_label(m.worst) if judged else ("★ golden" if m.is_golden else m.state)
        rows.append({
            "status": word,
            "machine": _text(m.machine, 80),
            "latest run": m.run_id,
            "captured": fmt_time(m.captured_at),
            "cases differing": fmt_count(m.drifted, m.compared) if judged else MISSING,
            "max ULP": fmt_ulp(m.ulp_max) if judged and m.ulp_max is not None else MISSING,
            "changed since the previous run": _text(m.changes_text, 600),
            "runs": m.run_count,
        })
    return pd.DataFrame(rows, columns=list(STATUS_COLUMNS))


# ---------------------------------------------------------------- float64 truth


TRUTH_WIDTHS = {"candidate vs baseline": "large"}


def truth_frame(comparison: RunComparison) -> pd.DataFrame:
    """One row per case that has a float64 truth to speak of: each machine's error against it, then where the
    candidate stands (``core/compare/truth.py``); furthest first."""
    rank = {"further": 0, "slightly further": 1, "unknown": 2, "as close": 3, "closer": 4}
    rows = []
    for case in sorted((c for c in comparison.cases if c.truth is not None),
                       key=lambda c: (rank.get(c.truth.standing, 2), -(c.truth.ratio or 0), c.key)):
        t = case.truth
        row = {"case": _text(case.case_id, 80), "device": _text(case.device, 20), "dtype": _text(case.dtype, 20)}
        for side, err in (("baseline", t.baseline), ("candidate", t.candidate)):
            measured = err is not None and err.error is None
            row[f"{side} rel L2"] = fmt_rel(err.rel_l2) if measured and err.rel_l2 is not None else MISSING
            row[f"{side} max ULP"] = str(err.ulp_max) if measured and err.ulp_max is not None else MISSING
        row["candidate vs baseline"] = _text(t.words, 300)
        rows.append(row)
    return pd.DataFrame(rows, columns=["case", "device", "dtype", "baseline rel L2", "baseline max ULP",
                                       "candidate rel L2", "candidate max ULP", "candidate vs baseline"])
