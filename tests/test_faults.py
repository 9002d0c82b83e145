"""Faults, CI-sized: pushers killed at random points, uploaders racing through the CLI, a locked SQLite
file, a PostgreSQL connection lost inside a push, corrupt and truncated SQLite files.

Everything goes through the real ``driftboard push`` (a fresh process each), and every database is
checked afterwards by ``integrity_problems``: each stored run has all its cases, every case its outcome,
every outcome its arrays, and no row is left over from a push that did not finish.

The long versions, with figures: ``benchmarks/fault_campaign.py`` (>= 50 kills per database, lock and
connection faults, a real server restart) and ``benchmarks/load_push.py`` (8 uploaders x 100 bundles).
They import the helpers below. Run as a script, this file is the traced or paused pusher those tests
start (``python tests/test_faults.py trace LOG -- push ARGS`` / ``pause MARKER GO -- push ARGS``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if __name__ == "__main__":  # run as a worker: make the test helpers importable (driftboard is installed)
    sys.path[:0] = [str(HERE)]

import pytest  # noqa: E402
from db_factory import SUITE, make_run  # noqa: E402
from serving import free_port  # noqa: E402

from driftboard.core.bundle import bundle_bytes  # noqa: E402
from driftboard.core.processes import driftboard_command  # noqa: E402
from driftboard.db.models import Base  # noqa: E402

CLI = driftboard_command()
CPU_CASES = len(SUITE) * 2 - 2  # float32 and float64, but the two RNG cases are float32 only
POSTGRES_ENV = "DRIFTBOARD_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEMA_TABLES = {*Base.metadata.tables, "alembic_version"}  # every table of the models, and Alembic's


# ---------------------------------------------------------------- helpers (the campaign scripts use them too)


def make_bundles(directory: Path, keys: Sequence[tuple[int, int]], *, drift_every: int = 7) -> dict[Path, int]:
    """Distinct bundle files for (machine, seq) pairs, like a fleet: most agree, every ``drift_every``-th
    machine drifts on one case (new arrays). Returns path -> number of cases."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for machine, seq in keys:
        drift = {"linear_1024": 1 + seq % 3} if machine % drift_every == 1 else {}
        run, arrays = make_run(machine, seq, drift=drift, tags=(f"batch-{seq % 4}",), label=f"node {machine}")
        path = directory / f"{run.run_id}.driftboard"
        path.write_bytes(bundle_bytes(run, arrays))
        files[path] = len(run.cases)
    return files


def run_id_of(path: Path) -> str:
    return path.name.removesuffix(".driftboard")


