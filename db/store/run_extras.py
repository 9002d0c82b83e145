"""What the store keeps per case but per run: the float64 truth and the repeat spread, in the settings JSON.

Both belong to one capture, not to its outputs (the float64 pass holds its own
time and may differ in its last bits between machines whose outputs agree; a
spread is timing-like), so neither goes into the content-addressed outcomes.
Each lives in the run's ``settings`` JSON under one reserved key, a list
aligned with the run's case positions (``null`` where a case has none), so:

- no column or migration is needed, and both write paths (direct inserts and
  PostgreSQL's ``driftboard_push_run``) store them as they store the settings;
- a run without any (an older bundle, ``--no-truth``) is stored exactly as before;
- reading them back checks them as a bundle's manifest is checked, and the
  run's settings come back as captured, without the keys;
- a bundle may not bring a key itself: its value would be read back as ours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from driftboard.core.bundle import repeat_spread_from_json, truth_from_json
from driftboard.core.errors import BundleError, StoreError
from driftboard.core.run import CaseResult, Run


@dataclass(frozen=True)
class RunExtra:
    """One per-case value kept under ``key``: the ``CaseResult`` field it fills and how it is read back."""

    key: str
    field: str
    read: Callable[[Any, str], Any]  # (stored entry, its path for errors) -> the value; BundleError if bad
    what: str  # for errors: "the float64 truth of a stored run is"

    def refuse_reserved(self, run: Run) -> None:
        if self.key in run.settings:
            raise BundleError(f"run.settings.{self.key}", "is reserved for the store")

    def add(self, run: Run, settings: dict[str, Any]) -> dict[str, Any]:
        values = [getattr(case, self.field) for case in run.cases]
        if all(value is None for value in values):
            return settings
        return {**settings, self.key: [value.to_json() if value is not None else None for value in values]}

    def attach(self, cases: Sequence[CaseResult], stored: list[Any] | None) -> tuple[CaseResult, ...]:
        if stored is None:
            return tuple(cases)
        if not isinstance(stored, list) or len(stored) != len(cases):
            raise StoreError(f"{self.what} corrupt in the database (not one entry per case)")
        try:
            return tuple(replace(case, **{self.field: self.read(entry, f"cases[{i}].{self.field}")})
                         for i, (case, entry) in enumerate(zip(cases, stored, strict=True)))
        except BundleError as exc:
            raise StoreError(f"{self.what} corrupt in the database: {exc}") from None


TRUTH = RunExtra("driftboard:truth", "truth", truth_from_json, "the float64 truth of a stored run is")
SPREAD = RunExtra("driftboard:repeat_spread", "repeat_spread", repeat_spread_from_json,
                  "the repeat spreads of a stored run are")
EXTRAS = (TRUTH, SPREAD)


def refuse_reserved(run: Run) -> None:
    for extra in EXTRAS:
        extra.refuse_reserved(run)


def stored_settings(run: Run) -> dict[str, Any]:
    """The settings column of ``run``: its settings, with each extra that any case has."""
    settings = run.settings
    for extra in EXTRAS:
        settings = extra.add(run, settings)
    return settings


def captured_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """A settings column as the run was captured: without the extras' keys."""
    if not isinstance(settings, dict):
        return {}
    return {k: v for k, v in settings.items() if k not in {extra.key for extra in EXTRAS}}


def with_extras(cases: Sequence[CaseResult], settings: dict[str, Any] | None) -> tuple[CaseResult, ...]:
    """The cases (in position order) with each extra read back from the run's settings column."""
    out = tuple(cases)
    for extra in EXTRAS:
        out = extra.attach(out, settings.get(extra.key) if isinstance(settings, dict) else None)
    return out
