"""Structured difference of two environment fingerprints.

Both fingerprints are flattened to dotted keys (``core.fields.flatten``);
every leaf that changed, appeared or disappeared is one ``EnvChange``. Changes
to fields that can change numbers come first, in the registry's order (most
likely cause of drift first); informational ones (hostname, paths, memory,
labels, unregistered keys) follow.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from driftboard.core import fields
from driftboard.core.fingerprint.versions import cudnn_version

ChangeKind = Literal["changed", "added", "removed"]


@dataclass(frozen=True)
class EnvChange:
    """One fingerprint leaf that differs; ``added`` is on the candidate only, ``removed`` on the baseline only."""

    key: str
    kind: ChangeKind
    baseline: Any
    candidate: Any
    numerics: bool
    label: str

    @property
    def text(self) -> str:
        """``label: old → new`` in a few words."""
        if self.kind == "added":
            return f"{self.label}: added {display(self.candidate, key=self.key)}"
        if self.kind == "removed":
            return f"{self.label}: removed (was {display(self.baseline, key=self.key)})"
        old, new = shown_pair(self)
        return f"{self.label} {old} → {new}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "numerics": self.numerics,
            "label": self.label,
            "text": self.text,
        }


@dataclass(frozen=True)
class EnvDiff:
    changes: tuple[EnvChange, ...]  # numerics-relevant first, then informational

    @property
    def numerics(self) -> tuple[EnvChange, ...]:
        return tuple(c for c in self.changes if c.numerics)

    @property
    def informational(self) -> tuple[EnvChange, ...]:
        return tuple(c for c in self.changes if not c.numerics)

    @property
    def identical(self) -> bool:
        """No numerics-relevant field differs (informational changes allowed)."""
        return not self.numerics

    def get(self, key: str) -> EnvChange | None:
        return next((c for c in self.changes if c.key == key), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "numerics_identical": self.identical,
            "changes": [c.to_json() for c in self.changes],
        }


def diff_environments(baseline_fp: dict[str, Any], candidate_fp: dict[str, Any]) -> EnvDiff:
    """Changed, added and removed fingerprint leaves, numerics-relevant first.

    An imported ``collect_env`` report knows only part of a fingerprint: a key
    it lacks is unknown there, not removed, so it is left out of the diff, and
    the importer's own bookkeeping (``collect_env.*``, ``source.*``) is not an
    environment fact.
    """
    old = _comparable(baseline_fp)
    new = _comparable(candidate_fp)
    partial_old, partial_new = _is_imported(baseline_fp), _is_imported(candidate_fp)
    changes = []
    for key in old.keys() | new.keys():
        if (key not in new and partial_new) or (key not in old and partial_old):
            continue
        if key not in new:
            kind: ChangeKind = "removed"
        elif key not in old:
            kind = "added"
        elif _canonical(old[key]) == _canonical(new[key]):
            continue
        else:
            kind = "changed"
        field = fields.field_for(key)
        label = field.label if field else key
        changes.append(EnvChange(key, kind, old.get(key), new.get(key), fields.is_numerics(key), label))
    changes.sort(key=lambda c: (not c.numerics, fields.rank(c.key), _natural(c.key)))
    return EnvDiff(tuple(changes))


_IMPORT_SECTIONS = ("collect_env", "source")


def _is_imported(fp: dict[str, Any] | None) -> bool:
    return isinstance(fp, dict) and isinstance(fp.get("source"), dict) and fp["source"].get("kind") == "collect_env"


def _comparable(fp: dict[str, Any] | None) -> dict[str, Any]:
    fp = fp or {}
    if _is_imported(fp):
        fp = {k: v for k, v in fp.items() if k not in _IMPORT_SECTIONS}
    return fields.flatten(fp)


def _canonical(value: Any) -> str:
    # JSON text tells True from 1 and 1 from 1.0, which == does not.
    return json.dumps(value, sort_keys=True, default=str)


def _natural(key: str) -> tuple[Any, ...]:
    """``gpu.devices[2]`` before ``gpu.devices[10]``: digit runs compare as numbers."""
    return tuple(int(t) if i % 2 else t for i, t in enumerate(_DIGITS.split(key)))


_DIGITS = re.compile(r"(\d+)")


def display(value: Any, limit: int = 60, key: str = "") -> str:
    """A fingerprint value as people write it, in at most ``limit`` characters.

    ``–`` for unknown, yes/no for flags, cuDNN's 91002 as 9.10.2, lists as
    comma-separated values; anything else as compact JSON.
    """
    text = " ".join(_written(value, key).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _written(value: Any, key: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in _CUDNN_KEYS and isinstance(value, int) and value > 0:
        return cudnn_version(value)
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return ", ".join(map(str, value))
    return json.dumps(value, sort_keys=True, default=str)


_CUDNN_KEYS = frozenset({"gpu.cudnn", "gpu.system_cudnn"})


def shown_pair(change: EnvChange, limit: int = 60) -> tuple[str, str]:
    """Baseline and candidate of a change for a table cell: as written, and for long values only what differs.

    Two long values that share a prefix (a build configuration, a flag list)
    would be cut to the same text; instead each side shows its differing
    lines or items, with ``…`` where the shared ones were left out.
    """
    old = "–" if change.kind == "added" else _written(change.baseline, change.key)
    new = "–" if change.kind == "removed" else _written(change.candidate, change.key)
    if change.kind == "changed" and max(len(old), len(new)) > limit:
        old, new = _differing_parts(old, new)
    return display(old, limit), display(new, limit)


def _differing_parts(old: str, new: str) -> tuple[str, str]:
    """Each side's lines (or comma- or space-separated items) that the other lacks, in order."""
    if "\n" in old + new:
        pattern, joiner = r"\s*\n\s*", "; "
    elif "," in old + new:
        pattern, joiner = r"\s*[,;]\s*", ", "
    else:
        pattern, joiner = r"\s+", " "
    a = [p for p in re.split(pattern, old.strip()) if p]
    b = [p for p in re.split(pattern, new.strip()) if p]
    left: list[str] = []
    right: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag != "equal":
            left += a[i1:i2]
            right += b[j1:j2]
    return _elided(left, len(a), joiner), _elided(right, len(b), joiner)


def _elided(parts: list[str], total: int, joiner: str) -> str:
    if not parts:
        return "(absent)"
    text = joiner.join(parts)
    return f"… {text} …" if len(parts) < total else text
