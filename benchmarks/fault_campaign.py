"""The fault campaign: what happens to the database when pushes are killed, locked out, cut off, or pointed
at a damaged file. The CI-sized versions are tests/test_faults.py; this runs many trials and prints figures.

    .venv/bin/python benchmarks/fault_campaign.py                    # everything (restarts PostgreSQL 3 times)
    .venv/bin/python benchmarks/fault_campaign.py --only kill --kills 60
    .venv/bin/python benchmarks/fault_campaign.py --no-restart        # never restart the shared server
    .venv/bin/python benchmarks/fault_campaign.py --json artifacts/fault_campaign.json

1. kill (SQLite and PostgreSQL): ``driftboard push`` of 6 new bundles (and 2 already stored) SIGKILLed at a
   random point: two thirds at a uniformly random time over the push's measured duration, a third just
   after a random write transaction began (a trace written by the pusher says whether the kill landed
   inside one). After every kill the database is checked (every stored run whole, no leftover row); at
   the end every bundle is pushed again and must be stored exactly once, and every array is inflated and
   checked. On SQLite, 10 more kills while the first push creates a new file's schema.
2. lock (SQLite): another process holds the write lock (BEGIN IMMEDIATE). Released within the busy timeout:
   the push waits and succeeds; held past it: the push fails with one line after about the timeout, and
   stores nothing.
3. connection (PostgreSQL): the pusher's connection is terminated (``pg_terminate_backend``) while it sits
   inside its write transaction, every row written; then the server is really restarted
   (``pg_ctlcluster --skip-systemctl-redirect 15 main restart``) at that point, and at a random moment of a
   120-bundle push. A one-line error or a stored run, never half of one; a re-push stores what is missing once.
4. corrupt (SQLite): garbage files of several sizes and a real database truncated at several lengths, under
   push, runs, db upgrade, db status and serve: refused with one line, the file's bytes and mtime unchanged.
5. migration (SQLite and PostgreSQL): a fleet database of 10,000 runs (bench_store's fleet: upgrades, GPUs,
   drift, goldens, verdicts) built at schema revision 0001, upgraded by ``driftboard db upgrade``: every row
   of every table identical before and after. And what revision 0002's index buys: deleting a run from a
   database of 100,000 case outcomes, without and with it.

Exits 1 when any promise is broken.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests")]

from test_faults import (  # noqa: E402
    CLI,
    _fingerprint,
    _free_port,
    integrity_problems,
    kill_push,
    make_bundles,
    paused_push,
    postgres_admin,
    postgres_schema,
    push,
    run_id_of,
    stored_runs,
    terminate_backends,
    upgrade_schema,
    wait_for,
    with_query,
    write_lock_held,
)

BROKEN: list[str] = []  # promises broken, printed at the end


def expect(ok: bool, what: str) -> None:
    if not ok:
        BROKEN.append(what)
        print(f"  BROKEN: {what}", flush=True)


# ---------------------------------------------------------------- 1. killed pushers


def calibrate(files: list[Path], url_of, tmp: Path) -> float:
    """Median seconds of a complete traced push of ``files`` into a new database."""
    times = []
    for i in range(3):
        with url_of(tmp / f"calibrate-{i}") as url:
            start = time.perf_counter()
            trial = kill_push(files, url, tmp / f"calibrate-{i}.log", delay=600)  # never killed: it finishes
            times.append(time.perf_counter() - start)
            expect(not trial.killed, "calibration push did not finish")
    return statistics.median(times)


def kill_campaign(backend: str, url_of, tmp: Path, trials: int, rng: random.Random) -> dict:
    batch = 6
    keys = [(100 + t * batch + k, t % 5) for t in range(trials) for k in range(batch)]
    cases = make_bundles(tmp / "bundles", keys)
    files = list(cases)
    batches = [files[t * batch:(t + 1) * batch] for t in range(trials)]
    duration = calibrate(batches[0], url_of, tmp)
    print(f"{backend}: a push of {batch} bundles takes {duration:.2f} s (median of 3); {trials} kills", flush=True)
    results = []
    with url_of(tmp / "campaign") as url:
        for t in range(trials):
            again = rng.sample(files[: t * batch], min(2, t * batch))  # some already stored: the duplicate path too
            pushed = batches[t] + again
            if t % 3 == 2:
                trial = kill_push(pushed, url, tmp / f"t{t}.log", after_writes=rng.randint(1, batch), jitter=0.003, rng=rng)
                trial_kind = "after a write began"
            else:
                trial = kill_push(pushed, url, tmp / f"t{t}.log", delay=rng.uniform(0, duration * 1.1))
                trial_kind = "uniform time"
            results.append((trial_kind, trial))
            expect(trial.problems == [], f"{backend} kill {t}: {trial.problems}")
        before_repush = len(stored_runs(url))
        start = time.perf_counter()
        final = push(files, url)
        expected = {run_id_of(p): n for p, n in cases.items()}
        stored = stored_runs(url)
        lines = final.stdout.splitlines()
        expect(final.returncode == 0, f"{backend}: re-push failed: {final.stderr[-400:]}")
        expect(stored == expected, f"{backend}: after the re-push {len(stored)} runs, expected {len(expected)}")
        newly = sum(": stored run " in line for line in lines)
        already = sum(": already stored as run " in line for line in lines)
        problems = integrity_problems(url, deep=True)
        expect(problems == [], f"{backend}: after the re-push: {problems[:5]}")
        repush = time.perf_counter() - start
    killed = [t for _, t in results if t.killed]
    committed_before = Counter(min(t.stored_after - t.stored_before, batch) for t in killed)
    summary = {
        "trials": trials, "push_seconds": round(duration, 3), "killed": len(killed),
        "finished_before_kill": trials - len(killed),
        "killed_inside_write_transaction": sum(t.in_write_transaction for t in killed),
        "killed_before_any_write": sum(t.write_transactions_done == 0 and not t.in_write_transaction for t in killed),
        "killed_by_kind": dict(Counter(kind for kind, t in results if t.killed)),
        "new_runs_committed_by_killed_push": dict(sorted(committed_before.items())),
        "partial_runs_or_leftover_rows": sum(len(t.problems) for _, t in results),
        "bundles": len(files), "stored_by_repush": newly, "already_stored_at_repush": already,
        "runs_before_repush": before_repush, "lost": len(set(expected) - set(stored)),
        "stored_twice": newly + before_repush - len(stored),
        "final_runs": len(stored), "final_integrity_problems": len(problems), "repush_seconds": round(repush, 1),
    }
    print(f"{backend}: {json.dumps(summary)}", flush=True)
    return summary


def schema_creation_kills(tmp: Path, trials: int, rng: random.Random) -> dict:
    """Pushes into a new SQLite file killed in their first half second (opening, creating the schema)."""
    files = list(make_bundles(tmp / "schema-bundles", [(900 + k, 1) for k in range(3)]))
    outcomes = Counter()
    for t in range(trials):
        path = tmp / f"new-{t}.sqlite"
        url = f"sqlite:///{path}"
        trial = kill_push(files, url, tmp / f"new-{t}.log", delay=rng.uniform(0.15, 0.6))
        outcomes[_new_file_state(path) if trial.killed else "push finished"] += 1
        expect(trial.problems == [], f"schema kill {t}: {trial.problems}")
        again = push(files, url)
        expect(again.returncode == 0 and len(stored_runs(url)) == 3, f"schema kill {t}: re-push {again.stderr[-300:]}")
        expect(integrity_problems(url) == [], f"schema kill {t}: integrity after re-push")
    summary = {"trials": trials, "state_after_kill": dict(outcomes)}
    print(f"sqlite new-file kills: {json.dumps(summary)}", flush=True)
    return summary


def _new_file_state(path: Path) -> str:
    import sqlite3

    if not path.exists():
        return "killed before the file was created"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs'").fetchone()[0]:
            return "killed before the schema was committed"
        runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    return f"killed with the schema and {runs} runs committed"


@contextlib.contextmanager
def sqlite_url(path: Path):
    yield f"sqlite:///{path}.sqlite"


@contextlib.contextmanager
def postgres_url(_path: Path):
    with postgres_schema("campaign") as url:
        upgrade_schema(url)
        yield url


# ---------------------------------------------------------------- 2. a locked SQLite file


def lock_campaign(tmp: Path, repeats: int) -> dict:
    from driftboard.db.store import Store

    rows = []
    for hold, timeout in [(0.5, 10), (1, 10), (2, 10), (4, 10), (None, 1), (None, 2), (None, 5)]:
        for rep in range(repeats):
            path = tmp / f"lock-{hold}-{timeout}-{rep}.sqlite"
            Store(str(path)).close()
            url = f"sqlite:///{path}"
            files = list(make_bundles(tmp / f"lock-b-{rep}", [(700 + rep, 1), (710 + rep, 1)]))
            with write_lock_held(path, hold if hold is not None else 600) as holder:
                start = time.perf_counter()
                result = push(files, url, env={"DRIFTBOARD_SQLITE_BUSY_TIMEOUT": str(timeout)})
                elapsed = time.perf_counter() - start
                released = datetime.fromisoformat(holder.stdout.readline().split()[1]) if hold is not None else None
            stored = stored_runs(url)
            if hold is not None:
                ok = result.returncode == 0 and len(stored) == 2
                expect(ok, f"lock released after {hold} s: {result.stderr[-300:]}")
                first = min(run.uploaded_at for run in _summaries(url)) if ok else None
                rows.append({"hold": hold, "timeout": timeout, "ok": ok, "seconds": elapsed,
                             "written_after_release_s": (first - released).total_seconds() if ok else None})
            else:
                lines = result.stderr.splitlines()
                ok = (result.returncode == 2 and not stored and len(lines) == 3
                      and "is locked by another writer" in lines[0] and lines[-1].endswith("2 of 2 bundles not stored"))
                expect(ok, f"lock held past {timeout} s: {result.stderr[-400:]}")
                rows.append({"hold": None, "timeout": timeout, "ok": ok, "seconds": elapsed, "message": lines[0][-160:]})
    summary: dict = {"repeats": repeats, "cases": []}
    for hold, timeout in sorted({(r["hold"] or 0, r["timeout"]) for r in rows}):
        same = [r for r in rows if (r["hold"] or 0) == hold and r["timeout"] == timeout]
        entry = {"lock_held_s": hold or "past the timeout", "busy_timeout_s": timeout,
                 "ok": f"{sum(r['ok'] for r in same)}/{len(same)}",
                 "median_push_seconds": round(statistics.median(r["seconds"] for r in same), 2)}
        if hold:
            entry["median_first_write_after_release_s"] = round(statistics.median(
                r["written_after_release_s"] for r in same if r["ok"]), 3)
        summary["cases"].append(entry)
    print(f"sqlite lock: {json.dumps(summary)}", flush=True)
    summary["failure_message"] = next((r["message"] for r in rows if r["hold"] is None), "")
    return summary


def _summaries(url: str):
    from driftboard.db.store import Store

    with Store(url) as store:
        return store.runs(per_page=1000).runs


# ---------------------------------------------------------------- 3. PostgreSQL connection lost, server restarted


def server_ready(timeout: float = 90) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        with contextlib.suppress(Exception):
            postgres_admin("SELECT 1")
            return time.perf_counter() - start
        time.sleep(0.2)
    raise SystemExit("PostgreSQL did not come back")


def restart_server() -> float:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    start = time.perf_counter()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True,
                   capture_output=True)
    server_ready()
    return time.perf_counter() - start


def connection_campaign(tmp: Path, terminations: int, restarts: int) -> dict:
    summary: dict = {"terminated": [], "restarted_inside_transaction": [], "restarted_at_random": []}
    for kind, count in (("terminated", terminations), ("restarted_inside_transaction", restarts)):
        for t in range(count):
            with postgres_schema("conn") as base:
                upgrade_schema(base)
                name = f"driftboard-campaign-{uuid.uuid4().hex[:8]}"
                url = with_query(base, application_name=name)
                files = list(make_bundles(tmp / f"{kind}-{t}", [(500 + k, t) for k in range(3)]))
                marker, go = tmp / f"{kind}-{t}.inside", tmp / f"{kind}-{t}.go"
                pusher = paused_push(files, url, marker, go)
                wait_for(marker, pusher)
                took = restart_server() if kind != "terminated" else float(terminate_backends(name))
                go.touch()
                out, err = pusher.communicate(timeout=300)
                summary[kind].append(_connection_outcome(kind, t, url, files, pusher.returncode, out, err, took))
    for t in range(restarts and 2):
        with postgres_schema("conn") as url:
            upgrade_schema(url)
            files = list(make_bundles(tmp / f"random-{t}", [(600 + k, t) for k in range(120)]))
            out_path, err_path = tmp / f"random-{t}.out", tmp / f"random-{t}.err"
            with out_path.open("w") as out_file, err_path.open("w") as err_file:
                pusher = subprocess.Popen([*CLI, "push", *map(str, files), "--db", url], cwd=REPO, text=True,
                                          stdout=out_file, stderr=err_file)
                after = random.Random(t).randint(10, 90)  # restart once this many bundles are through
                while pusher.poll() is None and _lines(out_path) + _lines(err_path) < after:
                    time.sleep(0.005)
                running = pusher.poll() is None
                took = restart_server()
                pusher.wait(timeout=600)
            out, err = out_path.read_text(), err_path.read_text()
            expect(running, f"restart {t}: the push had finished before the restart")
            summary["restarted_at_random"].append(
                _connection_outcome("restarted_at_random", t, url, files, pusher.returncode, out, err, took))
    print(f"postgres connection: {json.dumps(summary)}", flush=True)
    return summary


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def _connection_outcome(kind: str, t: int, url: str, files: list[Path], code: int, out: str, err: str,
                        took: float) -> dict:
    errors = [line for line in err.splitlines() if ": not stored: " in line]
    stored_first = len(stored_runs(url))
    problems = integrity_problems(url)
    expect(problems == [], f"{kind} {t}: {problems[:5]}")
    other = [line for line in err.splitlines() if line not in errors]
    expect(other == ([f"driftboard: error: {len(errors)} of {len(files)} bundles not stored"] if errors else []),
           f"{kind} {t}: stderr has more than one line per bundle and the summary: {other[:3]}")
    expect(code in (0, 2), f"{kind} {t}: exit status {code}: {err[-300:]}")
    again = push(files, url)
    final = stored_runs(url)
    expect(again.returncode == 0 and set(final) == {run_id_of(p) for p in files},
           f"{kind} {t}: re-push: {again.stderr[-300:]}")
    expect(integrity_problems(url, deep=True) == [], f"{kind} {t}: integrity after the re-push")
    from driftboard.db.session import database_url, redacted

    prefix = f"database {redacted(database_url(url))}: "
    messages = Counter(line.split(": not stored: ", 1)[1].replace(prefix, "")[:110] for line in errors)
    outcome = {"exit": code, "stored_by_the_push": stored_first, "of": len(files), "errors": len(errors),
               "error_messages": dict(messages),
               "leftover_rows": len(problems), "after_repush": len(final)}
    if kind != "terminated":
        outcome["restart_seconds"] = round(took, 1)
    print(f"  {kind} {t}: {outcome}", flush=True)
    return outcome


# ---------------------------------------------------------------- 4. corrupt and truncated SQLite files


def corrupt_campaign(tmp: Path) -> dict:
    from db_factory import make_run

    from driftboard.core.bundle import bundle_bytes
    from driftboard.db.store import Store

    real = tmp / "real.sqlite"
    with Store(str(real)) as store:
        for machine in range(12):
            run, arrays = make_run(machine, 1, drift={"linear_1024": machine, "lstm_2layer": machine})
            store.ingest(bundle_bytes(run, arrays))
    data = real.read_bytes()
    rng = random.Random(5)
    variants = {f"garbage {n} bytes": rng.randbytes(n) for n in (1, 100, 4096, 65536, len(data) // 2)}
    page = 16384
    variants["garbage after a valid header"] = data[:100] + rng.randbytes(len(data) // 2)
    variants["garbage after a valid header, whole pages"] = data[:100] + rng.randbytes(page * 40 - 100)
    for fraction in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.9999):
        variants[f"truncated to {fraction:.2%}"] = data[: int(len(data) * fraction)]
    for fraction in (0.01, 0.5, 0.99):
        variants[f"truncated to {fraction:.0%}, on a page boundary"] = data[: int(len(data) * fraction) // page * page]
    bundle = next(iter(make_bundles(tmp / "corrupt-bundle", [(999, 1)])))
    commands = {"push": ["push", str(bundle)], "runs": ["runs"], "db upgrade": ["db", "upgrade"],
                "db status": ["db", "status"], "serve": ["serve", "--port", str(_free_port())]}
    rows = []
    for name, content in variants.items():
        for command, argv in commands.items():
            directory = tmp / f"corrupt-{len(rows)}"
            directory.mkdir()
            path = directory / "team.sqlite"
            path.write_bytes(content)
            os.utime(path, ns=(1_700_000_000_000_000_000,) * 2)
            before = _fingerprint(path)
            try:
                done = subprocess.run([*CLI, *argv, "--db", str(path)], cwd=REPO, capture_output=True, text=True,
                                      timeout=60)
                code, err = done.returncode, done.stderr
            except subprocess.TimeoutExpired:  # serve started Streamlit on a file it should have refused
                code, err = None, "timed out: the command ran"
            unchanged = _fingerprint(path) == before and sorted(p.name for p in directory.iterdir()) == ["team.sqlite"]
            one_line = err.count("\n") == 1 and err.startswith("driftboard: error: database ")
            rows.append({"file": name, "command": command, "exit": code, "one_line": one_line,
                         "unchanged": unchanged,
                         "message": re.sub(r"\d+", "N", err.strip().split(".sqlite: ", 1)[-1].split(" (")[0])})
            expect(code == 2 and one_line and unchanged, f"corrupt {name} / {command}: exit {code}, {err[-300:]}")
    summary = {"files": len(variants), "commands": len(commands), "runs": len(rows),
               "refused_one_line": sum(r["exit"] == 2 and r["one_line"] for r in rows),
               "file_unchanged": sum(r["unchanged"] for r in rows),
               "messages": sorted(Counter(r["message"] for r in rows).items())}
    print(f"sqlite corrupt: {json.dumps(summary)}", flush=True)
    return summary


# ---------------------------------------------------------------- 5. upgrading a database with runs in it


def migration_campaign(url: str, runs: int) -> dict:
    import bench_store
    from db_factory import manifest_digest
    from test_migration_upgrade import snapshot

    from driftboard.core.bundle import Bundle
    from driftboard.db import migrate
    from driftboard.db.session import make_engine
    from driftboard.db.store import Store

    engine = make_engine(url)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    machines = 40
    start = time.perf_counter()
    head = migrate.HEAD_REVISION
    migrate.HEAD_REVISION = "0001"  # the store as it was at 0001
    try:
        with Store(url) as store:
            for seq in range(max(1, runs // machines)):
                for machine in range(machines):
                    run, arrays = bench_store._fleet_run(machine, seq)
                    store.ingest_bundle(Bundle(run, arrays, manifest_digest(run), sum(map(len, arrays.blobs.values()))))
            for machine in (0, 1, 2):
                store.set_golden(f"m{machine:04d}-r00000-default", set_by="campaign", reason="baseline")
            verdicts = store.refresh_verdicts()
    finally:
        migrate.HEAD_REVISION = head
    built = time.perf_counter() - start
    before = snapshot(url)
    start = time.perf_counter()
    done = subprocess.run([*CLI, "db", "upgrade", "--db", url], cwd=REPO, capture_output=True, text=True)
    upgrade_seconds = time.perf_counter() - start
    after = snapshot(url)
    expect(done.returncode == 0 and done.stdout.strip().endswith("schema revision 0001 -> 0002"),
           f"migration: db upgrade said {done.stdout.strip()} {done.stderr.strip()}")
    expect(after == before, "migration: rows changed by the upgrade")
    problems = integrity_problems(url, deep=True)
    expect(problems == [], f"migration: {problems[:5]}")
    summary = {"database": url.split(":", 1)[0], "runs": len(before["runs"]), "case_results": len(before["case_results"]),
               "case_outcomes": len(before["case_outcomes"]), "arrays": len(before["arrays"]),
               "verdicts": len(before["verdicts"]), "computed_verdicts": verdicts,
               "rows_compared": sum(map(len, before.values())), "identical_after_upgrade": after == before,
               "build_seconds": round(built), "upgrade_seconds": round(upgrade_seconds, 2)}
    print(f"migration: {json.dumps(summary)}", flush=True)
    return summary


def _with_postgres(fn):
    with postgres_schema("migration") as url:
        return fn(url)


def delete_timing(tmp: Path, outcomes: int = 100_000, deletes: int = 5) -> dict:
    """Median seconds of ``Store.delete_run`` (a run whose 32 arrays no other run uses) among ``outcomes``
    case outcomes, without revision 0002's index on case_outcomes.output_sha and with it."""
    import hashlib

    from db_factory import SUITE, make_bundle
    from sqlalchemy import text

    from driftboard.db.store import Store

    result = {}
    for with_index in (False, True):
        path = tmp / f"delete-{with_index}.sqlite"
        with Store(str(path)) as store:
            store.ingest(make_bundle(1, 1))
            with store.engine.begin() as conn:
                sha = conn.execute(text("SELECT sha256 FROM arrays LIMIT 1")).scalar()
                conn.execute(text(
                    "INSERT INTO case_outcomes (digest, case_id, device, dtype, input_digest, weight_digest, output_sha, "
                    "output_dtype, output_shape, layers) VALUES (:d, 'x', 'cpu', 'float32', :d, :d, :s, 'float32', "
                    "'[1]', '[]')"), [{"d": hashlib.sha256(str(i).encode()).hexdigest(), "s": sha}
                                     for i in range(outcomes)])
                if not with_index:
                    conn.execute(text("DROP INDEX ix_case_outcomes_output_sha"))
            times = []
            for k in range(deletes):
                run_id = store.ingest(make_bundle(2, k, drift={c: 100 + k for c in SUITE})).run_id
                start = time.perf_counter()
                store.delete_run(run_id)
                times.append(time.perf_counter() - start)
        result["with index (0002)" if with_index else "without index (0001)"] = round(statistics.median(times), 4)
    print(f"delete_run among {outcomes} outcomes, median of {deletes}: {json.dumps(result)}", flush=True)
    return result


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["kill", "lock", "connection", "corrupt", "migration"], action="append")
    parser.add_argument("--migration-runs", type=int, default=10000, help="runs in the database upgraded")
    parser.add_argument("--kills", type=int, default=60, help="kill trials per database (>= 50 for the doc)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each lock case")
    parser.add_argument("--terminations", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=3, help="real server restarts inside a transaction")
    parser.add_argument("--no-restart", action="store_true", help="never restart the shared PostgreSQL server")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    parts = args.only or ["kill", "lock", "connection", "corrupt", "migration"]
    rng = random.Random(args.seed)
    load_average = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"fault campaign: {os.cpu_count()} CPUs, load average {load_average}, seed {args.seed}", flush=True)
    figures: dict = {"cpus": os.cpu_count(), "load_average": load_average, "seed": args.seed}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="driftboard-faults-") as name:
        tmp = Path(name)
        if "kill" in parts:
            figures["kill_sqlite"] = kill_campaign("sqlite", sqlite_url, tmp / "ks", args.kills, rng)
            figures["kill_sqlite_new_file"] = schema_creation_kills(tmp / "kn", 10, rng)
            figures["kill_postgres"] = kill_campaign("postgres", postgres_url, tmp / "kp", args.kills, rng)
        if "lock" in parts:
            figures["lock_sqlite"] = lock_campaign(tmp / "lock", args.repeats)
        if "connection" in parts:
            figures["connection_postgres"] = connection_campaign(tmp / "conn", args.terminations,
                                                                 0 if args.no_restart else args.restarts)
        if "corrupt" in parts:
            figures["corrupt_sqlite"] = corrupt_campaign(tmp / "corrupt")
        if "migration" in parts:
            (tmp / "migration").mkdir()
            figures["migration"] = {
                "sqlite": migration_campaign(f"sqlite:///{tmp / 'migration' / 'old.sqlite'}", args.migration_runs),
                "postgres": _with_postgres(lambda url: migration_campaign(url, args.migration_runs)),
                "delete_with_100k_outcomes": delete_timing(tmp / "migration"),
            }
    figures["seconds"] = round(time.perf_counter() - start)
    figures["broken"] = BROKEN
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print(f"fault campaign done in {figures['seconds']} s: "
          f"{'every promise held' if not BROKEN else f'{len(BROKEN)} BROKEN: ' + '; '.join(BROKEN[:10])}")
    sys.exit(1 if BROKEN else 0)


if __name__ == "__main__":
    main()