def integrity_problems(url: str, *, deep: bool = False, machines_without_runs: bool = False) -> list[str]:
    """Everything wrong with a database after a fault; [] when every stored run is whole and nothing is left over.

    ``deep`` also inflates every stored array and checks it is exactly its bytes, with nothing after the end of
    its stream (``stored_problem``). A machine without runs is a leftover unless runs were deleted
    (``machines_without_runs``): delete keeps the machine's history.
    """
    from sqlalchemy import inspect, select

    from driftboard.db.models import ArrayRow, CaseOutcomeRow, CaseResultRow, EnvironmentRow, MachineRow, OutcomeArrayRow, RunRow, RunTagRow
    from driftboard.db.session import make_engine
    from driftboard.db.store.arrays import stored_problem

    problems: list[str] = []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            if not tables:  # a push killed while creating the schema: none of it was committed
                return []
            if tables != SCHEMA_TABLES:
                return [f"a partial schema: {sorted(tables)}"]
            runs = conn.execute(select(RunRow.id, RunRow.run_id, RunRow.case_count, RunRow.tags,
                                       RunRow.machine_id, RunRow.environment_id)).all()
            positions: dict[int, list[int]] = {}
            used_outcomes: set[int] = set()
            for run_pk, position, outcome in conn.execute(
                    select(CaseResultRow.run_pk, CaseResultRow.position, CaseResultRow.outcome_id)):
                positions.setdefault(run_pk, []).append(position)
                used_outcomes.add(outcome)
            tags: dict[int, set[str]] = {}
            for run_pk, tag in conn.execute(select(RunTagRow.run_pk, RunTagRow.tag)):
                tags.setdefault(run_pk, set()).add(tag)
            run_pks = {r.id for r in runs}
            for r in runs:
                got = sorted(positions.get(r.id, []))
                if got != list(range(r.case_count)):
                    problems.append(f"run {r.run_id}: {len(got)} of its {r.case_count} cases stored")
                if tags.get(r.id, set()) != set(r.tags):
                    problems.append(f"run {r.run_id}: tags {sorted(tags.get(r.id, set()))} indexed, {r.tags} recorded")
            for run_pk in positions.keys() - run_pks:
                problems.append(f"case results of a missing run (pk {run_pk})")
            for run_pk in tags.keys() - run_pks:
                problems.append(f"tags of a missing run (pk {run_pk})")
            outcomes = {o.id: o for o in conn.execute(
                select(CaseOutcomeRow.id, CaseOutcomeRow.digest, CaseOutcomeRow.output_sha, CaseOutcomeRow.layers))}
            for missing in used_outcomes - outcomes.keys():
                problems.append(f"case results point at a missing outcome (id {missing})")
            for orphan in outcomes.keys() - used_outcomes:
                problems.append(f"outcome {outcomes[orphan].digest[:12]} is used by no run")
            links: dict[int, set[str]] = {}
            for outcome_id, sha in conn.execute(select(OutcomeArrayRow.outcome_id, OutcomeArrayRow.array_sha)):
                links.setdefault(outcome_id, set()).add(sha)
            arrays = set(conn.execute(select(ArrayRow.sha256)).scalars())
            for o in outcomes.values():
                wanted = ({o.output_sha} if o.output_sha else set()) | {layer[1] for layer in o.layers}
                if links.get(o.id, set()) != wanted:
                    problems.append(f"outcome {o.digest[:12]}: array links {sorted(links.get(o.id, set()))} "
                                    f"instead of {sorted(wanted)}")
                for sha in sorted(wanted - arrays):
                    problems.append(f"outcome {o.digest[:12]}: array {sha[:12]} missing")
            for outcome_id in links.keys() - outcomes.keys():
                problems.append(f"array links of a missing outcome (id {outcome_id})")
            linked = set().union(*links.values()) if links else set()
            for sha in sorted(arrays - linked):
                problems.append(f"array {sha[:12]} is used by no outcome")
            environments = set(conn.execute(select(EnvironmentRow.id)).scalars())
            for env in sorted(environments - {r.environment_id for r in runs}):
                problems.append(f"environment {env} is used by no run")
            for env in sorted({r.environment_id for r in runs} - environments):
                problems.append(f"an environment of a run is missing (id {env})")
            machines = set(conn.execute(select(MachineRow.id)).scalars())
            if not machines_without_runs:
                for machine in sorted(machines - {r.machine_id for r in runs}):
                    problems.append(f"machine {machine} has no run")
            if deep:  # every array exactly its bytes, and nothing after the end of its stream
                for sha, codec, nbytes, data in conn.execute(
                        select(ArrayRow.sha256, ArrayRow.codec, ArrayRow.nbytes, ArrayRow.data)):
                    problem = stored_problem(sha, codec, nbytes, bytes(data))
                    if problem is not None:
                        problems.append(f"array {sha[:12]}: {problem}")
    finally:
        engine.dispose()
    return problems


def stored_runs(url: str) -> dict[str, int]:
    """run id -> case_count of every stored run."""
    from sqlalchemy import inspect, select

    from driftboard.db.models import RunRow
    from driftboard.db.session import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("runs"):
                return {}
            return dict(conn.execute(select(RunRow.run_id, RunRow.case_count)).all())
    finally:
        engine.dispose()


