"""A pusher cannot change a stored run, on a real PostgreSQL with the grants of docs/DEPLOY.md.

The review that found the hole: with the old grants a member added another
run's case results and a tag to the golden (golden against a oneDNN-off run
went from some cases within tolerance to all identical), renamed every machine
with one UPDATE, and recorded any name as the uploader. Here a member of the
pushers' role tries each of those, and more, against a stored golden: every
attempt is refused and every row of every table is unchanged. Pushing still
works, from four processes at once, and writes exactly what a direct write
would. The grants come from the doc (``pg_cluster``), the roles are this
test's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from db_factory import make_bundle, write_bundle_file
from pg_cluster import ROOT, Cluster, admin, migrate_and_grant, refused, scratch_cluster, sql_as
from sqlalchemy import text
from sqlalchemy.engine import make_url
from test_faults import integrity_problems
from test_migration_upgrade import snapshot

from driftboard.core.bundle import read_bundle
from driftboard.core.processes import driftboard_command
from driftboard.db.migrate import upgrade
from driftboard.db.session import make_engine
from driftboard.db.store import Store
from driftboard.db.store import ingest_pusher as pusher
from driftboard.db.store.ingest import _Plan, _stored_form

pytestmark = pytest.mark.postgres

GOLDEN = "m0001-r00000-default"
ONEDNN_OFF = "m0001-r00001-onednn-off"

# The pushers' grants of driftboard before schema revision 0003, as a deployment that upgrades still has them.
OLD_PUSHER_GRANTS = """
GRANT USAGE ON SCHEMA public TO driftboard_pusher;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO driftboard_pusher;
GRANT INSERT ON machines, environments, runs, run_tags, arrays, case_outcomes, outcome_arrays, case_results
    TO driftboard_pusher;
GRANT UPDATE (first_seen, last_seen, hostname) ON machines TO driftboard_pusher;
GRANT USAGE ON SEQUENCE machines_id_seq, environments_id_seq, runs_id_seq, case_outcomes_id_seq
    TO driftboard_pusher;
"""


@pytest.fixture
def cluster(postgres_url) -> Iterator[Cluster]:
    with scratch_cluster(postgres_url) as cluster:
        yield cluster


@pytest.fixture
def golden(cluster) -> Cluster:
    """The doc's grants; the dashboard's role stored a golden and a oneDNN-off run of the same machine."""
    migrate_and_grant(cluster)
    with Store(cluster.urls["app"]) as store:
        store.ingest(make_bundle(1, 0, label="golden"), uploader="dashboard (admin)")
        store.ingest(make_bundle(1, 1, variant="onednn-off", drift={"linear_1024": 1, "mlp_kaiming": 1}))
        store.set_golden(GOLDEN, set_by="admin", reason="baseline")
        store.refresh_verdicts()
    return cluster


def _counts(cluster: Cluster) -> dict[str, int]:
    with Store(cluster.urls["member"]) as store:
        return store.compare(GOLDEN, ONEDNN_OFF).counts()


def _plan(data: bytes) -> tuple[_Plan, dict[str, bytes]]:
    """What ``Store.ingest`` would pass to driftboard_push_run: the plan and every array's stored form."""
    bundle = read_bundle(data)
    plan = _Plan.of(bundle, "")
    return plan, {sha: _stored_form(plan.blobs[sha], None) for sha in plan.array_shas}


def _call_push_run(cluster: Cluster, payload: dict[str, Any], plan: _Plan, arrays: dict[str, bytes]) -> None:
    """driftboard_push_run called by hand as the member, with a payload of its choosing."""
    from sqlalchemy.exc import SQLAlchemyError

    from driftboard.db.session import store_error

    engine = make_engine(cluster.urls["member"])
    try:
        with engine.begin() as conn:
            shas = [a["sha256"] for a in payload["arrays"]]
            conn.execute(pusher._CALL, {"plan": json.dumps(payload), "data": [arrays[s] for s in shas],
                                        "fingerprint": pusher._FINGERPRINT.process_bind_param(
                                            plan.run.fingerprint, engine.dialect)})
    except SQLAlchemyError as exc:
        raise store_error(exc, cluster.urls["member"]) from exc
    finally:
        engine.dispose()


