"""Self-contained HTML reports and the JSON behind them: a comparison, and a machine's upgrade audit.

An HTML report opens without a network: plotly.js is inlined once in the
head, every chart after it refers to that copy, tables are plain HTML, and
the data the report was built from is embedded as JSON
(``<script type="application/json" id="driftboard-data">``). All text that
came from a user or a bundle (labels, notes, hostnames, tags, case ids,
fingerprint values) is escaped. Colours follow ``prefers-color-scheme``.

Pure functions over ``core.compare`` and ``core.audit`` results: no Streamlit, no torch.

    html = comparison_report_html([result], runs={run.run_id: (run, arrays), ...})
    html = machine_report_html(db.audit.audit_machine(store, "gpu-node-3"))
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from driftboard.core.audit import AuditEvent, MachineAudit, TimelinePoint, audit_json
from driftboard.core.compare.envdiff import shown_pair
from driftboard.core.compare.metrics import worst_elements
from driftboard.core.compare.runs import CaseComparison, RunComparison, RunInfo
from driftboard.core.compare.verdict import Verdict
from driftboard.core.documents import document
from driftboard.core.explain.result import Explanation
from driftboard.core.run import ArraySource, Run
from driftboard.core.version import __version__
from driftboard.dashboard import charts
from driftboard.dashboard.format import (
    MISSING,
    case_key_text,
    fmt_abs,
    fmt_count,
    fmt_index,
    fmt_rel,
    fmt_time,
    fmt_ulp,
    html_text,
    verdict_chip_html,
)

REPORT_VERSION = 1
REPORT_FORMAT = "driftboard.comparison_report"  # core.documents; docs/JSON.md
CaseKey = tuple[str, str, str]
RunSources = Mapping[str, tuple[Run, ArraySource]]  # run id -> the run and where its arrays live


# ---------------------------------------------------------------- comparison report


def comparison_report_json(
    comparisons: Sequence[RunComparison], *, title: str | None = None, generated_at: str | None = None
) -> dict[str, Any]:
    """The data behind a comparison report: JSON-ready (no NaN or infinity), in the envelope of
    ``driftboard.comparison_report`` (``kind`` and ``report_version`` stay for readers that predate it)."""
    return document(REPORT_FORMAT, {
        "kind": REPORT_FORMAT,
        "report_version": REPORT_VERSION,
        "tool_version": __version__,
        "title": title or _comparison_title(comparisons),
        "generated_at": generated_at or _now(),
        "comparisons": [c.to_json() for c in comparisons],
    })


def comparison_report_html(
    comparisons: Sequence[RunComparison],
    runs: RunSources | None = None,
    *,
    title: str | None = None,
    generated_at: str | None = None,
    max_charted_cases: int = 20,
    max_points: int = 5000,
    explanations: Mapping[tuple[str, str], Explanation] | None = None,
) -> str:
    """One self-contained HTML page for a baseline against one or more candidates.

    ``runs`` maps run ids to (run, arrays) for the charts of changed cases (at
    most ``max_charted_cases`` per comparison, worst first); without it the
    report has the tables and the per-case explanations only. ``explanations``
    maps (baseline, candidate) run ids to what ``driftboard explain`` found,
    shown next to the likely causes.
    """
    data = comparison_report_json(comparisons, title=title, generated_at=generated_at)
    doc = _Document(data["title"])
    doc.add(f"<h1>{html_text(data['title'])}</h1>")
    doc.add(_meta_line(data["generated_at"]))
    if not comparisons:
        doc.add("<p class='empty'>No comparisons were given: nothing to report.</p>")
    for i, comparison in enumerate(comparisons, 1):
        found = (explanations or {}).get((comparison.baseline.run_id, comparison.candidate.run_id))
        _comparison_section(doc, i, comparison, runs or {}, max_charted_cases, max_points, found)
    return doc.render(data)


def _comparison_title(comparisons: Sequence[RunComparison]) -> str:
    if not comparisons:
        return "driftboard comparison"
    base = comparisons[0].baseline.name
    if len(comparisons) == 1:
        return f"driftboard: {base} vs {comparisons[0].candidate.name}"
    return f"driftboard: {base} vs {len(comparisons)} candidates"


def _comparison_section(
    doc: _Document, number: int, comparison: RunComparison, runs: RunSources, max_charted: int, max_points: int,
    explanation: Explanation | None = None,
) -> None:
    b, c = comparison.baseline, comparison.candidate
    doc.add(f"<section class='comparison' id='comparison-{number}'>")
    doc.add(f"<h2>{number}. {html_text(b.name)} <span class='muted'>(baseline)</span> → "
            f"{html_text(c.name)} <span class='muted'>(candidate)</span></h2>")
    doc.add(_run_table(b, c))
    counts = " ".join(f"{_chip(v)} {n}" for v, n in reversed(comparison.counts().items()) if n)
    doc.add(f"<p class='summary'>Worst verdict {_chip(comparison.worst)} under policy "
            f"<code>{html_text(comparison.policy)}</code> · {len(comparison.cases)} cases: {counts or 'none'}</p>")
    for note in comparison.notes:
        doc.add(f"<p class='note'>Note: {html_text(note, 600)}</p>")
    _causes(doc, comparison, explanation)
    _environment(doc, comparison)
    doc.add("<h3>Cases</h3>")
    doc.add(_case_table(comparison))
    _truth(doc, comparison)
    _case_details(doc, comparison, runs, max_charted, max_points)
    doc.add("</section>")


def _run_table(b: RunInfo, c: RunInfo) -> str:
    rows = [
        ("run", b.run_id, c.run_id),
        ("label", b.label or MISSING, c.label or MISSING),
        ("host", b.hostname or MISSING, c.hostname or MISSING),
        ("captured", fmt_time(b.created_at), fmt_time(c.created_at)),
        ("settings variant", b.variant, c.variant),
        ("suite", f"{b.suite_id} v{b.suite_version}", f"{c.suite_id} v{c.suite_version}"),
    ]
    body = "".join(f"<tr><th scope='row'>{name}</th><td>{html_text(x)}</td><td>{html_text(y)}</td></tr>"
                   for name, x, y in rows)
    return (f"<table class='runs'><thead><tr><th></th><th>baseline</th><th>candidate</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _causes(doc: _Document, comparison: RunComparison, explanation: Explanation | None = None) -> None:
    if comparison.causes:
        doc.add("<h3>Likely causes</h3><ol class='causes'>")
        for cause in comparison.causes:
            doc.add(f"<li><strong>{html_text(cause.title)}</strong> <span class='muted'>({cause.confidence} "
                    f"confidence)</span><br>{html_text(cause.evidence, 2000)}</li>")
        doc.add("</ol>")
    if explanation is not None:
        _explanation(doc, explanation)


def _explanation(doc: _Document, found: Explanation) -> None:
    """What ``driftboard explain`` found by re-running the differing cases: the causes it confirms or refutes."""
    ran = sum(t.status == "done" for t in found.trials)
    doc.add(f"<h3>Explained by re-running</h3><p class='explanation'>{html_text(found.summary, 1000)}</p>"
            f"<p class='muted'>re-run on the {html_text(found.this_side)}'s machine, {html_text(found.created_at)}: "
            f"{ran} of {len(found.trials)} settings ran{'' if found.complete else ' (stopped by the budget)'}</p>")
    if found.causes:
        doc.add("<ul class='causes'>" + "".join(
            f"<li><strong>{html_text(c.title)}</strong>: {html_text(c.status)} <span class='muted'>"
            f"({html_text(c.reason, 600)})</span></li>" for c in found.causes) + "</ul>")
    if found.own:
        doc.add(f"<p>Own-model cases re-run: {html_text(', '.join('/'.join(k) for k, _ in found.own), 2000)}</p>")
    if found.skipped:
        doc.add(f"<p>Not re-run: {html_text('; '.join(found.skipped), 2000)}</p>")
    if found.remaining:
        doc.add(f"<p>Remaining environment differences: {html_text('; '.join(found.remaining), 2000)}</p>")


def _environment(doc: _Document, comparison: RunComparison) -> None:
    env = comparison.env
    doc.add("<h3>Environment</h3>")
    if not env.changes:
        doc.add("<p>Identical fingerprints.</p>")
        return
    doc.add(f"<p>{len(env.numerics)} numerics-relevant change(s), {len(env.informational)} informational.</p>")
    if env.numerics:
        doc.add(_env_table(env.numerics))
    if env.informational:
        doc.add(f"<details><summary>{len(env.informational)} informational change(s) (cannot change numbers)"
                f"</summary>{_env_table(env.informational)}</details>")


def _env_table(changes: Iterable[Any]) -> str:
    rows = []
    for change in changes:
        old, new = shown_pair(change, 120)
        rows.append(f"<tr><td>{html_text(change.label)}</td><td><code>{html_text(change.key)}</code></td>"
                    f"<td>{html_text(old)}</td><td>{html_text(new)}</td></tr>")
    return ("<table class='env'><thead><tr><th>field</th><th>key</th><th>baseline</th><th>candidate</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _truth(doc: _Document, comparison: RunComparison) -> None:
    """Each machine's error against the float64 truth per case, and which is closer (``core/compare/truth.py``)."""
    if not comparison.cases:
        return
    doc.add(f"<h3>Against the float64 truth</h3><p>{html_text(comparison.truth.words, 400)}</p>")
    rows = []
    for case in sorted((c for c in comparison.cases if c.truth is not None), key=lambda c: c.key):
        t = case.truth
        cells = [case.case_id, case.device, case.dtype,
                 *(fmt_rel(e.rel_l2) if e is not None and e.error is None else MISSING for e in (t.baseline, t.candidate)),
                 t.words]
        rows.append("<tr>" + "".join(f"<td>{html_text(str(v), 300)}</td>" for v in cells) + "</tr>")
    if rows:
        head = "".join(f"<th>{h}</th>" for h in ("case", "device", "dtype", "baseline rel L2", "candidate rel L2",
                                                  "candidate vs baseline"))
        doc.add(f"<table class='truth'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _case_table(comparison: RunComparison) -> str:
    head = ("<thead><tr><th>case</th><th>device</th><th>dtype</th><th>verdict</th><th class='num'>max ULP</th>"
            "<th class='num'>p99 ULP</th><th class='num'>max abs</th><th class='num'>max rel</th>"
            "<th class='num'>mismatched</th><th title='in order: run to run / processes / machines / device classes: "
            "✓ held, ✗ broken, ? unknown'>bitwise</th><th>tolerance from</th><th>notes</th></tr></thead>")
    rows = []
    for case in sorted(comparison.cases, key=lambda c: (-c.verdict.severity, c.key)):
        m = case.metrics
        if m is not None:
            figures = [fmt_ulp(m.ulp_max, m.dtype), fmt_ulp(m.ulp_p99, m.dtype),
                       f"{fmt_abs(m.max_abs)}" + (f" at {fmt_index(m.max_abs_index)}" if m.max_abs_index else ""),
                       fmt_rel(m.max_rel), fmt_count(m.mismatched, m.n)]
        else:
            figures = [MISSING] * 5
        cells = "".join(f"<td class='num'>{html_text(f)}</td>" for f in figures)
        rows.append(f"<tr><td><a href='#{_anchor(case)}'>{html_text(case.case_id)}</a></td>"
                    f"<td>{html_text(case.device)}</td><td>{html_text(case.dtype)}</td><td>{_chip(case.verdict)}</td>"
                    f"{cells}<td title='{html_text(case.tiers.label if case.tiers else '')}'>"
                    f"{html_text(case.tiers.marks if case.tiers else MISSING)}</td>"
                    f"<td title='{html_text(case.tolerance_detail or '')}'>{html_text(case.tolerance_source or MISSING, 200)}</td>"
                    f"<td>{html_text('; '.join(case.notes()), 400)}</td></tr>")
    return f"<table class='cases'>{head}<tbody>{''.join(rows)}</tbody></table>"


def _anchor(case: CaseComparison, prefix: str = "case") -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in case_key_text(case.key))
    return f"{prefix}-{safe}"


