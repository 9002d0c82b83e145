"""Tables for ``st.dataframe``: plain pandas frames, verdict cells coloured *and* worded.

No Streamlit here. Every user-supplied value (label, tags, hostname, note,
fingerprint values) goes in as plain text; ``st.dataframe`` draws cells as
text, never as HTML or Markdown.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from driftboard.core.audit import MachineAudit
from driftboard.core.compare import EnvChange, LikelyCause, RunComparison
from driftboard.core.compare.envdiff import shown_pair
from driftboard.core.text import spreadsheet_safe
from driftboard.dashboard.format import (
    MISSING,
    NO_RESULT,
    VERDICT_STYLES,
    fmt_abs,
    fmt_count,
    fmt_index,
    fmt_rel,
    fmt_time,
    fmt_ulp,
    safe_text,
    verdict_label,
)
from driftboard.db.store import Golden, RunSummary

VERDICT = "verdict"
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


def runs_frame(runs: Sequence[RunSummary], golden_ids: Iterable[str] = ()) -> pd.DataFrame:
    """One row per run, newest first as given: who, what environment, and the verdict against the golden."""
    goldens = set(golden_ids)
    rows = []
    for run in runs:
        env = run.environment
        if run.run_id in goldens:
            verdict = "★ golden"
        elif run.imported or not run.case_count:
            verdict = "environment only"
        else:
            verdict = verdict_label(run.verdict) if run.verdict else "not judged"
        rows.append({
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
            VERDICT: verdict,
            "run id": run.run_id,
        })
    return pd.DataFrame(rows, columns=list(_RUN_COLUMNS))


_RUN_COLUMNS = ("captured", "machine", "label", "tags", "torch", "CUDA", "driver", "GPU", "CPU capability",
                "variant", "cases", VERDICT, "run id")


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
            "what was found": _text(case.detail, 400),
        })
    return pd.DataFrame(rows, columns=[VERDICT, "case", "device", "dtype", "mismatched", "max ULP", "p99 ULP",
                                       "max abs", "at", "max rel", "what was found"])


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


# ---------------------------------------------------------------- machine audit


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
            "run before": e.event.before_run_id,
            "run after": e.event.after_run_id,
        })
    return pd.DataFrame(rows, columns=["between", "what changed", "before", "after", "conclusion", "run before",
                                       "run after"])


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
