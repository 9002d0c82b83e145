"""``driftboard.assert_same_numbers``'s judgement: a fresh capture of one model against a golden run.

Only the golden's cases of the captured model's name take part, so a golden
holding a whole capture (suite and every own case) serves as well as one made
for this test. The check fails on anything but identical or within tolerance
(weights or inputs that differ included: then nothing can be said of the
compute), and its message is the report ``driftboard compare --case`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from driftboard.core.compare.metrics import worst_elements
from driftboard.core.compare.policy import Policy
from driftboard.core.compare.runs import CaseComparison, RunComparison, compare_runs
from driftboard.core.compare.text_report import case_report
from driftboard.core.compare.verdict import Verdict
from driftboard.core.run import ArraySource, Run

PASSING = (Verdict.IDENTICAL, Verdict.WITHIN_TOLERANCE)


class NumbersDifferError(AssertionError):
    """The model's numbers are not the golden's; ``comparison`` holds every figure."""

    def __init__(self, message: str, comparison: RunComparison | None = None) -> None:
        super().__init__(message)
        self.comparison = comparison


@dataclass(frozen=True)
class SameNumbers:
    comparison: RunComparison
    failing: tuple[CaseComparison, ...]
    message: str

    @property
    def ok(self) -> bool:
        return not self.failing


def check_same_numbers(golden: Run, golden_arrays: ArraySource, run: Run, arrays: ArraySource,
                       policy: Policy | None = None, golden_name: str = "the golden") -> SameNumbers:
    names = {case.case_id for case in run.cases}
    mine = [case for case in golden.cases if case.case_id in names]
    if not mine:
        raise NumbersDifferError(f"{golden_name} ({golden.run_id}) has no case named {', '.join(sorted(names))}: "
                                 "capture the golden with the same name=")
    comparison = compare_runs(replace(golden, cases=tuple(mine)), golden_arrays, run, arrays, policy)
    failing = tuple(case for case in comparison.cases if case.verdict not in PASSING)
    reports = [_report(case, golden, golden_arrays, run, arrays) for case in failing]
    head = (f"{len(failing)} of {len(comparison.cases)} case(s) differ from {golden_name} ({golden.run_id}) "
            f"under {comparison.policy}:")
    return SameNumbers(comparison, failing, "\n\n".join([head, *reports]) if failing else "")


def _report(case: CaseComparison, golden: Run, golden_arrays: ArraySource, run: Run, arrays: ArraySource) -> str:
    worst = ()
    if case.verdict.changed:
        old, new = golden.case(*case.key).output, run.case(*case.key).output
        if old is not None and new is not None and (old.shape, old.dtype) == (new.shape, new.dtype):
            worst = worst_elements(golden_arrays.load(old), arrays.load(new), old.dtype, k=10)
    return case_report(case, worst)
