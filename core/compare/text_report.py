"""Comparison results turned into text: the per-case report and JUnit XML.

Results are data until here (``torch.testing``'s habit): this module only
formats them. The case report reads like ``torch.testing.assert_close`` and
pytest-regressions: "k / n mismatched (pct)", the greatest absolute and
relative difference with their index and the tolerance used, ULPs, then a
capped table of the worst elements.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from driftboard.core.compare.metrics import Metrics, WorstElement
from driftboard.core.compare.own import Change
from driftboard.core.compare.runs import CaseComparison, RunComparison
from driftboard.core.compare.training import TrainingComparison
from driftboard.core.compare.truth import TruthComparison
from driftboard.core.run import TruthError

MODULE_ROWS = 200  # module calls listed in a case report; the JSON holds them all


def case_report(case: CaseComparison, worst: Sequence[WorstElement] = (), max_rows: int = 10) -> str:
    lines = [f"{'/'.join(case.key)}: {case.verdict.value}", f"  {case.detail}"]
    m = case.metrics
    if m is not None and case.verdict.changed:
        lines += [""] + ["  " + line for line in _figures(m)]
    if case.passing is not None and case.verdict.changed:
        lines.append(f"  Smallest tolerance that passes: {case.passing.text}")
    if case.truth is not None:
        lines.append(f"  Against the float64 truth: {truth_line(case.truth)}")
    if case.training is not None:
        lines += ["", "  Training (step by step):"] + ["    " + line for line in training_lines(case.training)]
    if case.tolerance_source:
        detail = f" ({case.tolerance_detail})" if case.tolerance_detail else ""
        lines.append(f"  Tolerance from: {case.tolerance_source}{detail}")
    if case.tiers is not None:
        lines.append(f"  Determinism: {case.tiers.label}")
    if len(case.outputs) > 1:
        lines += ["", "  Outputs:"] + [f"    {o.path or '(top)'}: {_change(o.change)}" for o in case.outputs]
    if case.modules:
        lines += [""] + _module_lines(case)
    if case.layers:
        lines += ["", "  Layers (forward order):"]
        for layer in case.layers:
            state = (
                "identical"
                if layer.identical
                else (f"max abs {_num(layer.max_abs)}, max {layer.ulp_max} ULP" if layer.max_abs is not None else layer.note)
            )
            marker = "  <- first divergent" if layer.name == case.first_divergent_layer else ""
            lines.append(f"    {layer.name}: {state}{marker}")
    if worst:
        changed = m.changed if m else len(worst)
        lines += ["", f"  Worst elements ({min(len(worst), max_rows)} of {changed} changed, by ULP distance):"]
        lines += ["    " + row for row in _table(worst[:max_rows], case.dtype)]
    return "\n".join(lines)


def training_lines(t: TrainingComparison) -> list[str]:
    """The step findings of a training case, for the case report and JUnit."""
    lines = [t.text]
    if t.first_bitwise_step is not None:
        lines.append(f"first bitwise difference: step {t.first_bitwise_step} ({t.first_bitwise_figure})")
        beyond = (f"step {t.first_beyond_step} ({t.first_beyond_figure})" if t.first_beyond_step is not None
                  else f"none in {t.steps} steps")
        lines.append(f"first beyond {t.tolerance}: {beyond}")
        for name, growth in (("|Δloss|", t.loss_growth), ("|Δ parameter distance|", t.distance_growth)):
            if growth is not None:
                lines.append(f"{name} {growth.text} (least squares of log2 over steps {growth.first}–{growth.last}, "
                             f"{growth.points} points)")
    return lines


def truth_line(truth: TruthComparison) -> str:
    """Each side's error against the float64 truth, then where the candidate stands."""
    def side(t: TruthError | None) -> str:
        if t is None or t.error is not None:
            return "none"
        return f"rel L2 {_num(t.rel_l2)}, max abs {_num(t.max_abs)}, max {t.ulp_max} ULP"

    return f"baseline {side(truth.baseline)}; candidate {side(truth.candidate)}: {truth.words}"


def _module_lines(case: CaseComparison) -> list[str]:
    changed = sum(not m.identical for m in case.modules)
    first = case.first_divergent_module
    head = f"  Module calls (execution order): {len(case.modules)}, {changed} differ"
    lines = [head + (f"; first divergent: {first.label}" if first is not None else "")]
    for module in case.modules[:MODULE_ROWS]:
        marker = "  <- first divergent" if module is first else ""
        truth = (f"; vs float64 truth {_num(module.baseline_truth)} → {_num(module.candidate_truth)}"
                 if module.baseline_truth is not None or module.candidate_truth is not None else "")
        lines.append(f"    {module.label}: {_change(module.change)}{truth}{marker}")
    if len(case.modules) > MODULE_ROWS:
        lines.append(f"    … {len(case.modules) - MODULE_ROWS} more (every call is in --json)")
    return lines


