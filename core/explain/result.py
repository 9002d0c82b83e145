"""What ``driftboard explain`` found, in words and as the ``driftboard.explanation`` JSON document.

A ``TrialResult`` is one fresh-process re-run of the differing cases under
one setting, each case matched against the other run's recorded outputs (bit
for bit, within the policy's tolerance, or not). ``Explanation`` picks the
setting that reproduces most cases, words the finding, and marks each likely
cause of the comparison confirmed, refuted or untested. It round-trips through
JSON, which is how it is stored and shown. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from driftboard.core.documents import FORMATS, document
from driftboard.core.explain.knobs import KNOB_TITLES, Setting, Trial

CaseKey = tuple[str, str, str]
Match = Literal["bitwise", "within", "differs", "missing", "weights_differ", "inputs_differ"]
# a re-run that built other weights or inputs than this machine recorded: never a match
NOT_BUILT_ALIKE = {"weights_differ": "weights differ here", "inputs_differ": "inputs differ here"}
TrialStatus = Literal["done", "failed", "not_run"]
VERDICTS = ("explained", "within_tolerance", "partly", "unexplained", "inconclusive", "nothing_differs",
            "not_reproducible")
UNEXPLAINED = "no setting of this machine explains it: hardware, driver or library versions differ"
FORMAT = "driftboard.explanation"

# likely-cause rule id -> the knobs that test it (core/compare/causes.py FIELD_RULES)
RULE_KNOBS: dict[str, tuple[str, ...]] = {
    "onednn": ("onednn",),
    "threads": ("threads",),
    "cpu_kernels": ("cpu_capability",),
    "rng": ("cpu_capability",),
    "tf32": ("tf32", "matmul_precision"),
    "determinism": ("deterministic_algorithms", "cudnn_deterministic", "cudnn_benchmark"),
}


@dataclass(frozen=True)
class CaseMatch:
    key: CaseKey
    match: Match
    moved: bool = False  # differs from the unmodified re-run of this machine

    def to_json(self) -> dict[str, Any]:
        return {"case": list(self.key), "match": self.match, "moved": self.moved}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseMatch:
        return cls(_key(data["case"]), data["match"], bool(data.get("moved", False)))


@dataclass(frozen=True)
class TrialResult(Trial):
    """A trial (its label and knobs are the trial's) and what its child process found."""

    status: TrialStatus
    seconds: float = 0.0
    cases: tuple[CaseMatch, ...] = ()
    error: str | None = None

    def count(self, *matches: str) -> int:
        return sum(c.match in matches for c in self.cases)

    @property
    def moved(self) -> bool:
        return any(c.moved for c in self.cases)

    def reproduces(self, keys: Sequence[CaseKey] | None = None) -> list[CaseKey]:
        """Cases brought to the other run bit for bit or within tolerance."""
        return [c.key for c in self.cases if c.match in ("bitwise", "within") and (keys is None or c.key in keys)]

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "settings": [s.to_json() for s in self.settings],
            "label": self.label,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "bitwise": self.count("bitwise"),
            "within_tolerance": self.count("within"),
            "moved": self.moved,
            "cases": [c.to_json() for c in self.cases],
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResult:
        return cls(str(data["variant"]), tuple(Setting.from_json(s) for s in data.get("settings", ())),
                   data["status"], float(data.get("seconds", 0.0)),
                   tuple(CaseMatch.from_json(c) for c in data.get("cases", ())), data.get("error"))


@dataclass(frozen=True)
class KnobStatus:
    knob: str
    status: Literal["tested", "not_applicable", "not_run", "not_needed"]
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "title": KNOB_TITLES.get(self.knob, self.knob), "status": self.status,
                "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KnobStatus:
        return cls(str(data["knob"]), data["status"], str(data.get("reason", "")))


@dataclass(frozen=True)
class CauseMark:
    """A likely cause of the comparison, and what the re-runs say about it."""

    rule: str
    title: str
    status: Literal["confirmed", "refuted", "untested"]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "title": self.title, "status": self.status, "reason": self.reason}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CauseMark:
        return cls(str(data["rule"]), str(data["title"]), data["status"], str(data["reason"]))


