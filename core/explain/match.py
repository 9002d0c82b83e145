"""Matching a re-run's outputs with a recorded run's, case by case, under a policy.

The same judgement ``compare`` makes (``core/compare/runs.compare_case``):
bitwise identical, within the policy's tolerance, or different; a case the
re-run did not produce is missing. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from driftboard.core.compare.policy import Policy
from driftboard.core.compare.runs import compare_case
from driftboard.core.compare.verdict import Verdict
from driftboard.core.explain.result import CaseKey, CaseMatch, Match
from driftboard.core.run import ArraySource, Run


def output_digests(run: Run, keys: Sequence[CaseKey]) -> dict[CaseKey, str | None]:
    """The sha256 of each case's output (None when missing or failed): what "moved" is measured against."""
    found = {c.key: c for c in run.cases}
    return {k: (found[k].output.sha256 if k in found and found[k].output is not None else None) for k in keys}


def match_cases(keys: Sequence[CaseKey], recorded: Run, recorded_arrays: ArraySource, rerun: Run,
                rerun_arrays: ArraySource, policy: Policy,
                reference: Mapping[CaseKey, str | None] | None = None) -> tuple[CaseMatch, ...]:
    """Each of ``keys`` in ``rerun`` against ``recorded``; ``moved`` when it differs from ``reference``."""
    old = {c.key: c for c in recorded.cases}
    new = {c.key: c for c in rerun.cases}
    digests = output_digests(rerun, keys)
    out = []
    for key in keys:
        moved = reference is not None and digests[key] != reference.get(key)
        if key not in new or key not in old:
            out.append(CaseMatch(key, "missing", moved))
            continue
        verdict = compare_case(old[key], recorded_arrays, new[key], rerun_arrays, policy).verdict
        match: Match = ("bitwise" if verdict is Verdict.IDENTICAL else
                        "within" if verdict is Verdict.WITHIN_TOLERANCE else "differs")
        out.append(CaseMatch(key, match, moved))
    return tuple(out)
