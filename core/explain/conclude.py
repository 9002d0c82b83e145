"""From the re-runs to a finding: the best setting, the words, and each likely cause marked.

The best setting reproduces the most differing cases bit for bit, then within
tolerance, with the fewest knobs changed. A likely cause whose knob was toggled
is confirmed when a setting with that knob reproduces one of its cases, and
refuted when none does; a cause no local setting can test (a GPU, a driver, a
library version) stays untested. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from driftboard.core.compare.causes import FIELD_RULES
from driftboard.core.compare.runs import RunComparison
from driftboard.core.explain.result import (
    NOT_BUILT_ALIKE,
    RULE_KNOBS,
    UNEXPLAINED,
    CaseKey,
    CauseMark,
    Explanation,
    KnobStatus,
    TrialResult,
)


def conclude(comparison: RunComparison, this_side: str, differing: Sequence[CaseKey], trials: Sequence[TrialResult],
             knobs: Sequence[KnobStatus], *, not_reproduced: Sequence[CaseKey] = (), skipped: Sequence[str] = (),
             budget: float | None = None, seconds: float = 0.0,
             own: Sequence[tuple[CaseKey, str]] = ()) -> Explanation:
    """The explanation of ``comparison`` from ``trials`` (the unmodified re-run first).

    ``own``: the differing own-model cases among ``differing``, each with where its factory was found.
    """
    other = "candidate" if this_side == "baseline" else "baseline"
    n = len(differing)
    complete = all(t.status != "not_run" for t in trials) and all(k.status != "not_run" for k in knobs)
    floor = {c.key: c.match for c in trials[0].cases} if trials else {}
    done = [t for t in trials[1:] if t.status == "done"]
    best = max(done, key=lambda t: (t.count("bitwise"), len(_gains(t, floor)), -len(t.settings)), default=None)
    if best is not None and not _gains(best, floor):
        best = None
    if not n and skipped:
        verdict = "inconclusive"
        summary = (f"no differing case could be re-run here: {len(skipped)} own-model case(s) are not declared on "
                   "this machine (pass their --model or --cases)")
    elif not n:
        verdict, summary = "nothing_differs", f"nothing differs between the baseline and the candidate under " \
                                              f"{comparison.policy}: there is nothing to explain"
    elif not trials or trials[0].status == "not_run":
        verdict, summary = "inconclusive", "the budget ran out before this machine re-ran its own settings"
    elif trials[0].status == "failed":
        verdict, summary = "not_reproducible", f"the re-run failed: {trials[0].error}"
    elif not_reproduced:
        verdict = "not_reproducible"
        summary = (f"the capture is not reproducible here: with its own recorded settings this machine does not "
                   f"reproduce the {this_side}'s outputs bit for bit in {len(not_reproduced)} of {n} differing cases "
                   f"(is it the machine that recorded the {this_side}?)")
        rebuilt = [c for c in trials[0].cases if c.match in NOT_BUILT_ALIKE]
        if rebuilt:
            what = " and ".join(sorted({c.match.removesuffix("_differ") for c in rebuilt}))
            summary += (f"; in {len(rebuilt)} of them the re-run built other {what} than were recorded "
                        "(has the model changed since it was captured?)")
    elif best is not None:
        bitwise = best.count("bitwise")
        within = len(_gains(best, floor)) - bitwise
        if bitwise == n:
            verdict = "explained"
            summary = f"with {best.label}, this machine reproduces the {other} bit for bit in {n} of {n} differing cases"
        elif bitwise + within == n:
            verdict = "within_tolerance"
            summary = (f"with {best.label}, this machine comes within tolerance ({comparison.policy}) of the {other} "
                       f"in {n} of {n} differing cases ({bitwise} bit for bit)")
        else:
            verdict = "partly"
            summary = (f"with {best.label}, this machine reproduces the {other} in {bitwise + within} of {n} differing "
                       f"cases ({bitwise} bit for bit); the other {n - bitwise - within} are not explained by a "
                       "local setting")
    elif complete:
        verdict, summary = "unexplained", f"{UNEXPLAINED} (not explained by a local setting)"
    else:
        ran = sum(t.status == "done" for t in trials)
        verdict = "inconclusive"
        summary = (f"no setting tried within the budget explains it ({ran} of {len(trials)} settings ran); "
                   "run again with a larger --budget")
    rerun = set(differing)  # a cause's cases that were not re-run (own ones declared nowhere here) prove nothing
    causes = tuple(_mark(c.rule, c.title, [k for k in c.cases if k in rerun] if c.cases else differing, trials, knobs,
                         floor, bool(c.cases)) for c in comparison.causes)
    confirmed = {c.rule for c in causes if c.status == "confirmed"}
    remaining = tuple(c.text for c in comparison.env.numerics
                      if not any(r.id in confirmed and r.matches(c.key) for r in FIELD_RULES))
    return Explanation(
        baseline=comparison.baseline.run_id, candidate=comparison.candidate.run_id, this_side=this_side,  # type: ignore[arg-type]
        policy=str(comparison.policy), differing=tuple(differing), verdict=verdict, summary=summary,
        trials=tuple(trials), knobs=tuple(knobs), causes=causes,
        remaining=remaining if verdict not in ("explained", "nothing_differs") else (),
        skipped=tuple(skipped), budget=budget, seconds=seconds, complete=complete,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"), best=best, own=tuple(own),
    )


_RANK = {"missing": 0, "weights_differ": 0, "inputs_differ": 0, "differs": 1, "within": 2, "bitwise": 3}


def _gains(trial: TrialResult, floor: dict[CaseKey, str], keys: Sequence[CaseKey] | None = None) -> list[CaseKey]:
    """Cases a setting brings to the other run: bit for bit, or within tolerance where the unmodified re-run was not."""
    return [c.key for c in trial.cases if (keys is None or c.key in keys) and c.match in ("bitwise", "within")
            and _RANK[c.match] > _RANK.get(floor.get(c.key, "differs"), 1)]


def _mark(rule: str, title: str, cases: Sequence[CaseKey], trials: Sequence[TrialResult],
          knobs: Sequence[KnobStatus], floor: dict[CaseKey, str], named: bool = False) -> CauseMark:
    wanted = RULE_KNOBS.get(rule)
    if not wanted:
        return CauseMark(rule, title, "untested", "no setting of this machine can test it")
    if named and not cases:  # it named cases, none of them re-run
        return CauseMark(rule, title, "untested", "none of its cases was re-run here")
    tried = [t for t in trials[1:] if t.status == "done" and set(t.knobs) & set(wanted)]
    if not tried:
        why = [k.reason or k.status.replace("_", " ") for k in knobs if k.knob in wanted]
        return CauseMark(rule, title, "untested", "; ".join(why) or "not tried")
    best = max(tried, key=lambda t: (len(_gains(t, floor, cases)), -len(t.settings)))
    hits = _gains(best, floor, cases)
    if hits:
        return CauseMark(rule, title, "confirmed",
                         f"with {best.label}, {len(hits)} of {len(cases)} of its cases match the other run")
    labels = ", ".join(dict.fromkeys(t.label for t in tried))
    return CauseMark(rule, title, "refuted", f"{labels} reproduced none of its {len(cases)} cases")