@dataclass(frozen=True)
class Explanation:
    baseline: str  # run ids
    candidate: str
    this_side: Literal["baseline", "candidate"]
    policy: str
    differing: tuple[CaseKey, ...]
    verdict: str
    summary: str
    trials: tuple[TrialResult, ...] = ()  # the unmodified re-run first
    knobs: tuple[KnobStatus, ...] = ()
    causes: tuple[CauseMark, ...] = ()
    remaining: tuple[str, ...] = ()  # environment differences no setting accounts for
    skipped: tuple[str, ...] = ()  # cases not re-run, and why
    budget: float | None = None
    seconds: float = 0.0
    complete: bool = True  # every planned setting ran (False: stopped by the budget)
    created_at: str = ""
    best: TrialResult | None = field(default=None, compare=False)
    own: tuple[tuple[CaseKey, str], ...] = ()  # the differing own-model cases re-run, each with its factory here

    def to_json(self) -> dict[str, Any]:
        return document(FORMAT, {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "this_machine": self.this_side,
            "policy": self.policy,
            "verdict": self.verdict,
            "summary": self.summary,
            "best": self.best.variant if self.best else None,
            "differing": [list(k) for k in self.differing],
            "own_cases": [{"case": list(k), "source": source} for k, source in self.own],
            "trials": [t.to_json() for t in self.trials],
            "knobs": [k.to_json() for k in self.knobs],
            "causes": [c.to_json() for c in self.causes],
            "remaining_differences": list(self.remaining),
            "skipped": list(self.skipped),
            "budget_seconds": self.budget,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
            "created_at": self.created_at,
        })

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Explanation:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > FORMATS[FORMAT]:
            raise ValueError(f"{FORMAT} schema_version {version!r} is newer than this driftboard reads "
                             f"({FORMATS[FORMAT]}): upgrade driftboard")
        trials = tuple(TrialResult.from_json(t) for t in data.get("trials", ()))
        best = next((t for t in trials if t.variant == data.get("best")), None)
        return cls(str(data["baseline"]), str(data["candidate"]), data["this_machine"], str(data["policy"]),
                   tuple(_key(k) for k in data.get("differing", ())), str(data["verdict"]), str(data["summary"]),
                   trials, tuple(KnobStatus.from_json(k) for k in data.get("knobs", ())),
                   tuple(CauseMark.from_json(c) for c in data.get("causes", ())),
                   tuple(map(str, data.get("remaining_differences", ()))), tuple(map(str, data.get("skipped", ()))),
                   data.get("budget_seconds"), float(data.get("seconds", 0.0)), bool(data.get("complete", True)),
                   str(data.get("created_at", "")), best,
                   tuple((_key(o["case"]), str(o["source"])) for o in data.get("own_cases", ())))

    def lines(self) -> list[str]:
        """The finding for a terminal or a page: summary, causes, then what was not tested."""
        out = [self.summary]
        out += [f"{c.title}: {c.status} ({c.reason})" for c in self.causes]
        out += [f"not applicable here: {KNOB_TITLES.get(k.knob, k.knob)} ({k.reason})"
                for k in self.knobs if k.status == "not_applicable"]
        out += [f"not run: {KNOB_TITLES.get(k.knob, k.knob)} ({k.reason})" for k in self.knobs if k.status == "not_run"]
        if self.own:
            out.append("own-model cases re-run: " + ", ".join(f"{'/'.join(k)} ({source})" for k, source in self.own))
        out += [f"not judged: {'/'.join(c.key)} under {t.label}: {NOT_BUILT_ALIKE[c.match]}"
                for t in self.trials for c in t.cases if c.match in NOT_BUILT_ALIKE]
        out += [f"not re-run: {line}" for line in self.skipped]
        return out


def _key(value: Sequence[Any]) -> CaseKey:
    case_id, device, dtype = (str(v) for v in value)
    return case_id, device, dtype


def command_line(baseline: str, candidate: str) -> str:
    """How to produce an explanation for a pair of stored runs (shown where none is stored)."""
    return f"driftboard explain {baseline} {candidate}"
