"""Comparison of runs: per-case verdicts and metrics, environment diff, likely causes.

Results are frozen dataclasses; the CLI, the dashboard and the HTML report
only format them. numpy only: importing this package never loads torch.

    from driftboard.core.compare import compare_runs, parse_policy
    result = compare_runs(golden.run, golden.arrays, laptop.run, laptop.arrays, parse_policy("ulp:4"))
    result.worst, result.counts(), result.env.numerics, result.causes
"""

from driftboard.core.compare.causes import FIELD_RULES, FieldRule, LikelyCause, likely_causes
from driftboard.core.compare.envdiff import EnvChange, EnvDiff, diff_environments
from driftboard.core.compare.metrics import LayerDivergence, Metrics, WorstElement, compare_arrays, worst_elements
from driftboard.core.compare.policy import DEFAULT_POLICY, DEFAULT_TOLERANCES, Policy, Tolerance, parse_policy
from driftboard.core.compare.rates import FieldRates, ValueRate, drift_rates
from driftboard.core.compare.runs import CaseComparison, RunComparison, RunInfo, compare_case, compare_runs
from driftboard.core.compare.text_report import case_report, junit_xml
from driftboard.core.compare.ulp import NAN_DISTANCE, ulp_distance
from driftboard.core.compare.verdict import FAIL_ON, VERDICT_STYLES, Verdict, VerdictStyle

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_TOLERANCES",
    "FAIL_ON",
    "FIELD_RULES",
    "NAN_DISTANCE",
    "VERDICT_STYLES",
    "CaseComparison",
    "EnvChange",
    "EnvDiff",
    "FieldRates",
    "FieldRule",
    "LayerDivergence",
    "LikelyCause",
    "Metrics",
    "Policy",
    "RunComparison",
    "RunInfo",
    "Tolerance",
    "ValueRate",
    "Verdict",
    "VerdictStyle",
    "WorstElement",
    "case_report",
    "compare_arrays",
    "compare_case",
    "compare_runs",
    "diff_environments",
    "drift_rates",
    "junit_xml",
    "likely_causes",
    "parse_policy",
    "ulp_distance",
    "worst_elements",
]
