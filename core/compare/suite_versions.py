"""Two runs of different versions of the same suite: which cases can be compared, which are new.

A suite version adds cases and never changes the ones it keeps (the forward
cases of version 2 are those of version 1), so two versions of one suite
compare on the cases both runs have. A case id that only one run has anywhere
is attributed to the version difference: it is listed as new, not judged as
missing. Different suites share nothing but the team's own cases.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftboard.core.run import CaseResult, Run

CaseKey = tuple[str, str, str]


@dataclass(frozen=True)
class VersionSplit:
    baseline: dict[CaseKey, CaseResult]  # the cases to match, by key
    candidate: dict[CaseKey, CaseResult]
    new_cases: tuple[CaseKey, ...]  # only in the newer version's run, not compared
    note: str


def split_versions(baseline: Run, candidate: Run) -> VersionSplit | None:
    """For two versions of one suite, the comparable cases and the new ones; None when the suites are not one."""
    if baseline.suite_id != candidate.suite_id or baseline.suite_version == candidate.suite_version:
        return None
    newer, older = (candidate, baseline) if candidate.suite_version > baseline.suite_version else (baseline, candidate)
    known = {c.case_id for c in older.cases if c.own is None}
    new_keys = tuple(sorted(c.key for c in newer.cases if c.own is None and c.case_id not in known))
    dropped = {c.case_id for c in older.cases if c.own is None} - {c.case_id for c in newer.cases if c.own is None}
    skip = set(new_keys) | {c.key for c in older.cases if c.case_id in dropped and c.own is None}
    ids = sorted({key[0] for key in new_keys})
    note = (f"suite versions differ (baseline v{baseline.suite_version}, candidate v{candidate.suite_version}): "
            f"the cases both runs have are compared")
    if ids:
        note += f"; new in v{newer.suite_version}, not compared: {', '.join(ids)}"
    if dropped:
        note += f"; not in the v{newer.suite_version} run: {', '.join(sorted(dropped))}"
    return VersionSplit({c.key: c for c in baseline.cases if c.key not in skip},
                        {c.key: c for c in candidate.cases if c.key not in skip}, new_keys, note)
