"""A ``driftboard explain`` finding built by hand (no re-run), for the tests that store or send one."""

from __future__ import annotations

from driftboard.core.explain.knobs import Setting
from driftboard.core.explain.result import CaseMatch, CauseMark, Explanation, KnobStatus, TrialResult

CASE = ("linear_1024", "cpu", "float32")


def explanation(baseline: str, candidate: str, verdict: str = "explained") -> Explanation:
    """oneDNN off on this machine (the baseline's) reproduces the candidate in its one differing case."""
    setting = Setting("onednn", "onednn-off", "torch.backends.mkldnn.enabled = False")
    trials = (TrialResult("default", (), "done", 1.5, (CaseMatch(CASE, "differs"),)),
              TrialResult("onednn-off", (setting,), "done", 1.7, (CaseMatch(CASE, "bitwise", moved=True),)))
    return Explanation(baseline, candidate, "baseline", "default", (CASE,), verdict,
                       f"with `{setting.code}`, this machine reproduces the candidate bit for bit in 1 of 1 cases",
                       trials, (KnobStatus("onednn", "tested"),),
                       (CauseMark("onednn", "oneDNN", "confirmed", "its setting reproduces the other run"),),
                       budget=60.0, seconds=3.2, created_at="2026-11-30T23:50:00+00:00", best=trials[1])