def _push(cluster: Cluster, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driftboard_command(), "push", *args, "--db", cluster.urls[who]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_a_pusher_cannot_add_to_rename_change_or_delete_what_is_stored(golden, tmp_path):
    owner = golden.urls["owner"]
    before, counts = snapshot(owner), _counts(golden)
    assert set(counts) - {"identical"}, counts  # the oneDNN-off run differs somewhere: an attack would show
    run_pk = f"(SELECT id FROM runs WHERE run_id = '{GOLDEN}')"
    attacks = [
        # the review's findings: another run's case results and a tag added to the golden, every machine renamed
        "INSERT INTO case_results (run_pk, position, outcome_id, repeats, repeat_identical, seconds) "
        f"SELECT {run_pk}, 1000 + c.position, c.outcome_id, 1, true, 0 FROM case_results c "
        f"JOIN runs r ON r.id = c.run_pk WHERE r.run_id = '{ONEDNN_OFF}'",
        f"INSERT INTO run_tags (run_pk, tag) VALUES ({run_pk}, 'forged')",
        "UPDATE machines SET hostname = 'renamed'",
        "UPDATE machines SET last_seen = now()",
        # runs, goldens, verdicts
        "UPDATE runs SET label = 'rewritten'",
        "UPDATE runs SET uploader = 'bob'",
        f"DELETE FROM runs WHERE run_id = '{ONEDNN_OFF}'",
        "TRUNCATE runs CASCADE",
        "INSERT INTO goldens (name, suite_id, suite_version, device_class, run_pk, set_by, set_at, reason) "
        "SELECT 'default', suite_id, suite_version, 'cuda', id, 'bob', now(), '' FROM runs LIMIT 1",
        f"UPDATE goldens SET run_pk = (SELECT id FROM runs WHERE run_id = '{ONEDNN_OFF}')",
        "DELETE FROM goldens",
        "UPDATE verdicts SET worst = 'identical'",
        "DELETE FROM verdicts",
        # what a stored run is made of: outcomes, their array links, arrays, environments
        "INSERT INTO outcome_arrays (outcome_id, array_sha) SELECT o.id, a.sha256 FROM case_outcomes o, arrays a "
        "WHERE NOT EXISTS (SELECT 1 FROM outcome_arrays x WHERE x.outcome_id = o.id AND x.array_sha = a.sha256) "
        "LIMIT 1",
        "UPDATE case_outcomes SET output_sha = NULL",
        "UPDATE arrays SET data = ''::bytea",
        "DELETE FROM arrays",
        "UPDATE environments SET torch_version = '9.9'",
        "INSERT INTO environments (content_key, digest, fingerprint) VALUES (repeat('a', 64), repeat('a', 64), '')",
        "INSERT INTO machines (machine_key, hostname, first_seen, last_seen) VALUES ('k', 'h', now(), now())",
        "INSERT INTO runs (run_id, bundle_digest, bundle_size, created_at, captured_at, uploaded_at, uploader, "
        "label, tags, note, suite_id, suite_version, variant, device_class, settings, tool_version, imported, "
        "case_count, machine_id, environment_id) SELECT 'forged', repeat('b', 64), 1, created_at, captured_at, "
        "now(), 'bob', '', '[]', '', suite_id, suite_version, 'x', device_class, '{}', '', false, 0, machine_id, "
        f"environment_id FROM runs WHERE run_id = '{GOLDEN}'",
        "SELECT nextval('runs_id_seq')",
        f"SET ROLE {golden.names['owner']}",
    ]
    for sql in attacks:
        refused(lambda sql=sql: sql_as(golden, "member", sql))
    refused(lambda: sql_as(golden, "member", "CREATE OR REPLACE FUNCTION driftboard_push_run(p_plan jsonb, "
                                                "p_fingerprint bytea, p_array_data bytea[]) RETURNS integer "
                                                "LANGUAGE sql AS 'SELECT 1'"))  # permission denied for schema
    refused(lambda: sql_as(golden, "member", "ALTER FUNCTION driftboard_push_run(jsonb, bytea, bytea[]) "
                                             "SECURITY INVOKER"), "must be owner")

    with Store(golden.urls["member"]) as store:  # the store's own write path refuses the same things
        refused(lambda: store.delete_run(ONEDNN_OFF))
        refused(lambda: store.set_golden(ONEDNN_OFF, set_by="bob"))
        refused(lambda: store.clear_golden(store.goldens()[0].key))
        # another member's name as the uploader: refused before anything is written
        message = refused(lambda: store.ingest(make_bundle(2, 0), uploader="bob"))
        assert golden.names["member"] in message and "'bob'" in message
    path = write_bundle_file(tmp_path, 3, 0)
    done = _push(golden, "member", str(path), "--uploader", "bob")
    assert done.returncode == 2 and "permission denied" in done.stderr and "bob" in done.stderr, done.stderr

    assert snapshot(owner) == before
    assert _counts(golden) == counts


def test_driftboard_push_run_can_only_create_a_new_run(golden):
    """Called by hand with a payload of the member's choosing, the function still touches no stored row."""
    owner = golden.urls["owner"]
    stored, arrays = _plan(make_bundle(1, 0, label="golden"))
    before, counts = snapshot(owner), _counts(golden)
    shas = sorted(arrays)
    again = pusher._payload(stored, shas)  # the golden's own bundle again, and with only its run id reused
    refused(lambda: _call_push_run(golden, again, stored, arrays), "uq_runs_bundle_digest")
    reused = {**again, "run": {**again["run"], "bundle_digest": "c" * 64}}
    refused(lambda: _call_push_run(golden, reused, stored, arrays), "uq_runs_run_id")
    short = {**again, "run": {**again["run"], "run_id": "short", "bundle_digest": "d" * 64, "case_count": 3}}
    refused(lambda: _call_push_run(golden, short, stored, arrays), "18 cases for a case_count of 3")
    stray = {**again, "run": {**again["run"], "run_id": "stray", "bundle_digest": "f" * 64},
             "cases": [{**again["cases"][0], "outcome": "0" * 64}, *again["cases"][1:]]}
    refused(lambda: _call_push_run(golden, stray, stored, arrays), "a case names an outcome the plan does not hold")
    assert snapshot(owner) == before

    # A new run built from the golden's outcomes, naming extra array links for them and another uploader:
    # the run is created, as the member's; the outcomes stored before keep exactly their links.
    other_sha = next(sha for sha in shas if sha != stored.outcomes[next(iter(stored.outcomes))]["output_sha"])
    forged = {**again, "run": {**again["run"], "run_id": "new-run", "bundle_digest": "e" * 64, "uploader": "bob"},
              "links": [*again["links"], *({"digest": d, "array_sha": other_sha} for d in stored.outcomes)],
              "machine": {**again["machine"], "machine_key": "another-machine"}}
    _call_push_run(golden, forged, stored, arrays)
    after = snapshot(owner)
    for table, rows in before.items():  # every row stored before is still there, unchanged
        assert all(row in after[table] for row in rows), table
    for table in ("case_outcomes", "outcome_arrays", "arrays", "environments", "goldens", "verdicts"):
        assert after[table] == before[table], table
    assert len(after["runs"]) == len(before["runs"]) + 1
    with Store(golden.urls["member"]) as store:
        assert store.run("new-run").uploader == golden.names["member"]
    assert _counts(golden) == counts
    assert integrity_problems(owner) == []


def test_pushes_from_four_processes_store_every_run_once_as_the_member(golden, tmp_path):
    owner = golden.urls["owner"]
    before = snapshot(owner)
    # Six bundles, each pushed by two of four processes at once: two machines seen again (the golden's among
    # them), shared arrays and outcomes, new ones where a run drifts, a tag.
    files = [write_bundle_file(tmp_path, machine, seq, drift={"lstm_2layer": seq} if seq % 2 else {},
                               tags=("nightly",))
             for machine, seq in ((1, 2), (1, 3), (2, 0), (2, 1), (3, 0), (4, 5))]
    shares = [[str(files[(i + k) % 6]) for k in range(3)] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda share: _push(golden, "member", *share), shares))
    assert [d.returncode for d in done] == [0, 0, 0, 0], [d.stderr for d in done]
    lines = [line for d in done for line in d.stdout.splitlines()]
    assert sum(": stored run " in line for line in lines) == 6
    assert sum(": already stored as run " in line for line in lines) == 6

    again = _push(golden, "member", str(files[0]))  # a duplicate push writes nothing
    assert again.returncode == 0 and ": already stored as run " in again.stdout
    after = snapshot(owner)
    for table, rows in before.items():  # everything stored before is still there, unchanged
        if table != "machines":
            assert all(row in after[table] for row in rows), table
    assert len(after["runs"]) == len(before["runs"]) + 6
    assert integrity_problems(owner) == []
    with Store(owner) as store:
        runs = {f.name.removesuffix(".driftboard"): store.run(f.name.removesuffix(".driftboard")) for f in files}
        assert {r.uploader for r in runs.values()} == {golden.names["member"]}
        assert store.run(GOLDEN).uploader == "dashboard (admin)"
        machine = next(m for m in store.machines() if m.machine_key == runs["m0001-r00003-default"].machine_key)
        assert machine.last_seen == runs["m0001-r00003-default"].captured_at  # a later run moves last_seen