def _case_details(
    doc: _Document, comparison: RunComparison, runs: RunSources, max_charted: int, max_points: int
) -> None:
    """Charts for changed cases (worst first, up to ``max_charted``), explanations for the others."""
    shown = [c for c in comparison.cases if c.verdict is not Verdict.IDENTICAL]
    if not shown:
        doc.add("<p>Every case is bitwise identical: there is no difference to chart.</p>")
        return
    shown.sort(key=lambda c: (-c.verdict.severity, -(c.metrics.ulp_max if c.metrics else 0), c.key))
    doc.add("<h3>Case details</h3>")
    base = runs.get(comparison.baseline.run_id)
    cand = runs.get(comparison.candidate.run_id)
    charted = 0
    for case in shown:
        base_case = _find_case(base[0] if base else None, case.key)
        cand_case = _find_case(cand[0] if cand else None, case.key)
        with_charts = case.verdict.changed and charted < max_charted and base is not None and cand is not None
        doc.add(f"<article class='case' id='{_anchor(case)}'><h4>{html_text(case_key_text(case.key))} "
                f"{_chip(case.verdict)}</h4>")
        if with_charts:
            assert base is not None and cand is not None
            result = charts.case_figures(case, base[1], cand[1], base_case, cand_case, max_points=max_points)
            charted += 1
        else:
            result = charts.case_figures(case, None, None, base_case, cand_case)
        explanation = result.explanation
        if case.verdict.changed and not with_charts:
            explanation += (" (Element charts left out: arrays not given.)" if base is None or cand is None
                            else f" (Element charts left out: only the {max_charted} worst changed cases are "
                                 "charted.)")
        doc.add(f"<p>{html_text(explanation, 1000)}</p>")
        if case.training is not None:  # the verdict is on the final parameters; the steps say where and how fast
            doc.add(f"<p class='training'>Training, step by step: {html_text(case.training.text, 600)}</p>")
        if case.modules and case.verdict is not Verdict.INPUTS_DIFFER:
            doc.add(_first_divergent(case))
        if result.figures:
            doc.add("<div class='charts'>" + "".join(
                f"<div class='wide'>{doc.figure(fig)}</div>" if name == charts.MODULE_CHART else doc.figure(fig)
                for name, fig in result.figures) + "</div>")
        if with_charts and base_case is not None and cand_case is not None:
            doc.add(_worst_table(base, cand, base_case, cand_case, case))
        doc.add("</article>")


