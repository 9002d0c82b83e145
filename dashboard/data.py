"""What the pages compute from the store, without Streamlit: the drift matrix and run choices.

Everything goes through ``db.store.Store`` and ``core.compare``; the pages
cache the results (``dashboard.state``) and only lay them out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from driftboard.core.compare import compare_runs, parse_policy
from driftboard.core.errors import NotFoundError
from driftboard.core.run import Run
from driftboard.dashboard.format import case_key_text, fmt_abs, fmt_count, fmt_rel, fmt_time, fmt_ulp, safe_text
from driftboard.db.store import Golden, RunFilter, RunSummary, Store

# ---------------------------------------------------------------- naming runs


def run_name(run: RunSummary) -> str:
    """One line naming a run for a select box: host, label, time, variant and id (plain text)."""
    parts = [machine_name(run)]
    if run.label:
        parts.append(run.label)
    parts.append(fmt_time(run.captured_at))
    if run.variant and run.variant != "default":
        parts.append(run.variant)
    if run.imported:
        parts.append("environment only")
    return safe_text(" · ".join(parts), 120) + f"  [{run.run_id}]"


def run_choices(store: Store, search: str = "", extra: Sequence[str] = (), limit: int = 300) -> dict[str, str]:
    """Run id -> display name: goldens first, then ``extra`` ids, then the newest runs (or those matching
    ``search``: a label substring, a hostname or machine key, or a run id prefix)."""
    found: dict[str, RunSummary] = {}

    def add(run: RunSummary) -> None:
        found.setdefault(run.run_id, run)

    for golden in store.goldens():
        _add_if_found(store, golden.run_id, add)
    for run_id in extra:
        _add_if_found(store, run_id, add)
    search = search.strip()
    if search:
        _add_if_found(store, search, add)
        for filters in (RunFilter(label=search), RunFilter(machine=search)):
            for run in store.runs(filters, per_page=limit).runs:
                add(run)
    else:
        for run in store.runs(per_page=limit).runs:
            add(run)
    return {run_id: run_name(run) for run_id, run in found.items()}


def _add_if_found(store: Store, run_id: str, add: Callable[[RunSummary], None]) -> None:
    with contextlib.suppress(NotFoundError):  # unknown or ambiguous id: nothing to add
        add(store.run(run_id))


def default_golden(store: Store, candidate: str | None = None) -> Golden | None:
    """The golden that applies to ``candidate`` (same suite version and device class), else the first one."""
    if candidate:
        try:
            golden = store.golden_for(candidate)
        except NotFoundError:
            golden = None
        if golden is not None:
            return golden
    goldens = store.goldens("default")
    return goldens[0] if goldens else None


# ---------------------------------------------------------------- drift matrix


@dataclass(frozen=True)
class MatrixData:
    """Runs × cases against one baseline: verdict words and hover figures per cell (None: no result)."""

    baseline: str
    run_ids: tuple[str, ...]
    run_labels: tuple[str, ...]
    case_keys: tuple[str, ...]  # "case/device/dtype"
    verdicts: tuple[tuple[str | None, ...], ...]
    hovers: tuple[tuple[str | None, ...], ...]
    without_cases: tuple[str, ...] = ()  # runs left out: environment only, nothing to compare
    magnitudes: tuple[tuple[float | None, ...], ...] = ()  # max ULP per cell (None: no figure, e.g. missing)
    case_kinds: tuple[str, ...] = ()  # per column: "suite", or "own" for a case of the team's own models
    case_sources: tuple[str, ...] = ()  # per column: where an own case's factory lives ("" for suite cases)

    @property
    def empty(self) -> bool:
        return not self.run_ids or not self.case_keys

    def kind(self, column: int) -> str:
        return self.case_kinds[column] if column < len(self.case_kinds) else "suite"

    @property
    def case_labels(self) -> tuple[str, ...]:
        """Column labels: an own case's key after ``own ·``, so it never passes for a suite case."""
        return tuple(f"{OWN_PREFIX}{key}" if self.kind(i) == "own" else key for i, key in enumerate(self.case_keys))

    @property
    def case_groups(self) -> tuple[str, ...]:
        """Column group headings: the reference suite's cases, then the team's own."""
        return tuple(CASE_GROUPS[self.kind(i)] for i in range(len(self.case_keys)))

    @property
    def case_notes(self) -> tuple[str | None, ...]:
        """A hover line per column saying what an own case is and where it comes from."""
        return tuple(own_case_note(self.case_sources[i] if i < len(self.case_sources) else "")
                     if self.kind(i) == "own" else None for i in range(len(self.case_keys)))

    @property
    def own_columns(self) -> int:
        return sum(self.kind(i) == "own" for i in range(len(self.case_keys)))


OWN_PREFIX = "own · "
CASE_GROUPS = {"suite": "reference suite", "own": "your own models"}


def own_case_note(source: str) -> str:
    """What an own column is, in words (``source`` is user text: the chart escapes it)."""
    return ("a case of the team's own models" + (f", from {safe_text(source, 120)}" if source else "")
            + ", not of the reference suite")