def _change(change: Change) -> str:
    if change.identical:
        return "identical"
    parts = [change.note] if change.note else []
    if change.elementwise:
        parts.append(f"rel L2 error {_num(change.rel_error)}, max abs {_num(change.max_abs)}, max {change.ulp_max} ULP")
    elif change.l2_rel is not None or change.max_change is not None:
        parts.append(f"L2 {_num(change.l2_rel)} relative, min/max/mean moved {_num(change.min_change)} / "
                     f"{_num(change.max_change)} / {_num(change.mean_change)}")
    return "; ".join(parts) or "digests differ"


def _figures(m: Metrics) -> list[str]:
    tol = m.tolerance
    close = tol.kind == "close"
    lines = [f"Mismatched elements: {m.mismatched} / {m.n} ({m.mismatched_fraction:.1%}) under {tol}"]
    if m.nonfinite_mismatch:
        lines.append(f"Non-finite mismatches: {m.nonfinite_mismatch} (first at index {m.nonfinite_index})")
    lines.append(
        f"Greatest absolute difference: {_num(m.max_abs)} at index {m.max_abs_index}" + (f" (up to {tol.atol:g} allowed)" if close else "")
    )
    lines.append(
        f"Greatest relative difference: {_num(m.max_rel)} at index {m.max_rel_index}" + (f" (up to {tol.rtol:g} allowed)" if close else "")
    )
    lines.append(
        f"ULP distance: max {m.ulp_max}, mean {m.ulp_mean:.3g}, p99 {m.ulp_p99}"
        + (f" (up to {tol.ulps} allowed)" if tol.kind == "ulp" else "")
    )
    lines.append(f"Elements changed at all: {m.changed} / {m.n}")
    if m.timestep_max_abs is not None:
        steps = ", ".join(_num(v) for v in m.timestep_max_abs[:24])
        more = f", … ({len(m.timestep_max_abs)} steps)" if len(m.timestep_max_abs) > 24 else ""
        lines.append(f"Max abs error by timestep (axis {m.time_axis}): {steps}{more}")
    return lines


def _table(rows: Sequence[WorstElement], dtype: str) -> list[str]:
    header = ("index", "baseline", "candidate", "abs diff", "rel diff", "ULP")
    body = [(str(r.index), _value(r.baseline, dtype), _value(r.candidate, dtype), _num(r.abs), _num(r.rel), str(r.ulp)) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in [header, *body]]


def _value(value: float, dtype: str) -> str:
    """The shortest text that round-trips in the value's own dtype."""
    if dtype in ("float16", "float32"):
        return str(np.dtype(dtype).type(value))
    if dtype == "bfloat16":
        return f"{value:.4g}"  # 8 significant bits: 4 digits tell neighbours apart
    return repr(value)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def junit_xml(comparisons: Sequence[RunComparison], fail_on: str) -> bytes:
    """JUnit XML: one testsuite per candidate, one testcase per case, failures past ``fail_on``."""
    import xml.etree.ElementTree as ET  # only --junit needs it

    root = ET.Element("testsuites", name="driftboard compare")
    for comparison in comparisons:
        failing = comparison.failing(fail_on)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{comparison.baseline.name} vs {comparison.candidate.name}",
            tests=str(len(comparison.cases)),
            failures=str(len(failing)),
            errors="0",
            skipped="0",
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("baseline", comparison.baseline.run_id),
            ("candidate", comparison.candidate.run_id),
            ("policy", str(comparison.policy)),
            ("fail_on", fail_on),
            ("worst", comparison.worst.value),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        for case in comparison.cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=f"driftboard.{comparison.candidate.run_id}",
                name=f"{case.case_id}[{case.device},{case.dtype}]",
                time="0",
            )
            if case.training is not None:  # the step findings, for tools that read testcase properties
                t = case.training
                tprops = ET.SubElement(element, "properties")
                for name, value in (("training_steps", t.steps), ("first_divergent_step", t.first_bitwise_step),
                                    ("first_beyond_policy_step", t.first_beyond_step),
                                    ("loss_doubling_steps", t.loss_growth.doubling_steps if t.loss_growth else None)):
                    ET.SubElement(tprops, "property", name=name, value="" if value is None else f"{value:g}")
            if case.fails(fail_on):
                failure = ET.SubElement(element, "failure", message=f"{case.verdict.value}: {case.detail}", type=case.verdict.value)
                failure.text = case_report(case)
            elif case.verdict.severity > 0:
                ET.SubElement(element, "system-out").text = f"{case.verdict.value}: {case.detail}"
        if not comparison.cases:  # a gate over nothing fails closed (RunComparison.fails): say so as a test
            element = ET.SubElement(suite, "testcase", classname=f"driftboard.{comparison.candidate.run_id}",
                                    name="cases compared", time="0")
            suite.set("tests", "1")
            if comparison.fails(fail_on):
                suite.set("failures", "1")
                ET.SubElement(element, "failure", type="nothing compared",
                              message="no case was compared: " + "; ".join(comparison.notes or ("no cases",)))
        if comparison.notes or comparison.causes:
            text = [*comparison.notes, *(f"likely cause: {c.title}: {c.evidence}" for c in comparison.causes)]
            ET.SubElement(suite, "system-out").text = "\n".join(text)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