def _first_divergent(case: CaseComparison) -> str:
    """An own case's first divergent module call in words: where in the forward the drift starts."""
    n = len(case.modules)
    first = case.first_divergent_module
    if first is None:
        return f"<p class='modules'>All {n:,} module calls are bitwise identical.</p>"
    differ = sum(not m.identical for m in case.modules)
    return (f"<p class='modules'>First divergent module: <strong>{html_text(first.label)}</strong>, call "
            f"{case.modules.index(first) + 1:,} of {n:,} in execution order; {differ:,} differ.</p>")


def _find_case(run: Run | None, key: CaseKey) -> Any:
    if run is None:
        return None
    try:
        return run.case(*key)
    except KeyError:
        return None


def _worst_table(base: tuple[Run, ArraySource], cand: tuple[Run, ArraySource], base_case: Any, cand_case: Any,
                 case: CaseComparison) -> str:
    old, new = base_case.output, cand_case.output
    if old is None or new is None:
        return ""
    rows = worst_elements(base[1].load(old), cand[1].load(new), old.dtype, k=10)
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{fmt_index(r.index)}</td><td class='num'>{r.baseline!r}</td><td class='num'>{r.candidate!r}</td>"
        f"<td class='num'>{fmt_abs(r.abs)}</td><td class='num'>{fmt_rel(r.rel)}</td>"
        f"<td class='num'>{fmt_ulp(r.ulp, old.dtype)}</td></tr>"
        for r in rows
    )
    changed = case.metrics.changed if case.metrics else len(rows)
    return (f"<details><summary>Worst elements ({len(rows)} of {changed:,} changed, by ULP distance)</summary>"
            "<table class='worst'><thead><tr><th>index</th><th class='num'>baseline</th><th class='num'>candidate"
            "</th><th class='num'>abs diff</th><th class='num'>rel diff</th><th class='num'>ULP</th></tr></thead>"
            f"<tbody>{body}</tbody></table></details>")


