"""How the store keeps each case's repeat spread (``CaseResult.repeat_spread``), beside ``truth_store``.

The spread is per run (timing-like: the same outputs can come with another
spread), so it does not belong to the content-addressed outcomes. As the
float64 truth, it lives in the run's ``settings`` JSON under one reserved key,
a list aligned with the case positions (``null`` where a case has none): no
column or migration, both write paths (direct inserts and PostgreSQL's
``driftboard_push_run``) store it as they store the settings, a run without
any spread is stored exactly as before, and reading it back checks it as the
bundle reader does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from driftboard.core.errors import BundleError, StoreError
from driftboard.core.run import CaseResult, Run

SPREAD_KEY = "driftboard:repeat_spread"


def refuse_reserved(run: Run) -> None:
    """A bundle may not bring the key itself: its value would be read back as spreads."""
    if SPREAD_KEY in run.settings:
        raise BundleError(f"run.settings.{SPREAD_KEY}", "is reserved for the store")


def stored_settings(run: Run, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` (as the truth store made them) with the cases' spreads when any case has one."""
    if all(case.repeat_spread is None for case in run.cases):
        return settings
    return {**settings, SPREAD_KEY: [case.repeat_spread.to_json() if case.repeat_spread is not None else None
                                     for case in run.cases]}


def split(settings: dict[str, Any] | None) -> tuple[dict[str, Any], list[Any] | None]:
    """(the settings without the key, the stored spread list or None)."""
    if not isinstance(settings, dict) or SPREAD_KEY not in settings:
        return settings or {}, None
    return {k: v for k, v in settings.items() if k != SPREAD_KEY}, settings[SPREAD_KEY]


def with_spread(cases: Sequence[CaseResult], stored: list[Any] | None) -> tuple[CaseResult, ...]:
    """The cases (in position order) with their spread read back from the stored list."""
    from driftboard.core.bundle import repeat_spread_from_json

    if stored is None:
        return tuple(cases)
    if not isinstance(stored, list) or len(stored) != len(cases):
        raise StoreError("the repeat spreads of a stored run are corrupt in the database (not one entry per case)")
    try:
        return tuple(replace(case, repeat_spread=repeat_spread_from_json(entry, f"cases[{i}].repeat_spread"))
                     for i, (case, entry) in enumerate(zip(cases, stored, strict=True)))
    except BundleError as exc:
        raise StoreError(f"the repeat spreads of a stored run are corrupt in the database: {exc}") from None
