"""How the store keeps each case's error against the float64 truth (``CaseResult.truth``).

The truth is per run (it holds the float64 pass's time, and the float64 pass
may differ in its last bits between machines whose outputs agree), so it does
not belong to the content-addressed outcomes. It is kept in the run's
``settings`` JSON under one reserved key, a list aligned with the run's case
positions (``null`` where a case has none), so:

- no column or migration is needed, and both write paths (direct inserts and
  PostgreSQL's ``driftboard_push_run``) store it as they store the settings;
- a run without any truth (an older bundle, ``--no-truth``) is stored exactly
  as before;
- reading it back checks it as a bundle's manifest is checked, and the run's
  settings come back as captured, without the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from driftboard.core.bundle import truth_from_json
from driftboard.core.errors import BundleError, StoreError
from driftboard.core.run import CaseResult, Run

TRUTH_KEY = "driftboard:truth"


def refuse_reserved(run: Run) -> None:
    """A bundle may not bring the key itself: its value would be read back as truth."""
    if TRUTH_KEY in run.settings:
        raise BundleError(f"run.settings.{TRUTH_KEY}", "is reserved for the store")


def stored_settings(run: Run) -> dict[str, Any]:
    """The settings column of ``run``: its settings, with the cases' truth when any case has one."""
    if all(case.truth is None for case in run.cases):
        return run.settings
    return {**run.settings, TRUTH_KEY: [case.truth.to_json() if case.truth is not None else None
                                        for case in run.cases]}


def split(settings: dict[str, Any] | None) -> tuple[dict[str, Any], list[Any] | None]:
    """(the run's own settings, the stored truth list or None)."""
    if not isinstance(settings, dict) or TRUTH_KEY not in settings:
        return settings or {}, None
    rest = {k: v for k, v in settings.items() if k != TRUTH_KEY}
    return rest, settings[TRUTH_KEY]


def with_truth(cases: Sequence[CaseResult], stored: list[Any] | None) -> tuple[CaseResult, ...]:
    """The cases (in position order) with their truth read back from the stored list."""
    if stored is None:
        return tuple(cases)
    if not isinstance(stored, list) or len(stored) != len(cases):
        raise StoreError("the float64 truth of a stored run is corrupt in the database (not one entry per case)")
    try:
        return tuple(replace(case, truth=truth_from_json(entry, f"cases[{i}].truth"))
                     for i, (case, entry) in enumerate(zip(cases, stored, strict=True)))
    except BundleError as exc:
        raise StoreError(f"the float64 truth of a stored run is corrupt in the database: {exc}") from None
