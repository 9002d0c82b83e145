"""``driftboard explain``: which setting of this machine reproduces the other run.

The planning (``knobs``), the matching (``match``), the finding (``conclude``)
and its JSON (``result``) import no torch, so the store and the dashboard read
stored explanations; ``rerun`` starts the capture child processes, and ``own``
finds the team's own cases this machine declares (importing its cases file).
"""

from __future__ import annotations

from driftboard.core.explain.knobs import KNOB_TITLES, Plan, Setting, Trial, plan
from driftboard.core.explain.result import (
    FORMAT,
    UNEXPLAINED,
    CauseMark,
    Explanation,
    KnobStatus,
    TrialResult,
    command_line,
)

__all__ = ["FORMAT", "KNOB_TITLES", "UNEXPLAINED", "CauseMark", "Explanation", "KnobStatus", "Plan", "Setting", "Trial",
           "TrialResult", "command_line", "plan"]
