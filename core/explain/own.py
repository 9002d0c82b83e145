"""The team's own cases in ``driftboard explain``: which differing ones this machine can re-run.

A recorded own case keeps where its factory lived (``OwnResult.source``), not
the factory: explain finds it again among the cases this machine declares,
exactly as ``capture`` finds them (``--model``, ``--cases``, else the cases
file in the current directory or at the repository root), and matches it by
name. A differing case declared nowhere here is skipped with a line naming its
recorded source and the option that would declare it. The re-run children get
the same declarations, so they run the very factories found here.

Finding them imports the user's cases file, hence torch: that happens only
when an own case differs, so explaining the reference suite alone never pays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from driftboard.core.explain.result import CaseKey
from driftboard.core.run import CaseResult


@dataclass(frozen=True)
class OwnCases:
    """How this machine declares the team's own cases: what ``capture --model`` and ``--cases`` take."""

    models: tuple[str, ...] = ()  # path/to/file.py:factory or package.module:factory
    cases_file: str | None = None  # None: the cases file capture would find by itself, if any


@dataclass(frozen=True)
class OwnPlan:
    """The differing own cases to re-run, how a child declares them, and those skipped."""

    keys: tuple[CaseKey, ...] = ()
    sources: tuple[tuple[CaseKey, str], ...] = ()  # each re-run case and where its factory lives here
    names: tuple[str, ...] = ()  # the factories' case names, for ``capture --case``
    args: tuple[str, ...] = ()  # ``--cases``/``--model`` for the child, resolved here
    skipped: tuple[str, ...] = ()  # one line per case declared nowhere here


def plan_own(cases: Sequence[CaseResult], declared: OwnCases) -> OwnPlan:
    """Which of ``cases`` (this machine's recorded own cases that differ) are declared here."""
    if not cases:
        return OwnPlan()
    from driftboard.core import own_cases, own_training
    from driftboard.core.capture import CaptureOptions, own_specs

    path = Path(declared.cases_file) if declared.cases_file else own_cases.find_cases_file()
    specs = own_specs(CaptureOptions(suite="all", models=declared.models, discover_cases=False,
                                     cases_file=str(path) if path else None))
    here = {spec.name: spec.source for spec in specs}
    keys, sources, names, skipped = [], [], [], []
    for case in cases:
        name = case.case_id
        if case.training is not None and name.endswith(own_training.SUFFIX):
            name = name.removesuffix(own_training.SUFFIX)  # the training record of the factory's case
        if name in here:
            keys.append(case.key)
            sources.append((case.key, here[name]))
            names.append(name)
            continue
        recorded = case.own.source if case.own is not None else "?"
        skipped.append(f"{'/'.join(case.key)}: an own-model case not declared here (recorded from {recorded}): "
                       f"pass --model {recorded}, or --cases with the file that declares {name!r}")
    args = ([f"--cases={path.resolve()}"] if path is not None else []) + [f"--model={m}" for m in declared.models]
    return OwnPlan(tuple(keys), tuple(sources), tuple(dict.fromkeys(names)), tuple(args) if keys else (),
                   tuple(skipped))
