"""The PostgreSQL roles of docs/DEPLOY.md, on a real server: a pusher can push and cannot delete.

The grants are read from the documentation itself (the SQL block after the
``driftboard-grants`` marker), so the doc and what is checked cannot drift
apart. Roles are cluster-wide: each test run makes its own, with a random
suffix, owning a scratch schema (``postgres_url``), and drops them afterwards.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from db_factory import make_bundle
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from driftboard.core.bundle import bundle_bytes
from driftboard.core.errors import StoreError
from driftboard.core.imported import run_from_report
from driftboard.core.processes import driftboard_command
from driftboard.core.run import MemoryArrays
from driftboard.db.migrate import upgrade
from driftboard.db.session import make_engine
from driftboard.db.store import Store

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "DEPLOY.md"
ROLES = ("owner", "app", "pusher")


def grants_sql() -> str:
    """The grants block of docs/DEPLOY.md."""
    doc = DEPLOY.read_text(encoding="utf-8")
    found = re.search(r"<!-- driftboard-grants:.*?-->\s*```sql\n(.*?)```", doc, re.S)
    assert found, "docs/DEPLOY.md lost its driftboard-grants SQL block"
    return found.group(1)


def statements(sql: str) -> list[str]:
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in body.split(";") if s.strip()]


@dataclass(frozen=True)
class Cluster:
    schema: str
    names: dict[str, str]  # owner/app/pusher/member -> this run's role name
    urls: dict[str, str]  # owner/app/member -> a URL logging in as it, on the scratch schema

    def localize(self, sql: str) -> str:
        """The doc's SQL for this run: its role names, the scratch schema instead of public."""
        sql = re.sub(r"\bdriftboard_(owner|app|pusher)\b", lambda m: self.names[m.group(1)], sql)
        return re.sub(r"\bpublic\b", self.schema, sql)


def _admin(base: str, *sql: str) -> None:
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in sql:
                conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture
def cluster(postgres_url) -> Iterator[Cluster]:
    base = make_url(postgres_url)
    schema = base.query["options"].split("search_path=", 1)[1]
    admin_url = base.difference_update_query(["options"]).render_as_string(hide_password=False)
    suffix = uuid.uuid4().hex[:10]
    names = {role: f"driftboard_{role}_{suffix}" for role in ROLES} | {"member": f"alice_{suffix}"}
    password = secrets.token_urlsafe(16)  # works whether the server trusts local logins or asks for passwords
    _admin(admin_url,
           f"CREATE ROLE {names['owner']} LOGIN PASSWORD '{password}'",
           f"CREATE ROLE {names['app']} LOGIN PASSWORD '{password}'",
           f"CREATE ROLE {names['pusher']} NOLOGIN",
           f"CREATE ROLE {names['member']} LOGIN PASSWORD '{password}' IN ROLE {names['pusher']}",
           f'ALTER SCHEMA "{schema}" OWNER TO {names["owner"]}')
    urls = {who: base.set(username=names[who], password=password).render_as_string(hide_password=False)
            for who in ("owner", "app", "member")}
    try:
        yield Cluster(schema, names, urls)
    finally:
        drops = [f'DROP SCHEMA IF EXISTS "{schema}" CASCADE']
        for role in (names["member"], names["app"], names["pusher"], names["owner"]):
            drops += [f"DROP OWNED BY {role}", f"DROP ROLE {role}"]
        _admin(admin_url, *drops)


@pytest.fixture
def granted(cluster) -> Cluster:
    """The schema migrated by the owner, then the doc's grants run by the owner."""
    engine = make_engine(cluster.urls["owner"])
    try:
        upgrade(engine)
        with engine.begin() as conn:
            for statement in statements(cluster.localize(grants_sql())):
                conn.execute(text(statement))
    finally:
        engine.dispose()
    return cluster


def _refused(action, reason: str = "permission denied") -> str:
    with pytest.raises(StoreError) as info:
        action()
    assert reason in str(info.value), str(info.value)
    return str(info.value)


def _raw(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_the_doc_grants_only_what_ingest_needs_to_pushers() -> None:
    sql = grants_sql()
    pusher = [s for s in statements(sql) if "driftboard_pusher" in s]
    assert not any(re.search(r"\b(DELETE|TRUNCATE)\b", s) for s in pusher)
    assert not any(re.search(r"UPDATE\b(?! \(first_seen, last_seen, hostname\) ON machines)", s) for s in pusher)
    assert not any(re.search(r"\b(goldens|verdicts)\b", s) for s in pusher)


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

        _refused(lambda: store.delete_run("m0001-r00000-default"))
        _refused(lambda: store.set_golden("m0001-r00000-default", set_by="alice"))
    for sql in ("DELETE FROM runs", "UPDATE runs SET label = 'rewritten'", "DELETE FROM arrays",
                "UPDATE arrays SET codec = 'deflate'", "DELETE FROM machines", "TRUNCATE runs",
                "INSERT INTO verdicts (golden_run_pk, run_pk, policy, worst, counts, computed_at) "
                "SELECT id, id, 'default', 'identical', '{}', now() FROM runs LIMIT 1"):
        _refused(lambda sql=sql: _store_error(member, sql))
    with Store(member) as store:
        assert store.stats() == before
        assert store.run("m0001-r00000-default").label == "first"

    path = tmp_path / "pushed.driftboard"
    path.write_bytes(make_bundle(3, 0, label="by driftboard push"))
    done = subprocess.run([*driftboard_command(), "push", str(path), "--db", member], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stored run m0003-r00000-default" in done.stdout

    with Store(app) as store:  # the dashboard server may do what pushers may not, but not change the schema
        store.set_golden("m0001-r00000-default", set_by="dashboard")
        assert store.refresh_verdicts() >= 1
        assert store.ingest(make_bundle(4, 0)).created
        assert store.delete_run("m0002-r00000-default").run_id == "m0002-r00000-default"
    with Store(member) as store:  # verdicts are the server's cache: a pusher's `driftboard runs` cannot add one
        assert store.ingest(make_bundle(5, 0, drift={"lstm_2layer": 1})).created
        _refused(lambda: store.refresh_verdicts())
    _refused(lambda: _store_error(app, "DROP TABLE runs"), "must be owner")
    _refused(lambda: _store_error(app, "UPDATE alembic_version SET version_num = '9999'"))
    _refused(lambda: _store_error(app, "CREATE TABLE intruder (x int)"))


def _store_error(url: str, sql: str) -> None:
    """Run raw SQL as ``url``'s role; a database refusal becomes the StoreError the store would raise."""
    from sqlalchemy.exc import SQLAlchemyError

    from driftboard.db.session import store_error

    try:
        _raw(url, sql)
    except SQLAlchemyError as exc:
        raise store_error(exc, url) from exc
