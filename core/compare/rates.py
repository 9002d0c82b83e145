"""Drift rate by field value across many runs: which setting always coincides with drift.

Given, for many runs, the run's fingerprint and whether it drifted against
the golden, each numerics-relevant field gets the drift rate of every value it
took. A field whose values split the runs into "always drifts" and "never
drifts" has a large ``separation`` and is listed first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from driftboard.core import fields


@dataclass(frozen=True)
class ValueRate:
    value: Any  # the field's value; None when the field is absent from a fingerprint
    runs: int
    drifted: int

    @property
    def rate(self) -> float:
        return self.drifted / self.runs if self.runs else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "runs": self.runs, "drifted": self.drifted, "rate": self.rate}


@dataclass(frozen=True)
class FieldRates:
    key: str
    label: str
    values: tuple[ValueRate, ...]  # highest rate first

    @property
    def separation(self) -> float:
        """Highest minus lowest drift rate among the values (0 for a single value)."""
        rates = [v.rate for v in self.values]
        return max(rates) - min(rates) if rates else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "separation": self.separation,
            "values": [v.to_json() for v in self.values],
        }


def drift_rates(observations: Iterable[tuple[dict[str, Any], bool]]) -> tuple[FieldRates, ...]:
    """Per numerics field, the drift rate of each value; most separating fields first.

    ``observations`` are (fingerprint, drifted) pairs, one per run.
    """
    runs = [(fields.flatten(fp or {}), bool(drifted)) for fp, drifted in observations]
    keys = {key for flat, _ in runs for key in flat if fields.is_numerics(key)}
    out = []
    for key in keys:
        groups: dict[str, list[Any]] = {}  # canonical value -> [value, runs, drifted]
        for flat, drifted in runs:
            value = flat.get(key)
            group = groups.setdefault(json.dumps(value, sort_keys=True, default=str), [value, 0, 0])
            group[1] += 1
            group[2] += drifted
        values = sorted((ValueRate(*g) for g in groups.values()), key=lambda v: (-v.rate, -v.runs, str(v.value)))
        field = fields.field_for(key)
        out.append(FieldRates(key, field.label if field else key, tuple(values)))
    out.sort(key=lambda f: (-f.separation, fields.rank(f.key), f.key))
    return tuple(out)