# ---------------------------------------------------------------- machine audit


def machine_report_html(audit: MachineAudit, *, title: str | None = None, generated_at: str | None = None) -> str:
    """The hardware-upgrade audit (``core.audit``) as one self-contained HTML page: timeline, events with
    drift before and after each, and every run against the golden; its JSON document is embedded."""
    data = audit_json(audit, generated_at=generated_at)
    title = title or f"driftboard audit: {audit.machine}"
    doc = _Document(title)
    doc.add(f"<h1>{html_text(title)}</h1>")
    doc.add(_meta_line(data["generated_at"]))
    golden = audit.golden
    doc.add("<p>Golden baseline: " + (f"<strong>{html_text(golden.name)}</strong> ({html_text(golden.hostname or '')}"
                                       f", {fmt_time(golden.created_at)})" if golden else "none chosen")
            + f"; policy <code>{html_text(str(audit.policy))}</code></p>")
    if audit.points:
        span = f"{fmt_time(audit.points[0].captured_at)} to {fmt_time(audit.points[-1].captured_at)}"
        doc.add(f"<p>{len(audit.points)} runs from {span}; {len(audit.events)} environment change(s).</p>")
    doc.add("<div class='charts'>" + doc.figure(charts.machine_timeline(
        audit.points, [e.event for e in audit.events], title=f"{audit.machine}: cases differing from the golden"))
        + (doc.figure(charts.machine_timeline(
            audit.points, [e.event for e in audit.events], y="ulp_max",
            title=f"{audit.machine}: worst ULP distance to the golden"))
           if any(p.ulp_max for p in audit.points) else "") + "</div>")
    doc.add("<h2>Environment changes</h2>")
    if not audit.events:
        doc.add("<p>No numerics-relevant field changed between consecutive runs.</p>")
    for i, event in enumerate(audit.events, 1):
        _event_section(doc, i, event)
    doc.add("<h2>Runs</h2>")
    doc.add(_points_table(audit.points))
    return doc.render(data)