def matrix_data(store: Store, baseline: str, runs: Sequence[tuple[str, str]], policy: str = "default") -> MatrixData:
    """Every case of each run in ``runs`` ((run id, row label) pairs) compared with ``baseline``.

    The matrix shows case verdicts only, so the environments are left out of
    the comparison (the fingerprint diff is a third of its time); arrays are
    read only where digests differ, one query per run.
    """
    rule = None if policy == "default" else parse_policy(policy)
    base_run, arrays = store.load_run(baseline)
    base = replace(base_run, fingerprint={})
    base_refs = {case.key: case for case in base.cases}
    rows: list[tuple[str, str, dict[tuple[str, str, str], Any]]] = []
    without: list[str] = []
    sources = {case.key: case.own.source for case in base.cases if case.own is not None}
    for run_id, label in runs:
        run, _ = store.load_run(run_id)
        if not run.cases:
            without.append(run_id)
            continue
        for case in run.cases:
            if case.own is not None:
                sources.setdefault(case.key, case.own.source)
        _prefetch_differing(arrays, base_refs, run)
        result = compare_runs(base, arrays, replace(run, fingerprint={}), arrays, rule)
        rows.append((run_id, label, {case.key: case for case in result.cases}))
    keys = [case.key for case in base.cases]
    seen = set(keys)
    for _, _, cases in rows:
        for key in cases:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    keys.sort(key=lambda k: k in sources)  # the suite's columns first, then the team's own (stable otherwise)
    verdicts, hovers, magnitudes = [], [], []
    for _, _, cases in rows:
        verdicts.append(tuple(cases[k].verdict.value if k in cases else None for k in keys))
        hovers.append(tuple(cell_figures(cases[k]) if k in cases else None for k in keys))
        magnitudes.append(tuple(_ulps(cases[k]) if k in cases else None for k in keys))
    return MatrixData(
        baseline=base.run_id,
        run_ids=tuple(r[0] for r in rows),
        run_labels=tuple(r[1] for r in rows),
        case_keys=tuple(case_key_text(k) for k in keys),
        verdicts=tuple(verdicts),
        hovers=tuple(hovers),
        without_cases=tuple(without),
        magnitudes=tuple(magnitudes),
        case_kinds=tuple("own" if k in sources else "suite" for k in keys),
        case_sources=tuple(sources.get(k, "") for k in keys),
    )


def _ulps(case: Any) -> float | None:
    """A cell's magnitude: its max ULP distance; None when the outputs were not compared element-wise."""
    m = case.metrics
    return None if m is None or m.ulp_max is None else float(m.ulp_max)


def _prefetch_differing(arrays: Any, base_refs: dict[tuple[str, str, str], Any], run: Run) -> None:
    shas: set[str] = set()
    for case in run.cases:
        other = base_refs.get(case.key)
        if other is None or case.output is None or other.output is None:
            continue
        if case.output.sha256 != other.output.sha256:
            shas.update(ref.sha256 for ref in case.refs())
            shas.update(ref.sha256 for ref in other.refs())
    if shas:
        arrays.prefetch(shas)


def cell_figures(case: Any) -> str:
    """The figures of one compared case, a few short lines of plain text."""
    m = case.metrics
    if m is None or (m.changed == 0 and not m.nonfinite_mismatch):
        return safe_text(case.detail, 200)
    lines = [
        f"max ULP {fmt_ulp(m.ulp_max, m.dtype)} (p99 {fmt_ulp(m.ulp_p99, m.dtype)})",
        f"max abs {fmt_abs(m.max_abs)}, max rel {fmt_rel(m.max_rel)}",
        f"mismatched {fmt_count(m.mismatched, m.n)}; changed {fmt_count(m.changed, m.n)}",
    ]
    if getattr(case, "kind", "suite") == "own" and case.first_divergent_layer:
        lines.append(safe_text(f"first divergent module {case.first_divergent_layer}", 200))
    return "\n".join(lines)


def comparable_runs(store: Store, baseline: RunSummary, filters: RunFilter, count: int,
                    max_pages: int = 20) -> list[RunSummary]:
    """The newest ``count`` runs matching ``filters`` that share the baseline's suite and device class
    (the baseline itself and runs without cases left out)."""
    found: list[RunSummary] = []
    for page_number in range(1, max_pages + 1):
        page = store.runs(filters, page=page_number, per_page=count)
        found += [r for r in page.runs if r.run_id != baseline.run_id and r.case_count
                  and (r.suite_id, r.suite_version, r.device_class)
                  == (baseline.suite_id, baseline.suite_version, baseline.device_class)]
        if len(found) >= count or page_number >= page.pages:
            break
    return found[:count]


def machine_name(run: RunSummary) -> str:
    """What a run's machine is called on the matrix axis: its hostname, else the start of its key."""
    return run.hostname or run.machine_key[:12]


def by_machine(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """The runs with each machine's runs adjacent, newest first within a machine; the machine seen most
    recently first (``runs`` come newest first, so machines keep the order of their newest run)."""
    order: dict[str, int] = {}
    for run in runs:
        order.setdefault(run.machine_key, len(order))
    return sorted(runs, key=lambda r: (order[r.machine_key], -r.captured_at.timestamp(), r.run_id))


def matrix_label(run: RunSummary, *, machine: bool = True) -> str:
    """A row label: host (unless the axis groups rows by machine), label and capture time (duplicates are
    fine: rows are indexed)."""
    parts = [machine_name(run) if machine else "", run.label, fmt_time(run.captured_at)]
    if run.variant and run.variant != "default":
        parts.append(run.variant)
    return safe_text(" · ".join(p for p in parts if p), 80)
