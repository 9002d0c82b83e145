"""Matching a re-run's outputs with a recorded run's, case by case, under a policy.

The same judgement ``compare`` makes (``core/compare/runs.compare_case``):
bitwise identical, within the policy's tolerance, or different; a case the
re-run did not produce is missing. A re-run that built other weights or
inputs than this machine recorded (a factory drawing from torch's random
stream under another CPU capability, an edited model) computed something else:
"weights differ here" or "inputs differ here", never a match. Nothing here
imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from driftboard.core.compare.policy import Policy
from driftboard.core.compare.runs import compare_case
from driftboard.core.compare.verdict import Verdict
from driftboard.core.explain.result import CaseKey, CaseMatch, Match
from driftboard.core.run import ArraySource, CaseResult, Run

Digests = tuple[str, str]  # (weights, inputs) of a recorded case


def output_digest(case: CaseResult) -> str | None:
    """The digest of a case's outputs (every output tensor of an own case), None when it has none."""
    if case.own is not None:
        return "|".join(t.stats.sha256 for t in case.own.outputs) if case.own.outputs and case.error is None else None
    return case.output.sha256 if case.output is not None else None


def output_digests(run: Run, keys: Sequence[CaseKey]) -> dict[CaseKey, str | None]:
    """Each case's output digest (None when missing or failed): what "moved" is measured against."""
    found = {c.key: c for c in run.cases}
    return {k: output_digest(found[k]) if k in found else None for k in keys}


def built_digests(run: Run, keys: Sequence[CaseKey]) -> dict[CaseKey, Digests]:
    """The weights and inputs digests ``run`` recorded for ``keys``: what a re-run must build again."""
    wanted = set(keys)
    return {c.key: (c.weight_digest, c.input_digest) for c in run.cases if c.key in wanted}


def match_cases(keys: Sequence[CaseKey], recorded: Run, recorded_arrays: ArraySource, rerun: Run,
                rerun_arrays: ArraySource, policy: Policy,
                reference: Mapping[CaseKey, str | None] | None = None,
                here: Mapping[CaseKey, Digests] | None = None) -> tuple[CaseMatch, ...]:
    """Each of ``keys`` in ``rerun`` against ``recorded``; ``moved`` when it differs from ``reference``.

    ``here``: the weights and inputs digests this machine recorded; a re-run
    that built others is not judged.
    """
    old = {c.key: c for c in recorded.cases}
    new = {c.key: c for c in rerun.cases}
    digests = output_digests(rerun, keys)
    out = []
    for key in keys:
        moved = reference is not None and digests[key] != reference.get(key)
        if key not in new or key not in old:
            out.append(CaseMatch(key, "missing", moved))
            continue
        built = _built_here(new[key], (here or {}).get(key))
        if built is not None:
            out.append(CaseMatch(key, built, moved))
            continue
        verdict = compare_case(old[key], recorded_arrays, new[key], rerun_arrays, policy).verdict
        match: Match = ("bitwise" if verdict is Verdict.IDENTICAL else
                        "within" if verdict is Verdict.WITHIN_TOLERANCE else "differs")
        out.append(CaseMatch(key, match, moved))
    return tuple(out)


def _built_here(case: CaseResult, recorded: Digests | None) -> Match | None:
    if recorded is None or case.error is not None:
        return None
    if case.weight_digest != recorded[0]:
        return "weights_differ"
    if case.input_digest != recorded[1]:
        return "inputs_differ"
    return None
