"""The PostgreSQL roles of docs/DEPLOY.md, on a real server: a pusher can push and cannot delete.

The grants are read from the documentation itself (``pg_cluster.grants_sql``),
so the doc and what is checked cannot drift apart. The attacks on stored runs
(a golden's case results, machines, the uploader) are in test_pg_pusher.py.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from db_factory import make_bundle
from pg_cluster import ROOT, Cluster, grants_sql, migrate_and_grant, refused, scratch_cluster, sql_as, statements

from driftboard.core.bundle import bundle_bytes
from driftboard.core.imported import run_from_report
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays
from driftboard.db.store import Store

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster(postgres_url) -> Iterator[Cluster]:
    with scratch_cluster(postgres_url) as cluster:
        yield cluster


@pytest.fixture
def granted(cluster) -> Cluster:
    """The schema migrated by the owner, then the doc's grants run by the owner."""
    return migrate_and_grant(cluster)


def test_the_doc_grants_pushers_and_viewers_no_write_on_any_table() -> None:
    granted_to = {role: [s for s in statements(grants_sql()) if s.startswith("GRANT") and f"driftboard_{role}" in s]
                  for role in ("pusher", "viewer")}
    for grants in granted_to.values():
        assert not any(re.search(r"\b(INSERT|UPDATE|DELETE|TRUNCATE|ALL PRIVILEGES)\b", s) for s in grants)
        assert not any(re.search(r"\b(goldens|verdicts|SEQUENCE)\b", s) for s in grants)
    assert [s for s in granted_to["pusher"] if "EXECUTE" in s] == [
        "GRANT EXECUTE ON FUNCTION driftboard_push_run(jsonb, bytea, bytea[]) TO driftboard_pusher"]
    assert not any("EXECUTE" in s for s in granted_to["viewer"])


def test_a_pusher_can_push_and_cannot_delete_or_change(granted, tmp_path) -> None:
    member, app = granted.urls["member"], granted.urls["app"]
    with Store(member) as store:  # opening checks the schema revision: readable by the pusher
        assert store.ingest(make_bundle(1, 0, label="first")).created
        assert store.ingest(make_bundle(1, 1, label="same machine, later")).created  # updates machines.last_seen
        assert store.ingest(make_bundle(2, 0, label="another machine")).created
        assert not store.ingest(make_bundle(1, 0, label="first")).created  # a duplicate changes nothing
        imported, _ = run_from_report("PyTorch version: 2.5.1\nIs debug build: False\nCUDA used to build PyTorch: None\n")
        assert store.ingest(bundle_bytes(imported, MemoryArrays())).created
        before = store.stats()

        refused(lambda: store.delete_run("m0001-r00000-default"))
        refused(lambda: store.set_golden("m0001-r00000-default", set_by="alice"))
    for sql in ("DELETE FROM runs", "UPDATE runs SET label = 'rewritten'", "DELETE FROM arrays",
                "UPDATE arrays SET codec = 'deflate'", "DELETE FROM machines", "TRUNCATE runs",
                "INSERT INTO verdicts (golden_run_pk, run_pk, policy, worst, counts, computed_at) "
                "SELECT id, id, 'default', 'identical', '{}', now() FROM runs LIMIT 1"):
        refused(lambda sql=sql: sql_as(granted, "member", sql))
    with Store(member) as store:
        assert store.stats() == before
        assert store.run("m0001-r00000-default").label == "first"

    path = tmp_path / "pushed.driftboard"
    path.write_bytes(make_bundle(3, 0, label="by driftboard push"))
    done = subprocess.run([*driftboard_command(), "push", str(path), "--db", member], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stored run m0003-r00000-default" in done.stdout
    with Store(member) as store:  # recorded as uploaded by the login that pushed, whatever the OS user is called
        assert {store.run(f"m000{m}-r00000-default").uploader for m in (1, 2, 3)} == {granted.names["member"]}

    with Store(app) as store:  # the dashboard server may do what pushers may not, but not change the schema
        store.set_golden("m0001-r00000-default", set_by="dashboard")
        assert store.refresh_verdicts() >= 1
        assert store.ingest(make_bundle(4, 0), uploader="dashboard (alice)").created
        assert store.run("m0004-r00000-default").uploader == "dashboard (alice)"  # the member who uploaded
        assert store.delete_run("m0002-r00000-default").run_id == "m0002-r00000-default"
    with Store(member) as store:  # verdicts are the server's cache: a pusher's `driftboard runs` cannot add one
        assert store.ingest(make_bundle(5, 0, drift={"lstm_2layer": 1})).created
        refused(lambda: store.refresh_verdicts())
    refused(lambda: sql_as(granted, "app", "DROP TABLE runs"), "must be owner")
    refused(lambda: sql_as(granted, "app", "UPDATE alembic_version SET version_num = '9999'"))
    refused(lambda: sql_as(granted, "app", "CREATE TABLE intruder (x int)"))

