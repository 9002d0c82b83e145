"""What the store returns: frozen dataclasses, so ORM rows never leave ``db/``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime
from typing import Any

DEFAULT_GOLDEN = "default"
DEFAULT_POLICY = "default"


@dataclass(frozen=True)
class IngestResult:
    run_id: str
    bundle_digest: str
    created: bool  # False: this bundle was already stored, nothing written
    case_count: int = 0
    new_arrays: int = 0  # distinct arrays this bundle added to the store
    new_bytes: int = 0  # their stored (compressed) size
    machine_key: str = ""


@dataclass(frozen=True)
class EnvironmentSummary:
    digest: str  # the run's fingerprint_digest
    torch_version: str | None
    cuda: str | None
    cudnn: str | None
    driver: str | None
    gpu_model: str | None
    cpu_model: str | None
    cpu_capability: str | None


@dataclass(frozen=True)
class RunSummary:
    """A stored run without its cases: what a list of runs shows."""

    run_id: str
    created_at: str  # as captured
    captured_at: datetime  # the same instant, UTC
    uploaded_at: datetime
    uploader: str
    label: str
    tags: tuple[str, ...]
    note: str
    suite_id: str
    suite_version: int
    variant: str
    device_class: str
    imported: bool
    case_count: int
    bundle_digest: str
    bundle_size: int
    machine_key: str
    hostname: str
    environment: EnvironmentSummary
    verdict: str | None = None  # worst verdict against the golden, when computed
    own_case_count: int = 0  # of ``case_count``, the cases of the team's own models

    def to_json(self) -> dict[str, Any]:
        # Field by field: asdict deep-copies every value, a third of the time of a listed page (docs, the API).
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["environment"] = {f.name: getattr(self.environment, f.name) for f in fields(self.environment)}
        out["captured_at"] = self.captured_at.isoformat()
        out["uploaded_at"] = self.uploaded_at.isoformat()
        out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True)
class RunPage:
    runs: tuple[RunSummary, ...]
    total: int  # runs matching the filter, on every page
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "per_page": self.per_page, "pages": self.pages,
                "runs": [run.to_json() for run in self.runs]}


@dataclass(frozen=True)
class RunFilter:
    """Filters for ``Store.runs``; None means any. Version filters match whole components ("2.5" ⊇ "2.5.1")."""

    machine: str | None = None  # machine key or hostname
    label: str | None = None  # substring, case-insensitive
    tags: tuple[str, ...] = ()  # every one of them
    since: datetime | date | None = None  # captured at or after
    until: datetime | date | None = None  # captured before (a date: before the end of that day)
    torch: str | None = None
    cuda: str | None = None
    cudnn: str | None = None
    driver: str | None = None
    gpu: str | None = None  # substring of the GPU model, case-insensitive
    cpu_model: str | None = None  # substring, case-insensitive
    cpu_capability: str | None = None
    suite_version: int | None = None
    variant: str | None = None
    imported: bool | None = None
    verdict: str | None = None  # worst verdict against the golden (cached verdicts only)
    own_case: str | None = None  # holds a case of the team's own models with this case id
    golden: str = DEFAULT_GOLDEN
    policy: str = DEFAULT_POLICY


@dataclass(frozen=True)
class MachineSummary:
    machine_key: str
    hostname: str
    first_seen: datetime
    last_seen: datetime
    run_count: int
    # What to call it: the hostname; for an imported environment (a collect_env report names no host)
    # the label of its newest run, which says what the report describes; else the start of its key.
    name: str = ""


@dataclass(frozen=True)
class GoldenKey:
    name: str
    suite_id: str
    suite_version: int
    device_class: str


@dataclass(frozen=True)
class Golden:
    key: GoldenKey
    run_id: str
    set_by: str
    set_at: datetime
    reason: str


@dataclass(frozen=True)
class VerdictSummary:
    golden_run_id: str
    run_id: str
    policy: str
    worst: str
    counts: dict[str, int] = field(hash=False)
    computed_at: datetime
    cached: bool  # False: computed by this call


@dataclass(frozen=True)
class DeleteResult:
    run_id: str
    arrays_removed: int
    bytes_freed: int  # stored (compressed) bytes of the removed arrays


@dataclass(frozen=True)
class StoreStats:
    runs: int
    machines: int
    environments: int
    outcomes: int
    arrays: int
    array_bytes: int  # raw
    stored_bytes: int  # compressed


@dataclass(frozen=True)
class WriteLogEntry:
    """One recorded write (``db/store/write_log.py``): the ``driftboard log`` line and the Write log page row."""

    id: int
    at: datetime
    action: str  # push, delete, golden-set, golden-clear, explain
    actor: str  # the uploader, deleter or golden setter as recorded
    channel: str  # cli, page, api
    address: str | None  # the client's address, when known
    run_id: str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out
