"""The store: the only way in and out of the database.

``Store`` is the front; each concern lives in its own module behind it:
``results`` (the frozen dataclasses every method returns; ORM rows never leave
``db/``), ``ingest`` (a validated bundle written in one transaction, all of it
or nothing, safe against concurrent writers), ``queries`` (runs, machines,
history), ``goldens``, ``verdicts`` (computed once, cached until the golden
changes), ``delete``, ``arrays`` (compression and reading arrays on demand)
and ``open_stores`` (stores kept open by a long-lived process, with a bound and
a lifetime). Each public method is one transaction.
"""

from __future__ import annotations

import atexit
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from driftboard.core.bundle import DEFAULT_LIMITS, Bundle, Limits, read_bounded, read_bundle
from driftboard.core.errors import NotFoundError
from driftboard.core.run import ArraySource, CaseResult, Run
from driftboard.db.migrate import ensure_schema
from driftboard.db.session import database_url, make_engine, redacted
from driftboard.db.store import delete as _delete
from driftboard.db.store import explanations as _explanations
from driftboard.db.store import fleet as _fleet
from driftboard.db.store import goldens as _goldens
from driftboard.db.store import ingest as _ingest
from driftboard.db.store import queries as _queries
from driftboard.db.store import repair as _repair
from driftboard.db.store import verdicts as _verdicts
from driftboard.db.store import write_log as _write_log

# _decompress, _outcome_row and _stored_form: the names older imports (tests) use, re-exported.
from driftboard.db.store.arrays import CODEC, DbArrays
from driftboard.db.store.arrays import decompress as _decompress  # noqa: F401
from driftboard.db.store.golden_runs import GoldenRuns
from driftboard.db.store.ingest import ENV_COLUMNS, _outcome_row, _stored_form, device_class  # noqa: F401
from driftboard.db.store.open_stores import OpenStores
from driftboard.db.store.queries import MAX_PER_PAGE, PER_PAGE
from driftboard.db.store.repair import ArrayRepair, RepairReport
from driftboard.db.store.results import (
    DEFAULT_GOLDEN,
    DEFAULT_POLICY,
    DeleteResult,
    EnvironmentSummary,
    Golden,
    GoldenKey,
    IngestResult,
    MachineSummary,
    RunFilter,
    RunPage,
    RunSummary,
    StoreStats,
    VerdictSummary,
    WriteLogEntry,
)
from driftboard.db.store.write_log import Origin

if TYPE_CHECKING:
    from driftboard.core.compare import RunComparison
    from driftboard.core.compare.learned import FleetSpread
    from driftboard.core.compare.tiers import TierEvidence
    from driftboard.core.explain.result import Explanation

__all__ = [
    "CODEC", "DEFAULT_GOLDEN", "DEFAULT_POLICY", "ENV_COLUMNS", "MAX_OPEN_STORES", "MAX_PER_PAGE", "PER_PAGE",
    "ArrayRepair", "DbArrays", "DeleteResult", "EnvironmentSummary", "Golden", "GoldenKey", "IngestResult", "MachineSummary",
    "RepairReport", "RunFilter", "RunPage", "RunSummary", "Store", "StoreStats", "VerdictSummary", "WriteLogEntry",
    "close_shared_stores",
    "device_class", "load_stored_run", "shared_store",
]

MAX_OPEN_STORES = 4  # databases a process keeps open at once (the dashboard uses one, compare at most two)