def push(files: Sequence[Path], url: str, *extra: str, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``driftboard push FILES --db URL`` in a fresh process."""
    return subprocess.run([*CLI, "push", *map(str, files), "--db", url, *extra], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def with_query(url: str, **query: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).update_query_dict(query).render_as_string(hide_password=False)


@contextlib.contextmanager
def postgres_schema(prefix: str = "fault") -> Iterator[str]:
    """A new schema of the test PostgreSQL database (selected by the URL's search_path), dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    postgres_admin(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_query(os.environ.get(POSTGRES_ENV) or POSTGRES_DEFAULT, options=f"-csearch_path={schema}")
    finally:
        postgres_admin(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_admin(statement: str, **params: object) -> list[tuple]:
    """One statement on a separate autocommit connection (what another client or a DBA would do)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(os.environ.get(POSTGRES_ENV) or POSTGRES_DEFAULT, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '20s'"))
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def terminate_backends(application_name: str) -> int:
    """``pg_terminate_backend`` every connection of that application name; how many."""
    rows = postgres_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = :name AND pid <> pg_backend_pid()", name=application_name)
    return sum(1 for (ok,) in rows if ok)


def upgrade_schema(url: str) -> None:
    from driftboard.db.migrate import upgrade
    from driftboard.db.session import make_engine

    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


# ---------------------------------------------------------------- killing pushers


@dataclass
class KillTrial:
    delay: float  # seconds after start at which SIGKILL was sent (or the push finished)
    killed: bool
    in_write_transaction: bool  # the trace shows a write transaction begun and not finished
    write_transactions_done: int
    stored_before: int
    stored_after: int
    problems: list[str] = field(default_factory=list)


def traced_push(files: Sequence[Path], url: str, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``driftboard push`` in a process that appends ``+`` to ``log`` when a write transaction begins and
    ``-`` when it has committed (``!`` when it raised): where a kill landed can be read afterwards."""
    with open(log.with_suffix(".stderr"), "wb") as stderr:
        return subprocess.Popen([sys.executable, str(Path(__file__)), "trace", str(log), "--", "push",
                                 *map(str, files), "--db", url, "-q", *extra],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)


def kill_push(files: Sequence[Path], url: str, log: Path, *, delay: float | None = None, after_writes: int | None = None,
              jitter: float = 0.0, rng: random.Random | None = None) -> KillTrial:
    """Start a traced push and SIGKILL it ``delay`` s after start, or ``jitter`` s (random) after its
    ``after_writes``-th write transaction began; then check the database."""
    rng = rng or random.Random(0)
    before = len(stored_runs(url)) if _database_exists(url) else 0
    log.unlink(missing_ok=True)
    start = time.perf_counter()
    process = traced_push(files, url, log)
    try:
        if after_writes is not None:
            deadline = start + 120
            while _trace(log).count("+") < after_writes and process.poll() is None:
                if time.perf_counter() > deadline:
                    raise AssertionError("the push never reached the write transaction to kill")
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, jitter))
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):  # ends early if the push finishes first
                process.wait(timeout=max(0.0, (delay or 0.0) - (time.perf_counter() - start)))
        killed = process.poll() is None
        if killed:
            os.kill(process.pid, signal.SIGKILL)
        sent = time.perf_counter() - start
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    trace = _trace(log)
    return KillTrial(delay=sent, killed=killed, in_write_transaction=trace.count("+") > trace.count("-") + trace.count("!"),
                     write_transactions_done=trace.count("-"), stored_before=before,
                     stored_after=len(stored_runs(url)), problems=integrity_problems(url))


def _trace(log: Path) -> str:
    try:
        return log.read_text()
    except FileNotFoundError:
        return ""


def _database_exists(url: str) -> bool:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() != "sqlite" or Path(parsed.database or "").exists()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target_db(request) -> str:
    """SQLite: a file that does not exist yet (the first push creates its schema). PostgreSQL: a fresh schema."""
    url = request.getfixturevalue(f"{request.param}_url")
    if request.param == "postgres":
        upgrade_schema(url)
    return url


def test_pushers_killed_at_random_points_never_leave_a_partial_run(target_db, tmp_path):
    rng = random.Random(20261125)
    batches = [make_bundles(tmp_path / f"b{i}", [(40 + i * 4 + k, i) for k in range(4)]) for i in range(4)]
    trials = [
        kill_push(list(batches[0]), target_db, tmp_path / "t0", delay=0.4),  # SQLite: often while creating the schema
        kill_push(list(batches[1]), target_db, tmp_path / "t1", after_writes=1, jitter=0.004, rng=rng),
        kill_push(list(batches[2]), target_db, tmp_path / "t2", after_writes=3, jitter=0.004, rng=rng),
        kill_push(list(batches[3]), target_db, tmp_path / "t3", after_writes=2, jitter=0.004, rng=rng),
    ]
    for trial in trials:
        assert trial.problems == [], trial
    assert sum(t.killed for t in trials) >= 3
    assert any(t.killed and t.in_write_transaction for t in trials)  # at least one kill inside a transaction
    every = {path: cases for batch in batches for path, cases in batch.items()}
    result = push(list(every), target_db)  # everyone pushes again: what was missing goes in, once
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 16 and all(": stored run " in line or ": already stored as run " in line for line in lines)
    assert stored_runs(target_db) == {run_id_of(p): cases for p, cases in every.items()}
    assert integrity_problems(target_db, deep=True) == []