def _event_section(doc: _Document, number: int, audit_event: AuditEvent) -> None:
    event, before, after = audit_event.event, audit_event.before, audit_event.after
    doc.add(f"<section class='event'><h3>{number}. {html_text(event.label)}</h3>")
    doc.add(f"<p class='muted'>between {html_text(before.label or before.run_id)} ({fmt_time(before.captured_at)}) "
            f"and {html_text(after.label or after.run_id)} ({fmt_time(after.captured_at)})</p>")
    doc.add("<ul>" + "".join(f"<li>{html_text(text)} <code>{html_text(key)}</code></li>"
                             for text, key in zip(event.changes, event.keys or [""] * len(event.changes),
                                                  strict=False)) + "</ul>")
    doc.add(f"<p><strong>{html_text(audit_event.conclusion())}</strong></p>")
    truth = audit_event.truth()
    if truth is not None:
        doc.add(f"<p class='truth'>Float64 truth: {html_text(truth[1])}.</p>")
    rows = "".join(
        f"<tr><th scope='row'>{side}</th><td>{html_text(p.label or p.run_id)}</td><td>{_point_chip(p)}</td>"
        f"<td class='num'>{html_text(fmt_count(p.drifted, p.compared) if p.compared else MISSING)}</td>"
        f"<td class='num'>{p.failing}</td><td class='num'>{html_text(fmt_ulp(p.ulp_max))}</td></tr>"
        for side, p in (("before", before), ("after", after))
    )
    doc.add("<table class='beforeafter'><thead><tr><th></th><th>run</th><th>worst vs golden</th>"
            "<th class='num'>cases differing</th><th class='num'>beyond tolerance</th><th class='num'>max ULP</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")
    if audit_event.verdict_changes:
        body = "".join(f"<tr><td>{html_text(case_key_text(v.key))}</td><td>{_chip(v.before)}</td>"
                       f"<td>{_chip(v.after)}</td></tr>" for v in audit_event.verdict_changes)
        doc.add("<table class='verdictchanges'><thead><tr><th>case</th><th>before</th><th>after</th></tr></thead>"
                f"<tbody>{body}</tbody></table>")
    doc.add("</section>")


def _point_chip(p: TimelinePoint) -> str:
    if p.is_golden:
        return "golden"
    return _chip(p.worst) if p.worst is not None else "not compared"


def _points_table(points: Sequence[TimelinePoint]) -> str:
    rows = "".join(
        f"<tr><td>{fmt_time(p.captured_at)}</td><td><code>{html_text(p.run_id)}</code></td>"
        f"<td>{html_text(p.label)}</td><td>{_point_chip(p)}</td>"
        f"<td class='num'>{html_text(fmt_count(p.drifted, p.compared) if p.compared else MISSING)}</td>"
        f"<td class='num'>{p.failing}</td><td class='num'>{html_text(fmt_ulp(p.ulp_max))}</td></tr>"
        for p in reversed(points)
    )
    return ("<table class='points'><thead><tr><th>captured</th><th>run</th><th>label</th><th>worst vs golden</th>"
            "<th class='num'>cases differing</th><th class='num'>beyond tolerance</th><th class='num'>max ULP</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>")


