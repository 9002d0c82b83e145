"""The verdict of one case, ordered by how much it should worry a team."""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """What comparing one case found; the value is the word shown to users.

    Members are declared from least to most severe: ``severity`` is that
    position, so ``max(verdicts, key=severity)`` is the one to show first.
    """

    IDENTICAL = "identical"
    WITHIN_TOLERANCE = "within tolerance"
    MISSING_IN_BASELINE = "missing in baseline"
    INPUTS_DIFFER = "inputs differ"
    MISSING_IN_CANDIDATE = "missing in candidate"
    DRIFT = "drift"
    NONFINITE_MISMATCH = "non-finite mismatch"
    DTYPE_MISMATCH = "dtype mismatch"
    SHAPE_MISMATCH = "shape mismatch"
    ERROR = "error"

    @property
    def severity(self) -> int:
        return _ORDER[self]

    @property
    def changed(self) -> bool:
        """The outputs were compared and are not bitwise identical."""
        return self in (Verdict.WITHIN_TOLERANCE, Verdict.DRIFT, Verdict.NONFINITE_MISMATCH)

    def crosses(self, fail_on: str) -> bool:
        """Whether this verdict fails a gate of level ``fail_on`` (see ``FAIL_ON``)."""
        threshold = FAIL_ON[fail_on]
        return threshold is not None and self.severity >= threshold.severity

    def __str__(self) -> str:
        return self.value


_ORDER = {verdict: i for i, verdict in enumerate(Verdict)}

# --fail-on level -> least severe verdict that fails it. "drift" fails on a
# numerical change beyond the policy and on anything that keeps a case from
# being judged on the candidate (missing, error, shape/dtype); "inputs differ"
# and a case new in the candidate only fail "any-change".
FAIL_ON: dict[str, Verdict | None] = {
    "drift": Verdict.MISSING_IN_CANDIDATE,
    "any-change": Verdict.WITHIN_TOLERANCE,
    "never": None,
}