# ---------------------------------------------------------------- many uploaders through the CLI


@dataclass
class LoadResult:
    wall: float
    invocations: int
    failures: list[str]


def run_uploaders(url: str, groups: Sequence[Sequence[Path]], *, files_per_invocation: int) -> LoadResult:
    """One thread per uploader, all released at once; each runs ``driftboard push`` on its files,
    ``files_per_invocation`` at a time, one process after the other."""
    barrier = threading.Barrier(len(groups) + 1)
    failures: list[str] = []
    invocations = [0]
    lock = threading.Lock()

    def uploader(index: int, files: Sequence[Path]) -> None:
        barrier.wait()
        for start in range(0, len(files), files_per_invocation):
            done = push(files[start:start + files_per_invocation], url, "-q", "--uploader", f"uploader-{index}")
            with lock:
                invocations[0] += 1
                if done.returncode != 0 or done.stderr.strip():
                    failures.append(f"uploader {index}: exit {done.returncode}: {done.stderr.strip()[-500:]}")

    threads = [threading.Thread(target=uploader, args=(i, files)) for i, files in enumerate(groups)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return LoadResult(time.perf_counter() - start, invocations[0], failures)


@pytest.fixture(scope="module")
def uploader_bundles(tmp_path_factory) -> list[dict[Path, int]]:
    directory = tmp_path_factory.mktemp("uploaders")
    return [make_bundles(directory / f"u{u}", [(u * 10 + k, 1) for k in range(10)]) for u in range(8)]


def test_eight_uploaders_through_driftboard_push_store_every_bundle_once(target_db, uploader_bundles):
    # test_db_ingest.py races eight forked Store.ingest callers on shared bundles; this is the CLI path,
    # from process start (schema creation included on SQLite) to exit status, with eighty distinct bundles.
    groups = uploader_bundles
    load = run_uploaders(target_db, [list(g) for g in groups], files_per_invocation=10)
    assert load.failures == []
    assert load.invocations == 8
    expected = {run_id_of(p): cases for g in groups for p, cases in g.items()}
    assert stored_runs(target_db) == expected  # none lost, none duplicated, every case count right
    assert integrity_problems(target_db) == []
    uploaders = _uploaders(target_db)
    assert all(uploaders[run_id_of(p)] == f"uploader-{u}" for u, g in enumerate(groups) for p in g)


def _uploaders(url: str) -> dict[str, str]:
    from driftboard.db.store import Store

    with Store(url) as store:
        return {r.run_id: r.uploader for r in store.runs(per_page=1000).runs}


# ---------------------------------------------------------------- a SQLite file locked by another writer

_HOLDER = """
import sqlite3, sys, time
from datetime import datetime, timezone
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", datetime.now(timezone.utc).isoformat(), flush=True)
"""


@contextlib.contextmanager
def write_lock_held(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding SQLite's write lock (BEGIN IMMEDIATE) on ``path`` for ``seconds``."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=30)
        if holder.stdout:
            holder.stdout.close()


def _sqlite_with_schema(tmp_path: Path) -> tuple[Path, str]:
    from driftboard.db.store import Store

    path = tmp_path / "locked.sqlite"
    Store(str(path)).close()
    return path, f"sqlite:///{path}"


def test_a_push_into_a_locked_sqlite_file_waits_for_the_lock_and_succeeds(tmp_path):
    path, url = _sqlite_with_schema(tmp_path)
    files = list(make_bundles(tmp_path / "b", [(1, 1), (2, 1)]))
    with write_lock_held(path, 2.0) as holder:
        started = time.perf_counter()
        result = push(files, url, env={"DRIFTBOARD_SQLITE_BUSY_TIMEOUT": "30"})
        waited = time.perf_counter() - started
        released = datetime.fromisoformat(holder.stdout.readline().split()[1])
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.count(": stored run ") == 2
    assert 1.0 < waited < 25
    uploaded = [r.uploaded_at for r in _summaries(url)]
    assert len(uploaded) == 2 and all(when >= released for when in uploaded)  # written after the lock was released
    assert integrity_problems(url) == []


def test_a_push_into_a_sqlite_file_locked_too_long_fails_with_one_line_and_writes_nothing(tmp_path):
    path, url = _sqlite_with_schema(tmp_path)
    files = list(make_bundles(tmp_path / "b", [(1, 1), (2, 1), (3, 1)]))
    with write_lock_held(path, 120):
        started = time.perf_counter()
        result = push(files, url, env={"DRIFTBOARD_SQLITE_BUSY_TIMEOUT": "1"})
        elapsed = time.perf_counter() - started
    assert result.returncode == 2
    assert elapsed < 15  # one busy timeout, not one per bundle
    lines = result.stderr.splitlines()
    assert lines == [
        f"{files[0]}: not stored: database sqlite:///{path} is locked by another writer: still locked after the busy "
        "timeout (1 s; DRIFTBOARD_SQLITE_BUSY_TIMEOUT sets it); nothing was written",
        f"{files[1]}: not tried: the database is locked",  # each bundle its own line: push those again
        f"{files[2]}: not tried: the database is locked",
        "driftboard: error: 3 of 3 bundles not stored",
    ]
    assert stored_runs(url) == {} and integrity_problems(url) == []
    assert push(files, url).returncode == 0  # the lock gone, the same push goes through
    assert len(stored_runs(url)) == 3


def test_the_busy_timeout_setting_is_checked():
    from driftboard.core.errors import StoreError
    from driftboard.db.session import busy_timeout

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRIFTBOARD_SQLITE_BUSY_TIMEOUT", "2.5")
        assert busy_timeout() == 2.5
        mp.setenv("DRIFTBOARD_SQLITE_BUSY_TIMEOUT", "soon")
        with pytest.raises(StoreError, match="DRIFTBOARD_SQLITE_BUSY_TIMEOUT='soon': expected a number of seconds"):
            busy_timeout()
        mp.delenv("DRIFTBOARD_SQLITE_BUSY_TIMEOUT")
        assert busy_timeout() == 30


def _summaries(url: str):
    from driftboard.db.store import Store

    with Store(url) as store:
        return store.runs(per_page=1000).runs


# ---------------------------------------------------------------- PostgreSQL connection lost inside a push


def paused_push(files: Sequence[Path], url: str, marker: Path, go: Path) -> subprocess.Popen[str]:
    """``driftboard push`` whose first ingest stops inside its write transaction, every row written and
    not committed, until ``go`` exists (``marker`` says it got there)."""
    return subprocess.Popen([sys.executable, str(Path(__file__)), "pause", str(marker), str(go), "--", "push",
                             *map(str, files), "--db", url],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the pusher exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("the pusher never reached its write transaction")
        time.sleep(0.01)


@pytest.mark.postgres
def test_a_postgres_connection_lost_inside_a_push_is_one_line_and_nothing_half_written(postgres_url, tmp_path):
    upgrade_schema(postgres_url)
    name = f"driftboard-fault-{uuid.uuid4().hex[:8]}"
    url = with_query(postgres_url, application_name=name)
    files = list(make_bundles(tmp_path / "b", [(1, 1), (2, 1)]))
    marker, go = tmp_path / "inside", tmp_path / "go"
    pusher = paused_push(files, url, marker, go)
    try:
        wait_for(marker, pusher)
        assert terminate_backends(name) >= 1  # what a server restart does to the connection
        go.touch()
        out, err = pusher.communicate(timeout=120)
    finally:
        if pusher.poll() is None:
            pusher.kill()
            pusher.communicate()
    assert pusher.returncode == 2
    lines = err.splitlines()
    assert len(lines) == 2 and lines[1] == "driftboard: error: 1 of 2 bundles not stored", err
    assert lines[0].startswith(f"{files[0]}: not stored: database postgresql+psycopg://") and \
        lines[0].endswith(": terminating connection due to administrator command"), lines[0]
    assert out.count(": stored run ") == 1  # the next bundle went in on a new connection
    assert set(stored_runs(url)) == {run_id_of(files[1])}
    assert integrity_problems(url) == []
    again = push(files, url)
    assert again.returncode == 0, again.stderr
    assert stored_runs(url) == {run_id_of(p): CPU_CASES for p in files}
    assert integrity_problems(url, deep=True) == []


# ---------------------------------------------------------------- corrupt and truncated SQLite files


def _fingerprint(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mtime_ns


@pytest.fixture(scope="module")
def real_database(tmp_path_factory) -> bytes:
    """The bytes of a real driftboard database of a few runs (about 7 MB), closed cleanly."""
    from driftboard.db.store import Store

    directory = tmp_path_factory.mktemp("real")
    path = directory / "real.sqlite"
    with Store(str(path)) as store:
        for machine in range(6):
            run, arrays = make_run(machine, 1, drift={"linear_1024": machine, "lstm_2layer": machine})
            store.ingest(bundle_bytes(run, arrays))
    return path.read_bytes()


CORRUPTIONS = {
    "garbage": lambda real: random.Random(7).randbytes(len(real) // 2),
    "truncated to half": lambda real: real[: len(real) // 2],
    # Both found by the campaign: SQLite took the first for an empty database and the second for a whole one.
    "one byte": lambda real: b"\x07",
    "cut inside its last page": lambda real: real[:-100],
}
COMMANDS = {
    "push": lambda bundle: ["push", str(bundle)],
    "runs": lambda bundle: ["runs"],
    "db upgrade": lambda bundle: ["db", "upgrade"],
    "db status": lambda bundle: ["db", "status"],
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_a_corrupt_sqlite_file_is_refused_in_one_line_and_never_written(kind, real_database, tmp_path, capsys):
    from driftboard.cli import main

    bundle = next(iter(make_bundles(tmp_path / "b", [(9, 9)])))
    path = tmp_path / "team.sqlite"
    path.write_bytes(CORRUPTIONS[kind](real_database))
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    before = _fingerprint(path)
    for name, argv in COMMANDS.items():
        try:
            main([*argv(bundle), "--db", str(path)])
            code = 0
        except SystemExit as exc:
            code = exc.code
        out, err = capsys.readouterr()
        assert code == 2 and out == "", (name, out, err)
        assert err.count("\n") == 1 and err.startswith(f"driftboard: error: database sqlite:///{path}: "), (name, err)
        assert "driftboard left it unchanged" in err, (name, err)
        assert _fingerprint(path) == before, name
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "team.sqlite"], name  # no -wal/-shm left
    serve = subprocess.run([*CLI, "serve", "--db", str(path), "--port", str(free_port())], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2 and serve.stdout == "" and serve.stderr.count("\n") == 1, serve
    assert "driftboard left it unchanged" in serve.stderr
    assert _fingerprint(path) == before


# ---------------------------------------------------------------- worker modes


def _worker(argv: list[str]) -> int:
    """``trace LOG -- ARGS`` or ``pause MARKER GO -- ARGS``: ``driftboard ARGS`` with a hook in the store."""
    import driftboard.db.store.ingest as store_module  # where ingest opens its transactions
    from driftboard.cli import main

    split = argv.index("--")
    mode, options, cli_args = argv[0], argv[1:split], argv[split + 1:]
    if mode == "trace":
        fd = os.open(options[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        original = store_module.transaction

        @contextlib.contextmanager
        def traced(engine, *, write=False):
            if not write:
                with original(engine) as session:
                    yield session
                return
            os.write(fd, b"+")
            try:
                with original(engine, write=True) as session:
                    yield session
            except BaseException:
                os.write(fd, b"!")
                raise
            os.write(fd, b"-")

        store_module.transaction = traced
    elif mode == "pause":
        marker, go = map(Path, options)
        original_insert = store_module._insert_case_results
        paused = []

        def pause(*args, **kwargs):
            original_insert(*args, **kwargs)
            if not paused:
                paused.append(True)
                marker.write_text("inside")
                deadline = time.monotonic() + 120
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.01)

        store_module._insert_case_results = pause
    else:
        raise SystemExit(f"unknown worker mode {mode!r}")
    try:
        main(cli_args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