# ---------------------------------------------------------------- the document


def _chip(verdict: Verdict | str | None) -> str:
    """A verdict as coloured chip with icon and word (never colour alone): the dashboard's chip too."""
    return verdict_chip_html(verdict)


def _meta_line(generated_at: str) -> str:
    return (f"<p class='muted'>Generated {html_text(fmt_time(generated_at))} by driftboard {html_text(__version__)}."
            " Self-contained: opens without a network.</p>")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# Light theme values; the page script swaps the font colour for dark mode.
_FG_LIGHT, _FG_DARK = "#1f2328", "#e6edf3"
_TEMPLATE = go.layout.Template(layout={
    "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "color": _FG_LIGHT},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "colorway": [charts.BLUE, charts.VERMILLION, charts.GREEN, charts.ORANGE, charts.SKY, charts.PURPLE],
    "xaxis": {"gridcolor": charts.GRID, "zerolinecolor": charts.ZERO_LINE, "linecolor": charts.GRID},
    "yaxis": {"gridcolor": charts.GRID, "zerolinecolor": charts.ZERO_LINE, "linecolor": charts.GRID},
    "hoverlabel": {"align": "left"},
    "modebar": {"bgcolor": "rgba(0,0,0,0)", "color": "rgba(128,128,128,0.85)", "activecolor": charts.BLUE},
})

_CSS = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --border: #d1d9e0;
  --panel: #f6f8fa; --link: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --border: #3d444d; --panel: #151b23; --link: #4493f8; }
}
body { background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  sans-serif; max-width: 1280px; margin: 0 auto; padding: 1.5rem; }
a { color: var(--link); }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid var(--border); }
.muted { color: var(--muted); font-weight: normal; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
th, td { border-bottom: 1px solid var(--border); padding: .3rem .6rem; text-align: left; vertical-align: top; }
thead th { background: var(--panel); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { border-left: 3px solid #E69F00; padding-left: .6rem; }
.case, .event { border-top: 1px solid var(--border); padding-top: .4rem; margin-top: 1rem; }
/* auto-fill, not auto-fit: a chart drawn while the page is still loading must already get its final width */
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1rem; }
.charts > div { min-width: 0; }
.charts > .wide { grid-column: 1 / -1; } /* every module call of a model, in execution order */
details { margin: .5rem 0; } summary { cursor: pointer; color: var(--muted); }
"""

# Runs after each chart is drawn and when the colour scheme changes: Plotly draws text in SVG with
# its own colour, which CSS variables do not reach.
_THEME_JS = f"""
function driftboardTheme(gd) {{
  var dark = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches;
  Plotly.relayout(gd, {{'font.color': dark ? '{_FG_DARK}' : '{_FG_LIGHT}'}});
}}
if (window.matchMedia) {{
  window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', function () {{
    document.querySelectorAll('.js-plotly-plot').forEach(driftboardTheme);
  }});
}}
"""


class _Document:
    """Collects HTML parts and figures; renders one page with plotly.js inlined once."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []
        self.figures = 0

    def add(self, html: str) -> None:
        self.parts.append(html)

    def figure(self, fig: go.Figure) -> str:
        self.figures += 1
        themed = go.Figure(fig)
        themed.update_layout(template=_TEMPLATE)
        return themed.to_html(
            full_html=False,
            include_plotlyjs=False,  # inlined once in <head>
            div_id=f"driftboard-figure-{self.figures}",
            config={"displaylogo": False, "responsive": True},
            post_script="driftboardTheme(document.getElementById('{plot_id}'));",
            default_width="100%",
        )

    def render(self, data: dict[str, Any]) -> str:
        payload = (json.dumps(data, allow_nan=False, ensure_ascii=False, default=str)
                   .replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))
        head = [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            "<meta name='color-scheme' content='light dark'>",
            f"<title>{html_text(self.title)}</title>",
            f"<style>{_CSS}</style>",
        ]
        if self.figures:
            head.append(f"<script>{get_plotlyjs()}</script>")
            head.append(f"<script>{_THEME_JS}</script>")
        return "\n".join([
            *head,
            "</head><body>",
            *self.parts,
            f"<script type='application/json' id='driftboard-data'>{payload}</script>",
            "</body></html>",
            "",
        ])