class Store:
    """One database. ``Store(url)``: see ``db.session.database_url`` for how ``url`` is resolved.

    Opening refuses a database whose schema is not current (``SchemaOutOfDateError``
    naming the command to run); an empty SQLite database gets the schema created
    (``create_if_empty``, default: SQLite only; see ``db/migrate.py``).
    """

    def __init__(self, url: str | None = None, *, create_if_empty: bool | None = None) -> None:
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        create = self.dialect == "sqlite" if create_if_empty is None else create_if_empty
        self._golden_runs = GoldenRuns()  # goldens kept by content, for judging pushes (``pushed_verdict``)
        try:
            ensure_schema(self.engine, self.url, create_if_empty=create)
        except BaseException:
            self.engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({redacted(self.url)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ ingest

    def ingest(self, source: str | Path | bytes, *, uploader: str = "", limits: Limits = DEFAULT_LIMITS,
               channel: str = _write_log.CLI, address: str | None = None) -> IngestResult:
        """Validate a bundle file (or its bytes) fully, then store it in one transaction.

        ``uploader`` is recorded as given on SQLite. On PostgreSQL an empty one records the login; a pusher
        (a role that may not insert runs itself) naming anyone but its login is refused with nothing written.
        The write log records the push with the uploader, ``channel`` (cli, page, api) and ``address``.
        """
        return self.ingest_bundle(read_bundle(read_bounded(source, limits), limits, streams=True), uploader=uploader,
                                  channel=channel, address=address)

    def ingest_bundle(self, bundle: Bundle, *, uploader: str = "", channel: str = _write_log.CLI,
                      address: str | None = None) -> IngestResult:
        """Store a bundle ``read_bundle`` validated. Storing one already stored changes nothing (and logs nothing)."""
        return _ingest.ingest_bundle(self.engine, bundle, uploader=uploader,
                                     origin=Origin(uploader, channel, address))

    # ------------------------------------------------------------ runs

    def runs(self, filters: RunFilter | None = None, *, page: int = 1, per_page: int = PER_PAGE) -> RunPage:
        """One page of runs, newest first, with the total count of runs matching ``filters``."""
        return _queries.runs(self.engine, filters, page=page, per_page=per_page)

    def run(self, run_id: str) -> RunSummary:
        """One stored run (``run_id`` or an unambiguous prefix of it)."""
        return _queries.run(self.engine, run_id)

    def fingerprint(self, run_id: str) -> dict[str, Any]:
        """The run's environment fingerprint, without loading its cases."""
        return _queries.fingerprint(self.engine, run_id)

    def machines(self) -> tuple[MachineSummary, ...]:
        return _queries.machines(self.engine)

    def machine_history(self, machine: str, *, golden: str = DEFAULT_GOLDEN,
                        policy: str = DEFAULT_POLICY) -> tuple[RunSummary, ...]:
        """Every run of one machine (key or hostname), oldest first."""
        return _queries.machine_history(self.engine, machine, golden=golden, policy=policy)

    def case_results(self, run_id: str) -> tuple[CaseResult, ...]:
        """A run's cases, with array references but no array read."""
        return _queries.case_results(self.engine, run_id)

    def load_run(self, run_id: str) -> tuple[Run, DbArrays]:
        """The run as captured, and an ``ArraySource`` that reads its arrays on demand."""
        return _queries.load_run(self.engine, run_id), self.arrays()

    def arrays(self) -> DbArrays:
        return DbArrays(self.engine)

    def compare(self, baseline: str, candidate: str, policy: str | None = None) -> RunComparison:
        """Two stored runs compared by ``core.compare`` (arrays read only where digests differ), with the
        determinism tiers the stored runs show and, under ``fleet``, the accepted runs' spread."""
        from driftboard.core.compare import compare_runs, parse_policy

        parsed = parse_policy(policy) if policy else None
        base_run, base_arrays = self.load_run(baseline)
        cand_run, cand_arrays = self.load_run(candidate)
        return compare_runs(base_run, base_arrays, cand_run, cand_arrays, parsed,
                            fleet=self.fleet_for(base_run, cand_run) if parsed and parsed.kind == "fleet" else None,
                            tier_evidence=self.tier_evidence(base_run.suite_id, base_run.suite_version))

    def fleet_spread(self, suite_id: str, suite_version: int, device_class: str, *, golden: str = DEFAULT_GOLDEN,
                     exclude: Sequence[str] = ()) -> FleetSpread | None:
        """The accepted runs of a golden and, per case, their largest error against it (``db/store/fleet.py``)."""
        return _fleet.fleet_spread(self.engine, suite_id, suite_version, device_class, golden=golden,
                                   exclude=exclude)

    def fleet_for(self, baseline: Run, candidate: Run, *, golden: str = DEFAULT_GOLDEN) -> FleetSpread | None:
        """The fleet ``--policy fleet`` judges ``candidate`` by: the baseline's suite version and device class,
        the candidate itself not counted."""
        from driftboard.core.run import device_class

        return self.fleet_spread(baseline.suite_id, baseline.suite_version, device_class(baseline), golden=golden,
                                 exclude=(candidate.run_id,))

    def tier_evidence(self, suite_id: str, suite_version: int) -> dict[tuple[str, str, str], TierEvidence]:
        """Per case of a suite version, what the stored runs show about its determinism tiers (one query)."""
        return _fleet.tier_evidence(self.engine, suite_id, suite_version)

    def delete_run(self, run_id: str, *, actor: str = "", channel: str = _write_log.CLI,
                   address: str | None = None) -> DeleteResult:
        """Remove a run, and the outcomes, arrays and environment no other run uses; logged as ``actor``."""
        return _delete.delete_run(self.engine, run_id, Origin(actor, channel, address))

    def save_explanation(self, explanation: Explanation, *, actor: str = "", channel: str = _write_log.CLI,
                         address: str | None = None) -> None:
        """Keep what ``driftboard explain`` found with its pair of runs (replacing an older one), logged."""
        _explanations.save_explanation(self.engine, explanation, Origin(actor, channel, address))

    def explanation(self, baseline: str, candidate: str) -> Explanation | None:
        """The explanation kept for (baseline, candidate), if any."""
        return _explanations.load_explanation(self.engine, baseline, candidate)

    def stats(self) -> StoreStats:
        return _queries.stats(self.engine)

    def repair_arrays(self, sources: Sequence[str | Path] = ()) -> RepairReport:
        """Check every stored array; rewrite those not exactly their bytes from a good copy (``db/store/repair.py``)."""
        return _repair.repair_arrays(self.engine, sources)

    # ------------------------------------------------------------ goldens

    def set_golden(self, run_id: str, *, name: str = DEFAULT_GOLDEN, set_by: str = "", reason: str = "",
                   channel: str = _write_log.CLI, address: str | None = None) -> Golden:
        """Make a run the golden ``name`` for its suite version and device class; logged as ``set_by``."""
        return _goldens.set_golden(self.engine, run_id, name=name, set_by=set_by, reason=reason,
                                   origin=Origin(set_by, channel, address))

    def clear_golden(self, key: GoldenKey, *, actor: str = "", channel: str = _write_log.CLI,
                     address: str | None = None) -> bool:
        """Remove a golden (its cached verdicts go with it); False when there was none. Logged as ``actor``."""
        return _goldens.clear_golden(self.engine, key, Origin(actor, channel, address))

    # ------------------------------------------------------------ write log

    def log_write(self, action: str, *, actor: str, channel: str, address: str | None, run_id: str | None = None,
                  detail: str = "") -> None:
        """Record a write made outside the store's own methods (theirs log themselves, in their transaction)."""
        _write_log.log_write(self.engine, action, Origin(actor, channel, address), run_id=run_id, detail=detail)

    def write_log(self, limit: int = 100, action: str | None = None, actor: str | None = None) -> tuple[WriteLogEntry, ...]:
        """The newest ``limit`` writes (pushes, deletes, golden set and clear), newest first."""
        return _write_log.write_log(self.engine, limit=limit, action=action, actor=actor)

    def goldens(self, name: str | None = None) -> tuple[Golden, ...]:
        return _goldens.goldens(self.engine, name)

    def golden_for(self, run_id: str, *, name: str = DEFAULT_GOLDEN) -> Golden | None:
        """The golden ``name`` that applies to a run (same suite version and device class), if set."""
        return _goldens.golden_for(self.engine, run_id, name=name)

    # ------------------------------------------------------------ verdicts

    def verdict(self, run_id: str, *, golden: str = DEFAULT_GOLDEN, policy: str | None = None) -> VerdictSummary | None:
        """A run's worst verdict against its golden: cached, or computed once and kept.

        None when no golden applies to the run, or the run has no cases (imported).
        """
        return _verdicts.verdict(self.engine, run_id, golden=golden, policy=policy)

    def pushed_verdict(self, run: Run, arrays: ArraySource) -> VerdictSummary | None:
        """``verdict`` of a run just stored, judged from its validated bundle's run and arrays in memory,
        against its golden kept in memory by content (which golden applies is looked up each time)."""
        return _verdicts.pushed_verdict(self.engine, run, arrays, self._golden_runs)

    def refresh_verdicts(self, *, golden: str = DEFAULT_GOLDEN, policy: str | None = None,
                         run_ids: Sequence[str] | None = None) -> int:
        """Compute the verdicts not cached yet (of ``run_ids``, or every run); returns how many."""
        return _verdicts.refresh_verdicts(self.engine, golden=golden, policy=policy, run_ids=run_ids)


# ---------------------------------------------------------------- stores shared by a long-lived process

_SHARED: OpenStores[Store] = OpenStores(Store, max_open=MAX_OPEN_STORES)
atexit.register(_SHARED.close_all)


def shared_store(url: str | None = None) -> Store:
    """This process's open ``Store`` of a database, opened on first use; do not close it yourself.

    At most ``MAX_OPEN_STORES`` stay open: the least recently used is closed
    when another database is opened, and all are closed at exit.
    """
    return _SHARED.get(database_url(url))


def close_shared_stores() -> None:
    """Close every shared store now (the next ``shared_store`` call opens its database again)."""
    _SHARED.close_all()


def load_stored_run(run_id: str, db_url: str | None = None) -> tuple[Run, DbArrays]:
    """A stored run and its arrays, for commands that take a run id where a bundle path also works.

    The store is shared (``shared_store``), so comparing two stored runs opens the database once.
    """
    url = database_url(db_url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
            and not Path(parsed.database).exists():  # a mistyped file name must not create a database
        raise NotFoundError(f"no run {run_id!r}: there is no database at {parsed.database}")
    return shared_store(url).load_run(run_id)
