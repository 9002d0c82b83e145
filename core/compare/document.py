"""The ``driftboard.compare`` document: what ``compare --json`` prints and ``GET /api/v1/compare`` answers.

Built here once, so the command line and the team server's API give CI
pipelines the same keys (docs/JSON.md); keys are only ever added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from driftboard.core.documents import document

if TYPE_CHECKING:
    from driftboard.core.compare.policy import Policy
    from driftboard.core.compare.runs import CaseComparison, RunComparison

# (case, its text report, its worst elements as JSON), for each case asked for with --case
CaseReport = tuple["CaseComparison", str, list[dict[str, Any]]]


def compare_document(results: Sequence[RunComparison], rule: Policy, fail_on: str,
                     reports: Sequence[Sequence[CaseReport]] | None = None) -> dict[str, Any]:
    """One baseline against each candidate; ``failed`` when any comparison fails ``fail_on``."""
    reports = reports if reports is not None else [() for _ in results]
    return document("driftboard.compare", {
        "policy": rule.to_json(),
        "fail_on": fail_on,
        "failed": any(result.fails(fail_on) for result in results),
        "comparisons": [
            {
                **result.to_json(),
                "failing": [list(c.key) for c in result.failing(fail_on)],
                "case_reports": [{"case": list(case.key), "text": text, "worst_elements": worst}
                                 for case, text, worst in report],
            }
            for result, report in zip(results, reports, strict=True)
        ],
    })
