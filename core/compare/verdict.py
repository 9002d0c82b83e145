"""The verdict of one case, ordered by how much it should worry a team, and how each one looks.

``Verdict`` says what comparing one case found; ``VerdictStyle`` (next to it,
one per member) is the only definition of how a verdict is shown: its word,
a one-line meaning, a fill colour and an icon. The CLI, the dashboard and the
HTML report all read it, so a verdict looks the same in every shell.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    def style(self) -> VerdictStyle:
        """How this verdict is shown everywhere: word, meaning, colour, icon."""
        return VERDICT_STYLES[self]

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


@dataclass(frozen=True)
class VerdictStyle:
    """How one verdict looks: its word, what it means, a fill colour (``#rrggbb``) and an icon.

    A verdict is never shown by colour alone: every shell shows the word (the
    dashboard and the HTML report with the icon before it), so colour-blind
    readers and plain-text logs lose nothing.
    """

    word: str
    meaning: str
    colour: str
    icon: str

    @property
    def text_colour(self) -> str:
        """Black or white: whichever reads better on ``colour``."""
        return text_colour_on(self.colour)

    @property
    def label(self) -> str:
        """Icon and word, e.g. ``✗ drift``: what a table cell or chip shows."""
        return f"{self.icon} {self.word}"


def text_colour_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background`` (``#rrggbb``), per WCAG."""
    r, g, b = (int(background[i : i + 2], 16) / 255 for i in (1, 3, 5))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)
    # contrast with black: (L + 0.05) / 0.05; with white: 1.05 / (L + 0.05)
    return "#000000" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "#ffffff"


# Okabe-Ito's colour-blind-safe palette, with two of Paul Tol's for the rarest verdicts.
_LOOKS: dict[Verdict, tuple[str, str, str]] = {  # meaning, colour, icon
    Verdict.IDENTICAL: ("bitwise identical outputs", "#009E73", "✓"),
    Verdict.WITHIN_TOLERANCE: ("bits differ, every element within the policy", "#56B4E9", "≈"),
    Verdict.MISSING_IN_BASELINE: ("the case ran on the candidate only", "#BBBBBB", "+"),
    Verdict.INPUTS_DIFFER: ("inputs or weights differ: compute not judged", "#F0E442", "≠"),
    Verdict.MISSING_IN_CANDIDATE: ("the case ran on the baseline only", "#E69F00", "∅"),
    Verdict.DRIFT: ("elements beyond the policy's tolerance", "#D55E00", "✗"),
    Verdict.NONFINITE_MISMATCH: ("NaN/Inf on one side only", "#CC79A7", "⚠"),
    Verdict.DTYPE_MISMATCH: ("output dtypes differ", "#0072B2", "⊘"),
    Verdict.SHAPE_MISMATCH: ("output shapes differ", "#332288", "⊘"),
    Verdict.ERROR: ("the case failed on one side", "#882255", "‼"),
}
VERDICT_STYLES: dict[Verdict, VerdictStyle] = {v: VerdictStyle(v.value, *_LOOKS[v]) for v in Verdict}

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