@pytest.fixture
def direct_url(cluster) -> Iterator[str]:
    """A second scratch schema, migrated, written by the superuser (the direct path)."""
    base = make_url(cluster.admin_url)
    schema = f"{cluster.schema}_direct"
    admin(cluster.admin_url, f'CREATE SCHEMA "{schema}"')
    url = base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    try:
        yield url
    finally:
        admin(cluster.admin_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_function_writes_the_same_rows_as_a_direct_write(cluster, direct_url):
    """Every column of every row, but who uploaded and when: the two write paths cannot drift apart."""
    data = [make_bundle(1, 0, label="golden"), make_bundle(1, 1, variant="onednn-off", drift={"linear_1024": 1,
                                                                                           "mlp_kaiming": 1}),
            make_bundle(5, 0, devices=("cpu", "cuda"), cuda="12.4", gpu="NVIDIA A100-SXM4-80GB",
                        error_case="rng_randn", tags=("b", "a", "b"), note="ü\nline", seconds=0.1 + 0.2),
            make_bundle(1, 2, drift={"lstm_2layer": 3}), make_bundle(6, 0, imported=True)]
    golden = migrate_and_grant(cluster)
    for url in (golden.urls["member"], direct_url):
        with Store(url) as store:
            for bundle in data:
                assert store.ingest(bundle).created
            assert store.run(GOLDEN).uploader == (golden.names["member"] if url != direct_url else "postgres")
    through_function, direct = snapshot(golden.urls["owner"]), snapshot(direct_url)
    skip = {"id", "uploader", "uploaded_at", "machine_id", "environment_id", "outcome_id", "run_pk",
            "at", "actor"}  # write_log: when, and who (the login, as for uploader)

    def rows(snap: dict[str, list[tuple[Any, ...]]], table: str, url: str) -> list[tuple[Any, ...]]:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                names = list(conn.execute(text(f"SELECT * FROM {table} LIMIT 0")).keys())
        finally:
            engine.dispose()
        keep = [i for i, name in enumerate(names) if name not in skip]
        return sorted(tuple(repr(row[i]) for i in keep) for row in snap[table])

    for table in direct:
        assert rows(through_function, table, golden.urls["owner"]) == rows(direct, table, direct_url), table
    with Store(golden.urls["member"]) as a, Store(direct_url) as b:
        for run in b.runs(per_page=100).runs:
            assert a.load_run(run.run_id)[0] == b.load_run(run.run_id)[0]


def test_a_viewer_reads_and_cannot_push(golden, tmp_path):
    with Store(golden.urls["reader"]) as store:
        assert store.runs().total == 2
        assert store.compare(GOLDEN, ONEDNN_OFF).counts() == _counts(golden)
        refused(lambda: store.ingest(make_bundle(2, 0)))
    refused(lambda: sql_as(golden, "reader", "INSERT INTO run_tags (run_pk, tag) SELECT id, 'x' FROM runs LIMIT 1"))
    stored, arrays = _plan(make_bundle(2, 0))
    payload = pusher._payload(stored, sorted(arrays))
    with pytest.raises(Exception, match="permission denied for function driftboard_push_run"):
        engine = make_engine(golden.urls["reader"])
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT driftboard_push_run(CAST(:p AS jsonb), NULL, NULL)"),
                             {"p": json.dumps(payload)})
        finally:
            engine.dispose()


def test_regranting_after_the_upgrade_takes_back_the_old_pusher_grants(cluster):
    """A deployment that ran the grants of an older driftboard runs the new block after upgrading."""
    migrate_and_grant(cluster, OLD_PUSHER_GRANTS)
    sql_as(cluster, "member", "UPDATE machines SET hostname = 'renamed'")  # the hole, before
    migrate_and_grant(cluster)
    with Store(cluster.urls["app"]) as store:
        store.ingest(make_bundle(1, 0))
    for sql in ("UPDATE machines SET hostname = 'renamed'", "UPDATE machines SET last_seen = now()",
                "INSERT INTO run_tags (run_pk, tag) SELECT id, 'forged' FROM runs",
                "SELECT nextval('machines_id_seq')"):
        refused(lambda sql=sql: sql_as(cluster, "member", sql))
    with Store(cluster.urls["member"]) as store:
        assert store.ingest(make_bundle(1, 1)).created


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([str(Path(__file__))]))
