"""The PostgreSQL roles of docs/DEPLOY.md on a real server, for tests: scratch roles, the doc's own grants.

The grants are read from the documentation itself (the SQL block after the
``driftboard-grants`` marker), so the doc and what is checked cannot drift
apart. Roles are cluster-wide: each test makes its own, with a random suffix,
owning a scratch schema (``postgres_url``), and drops them afterwards.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from driftboard.core.errors import StoreError
from driftboard.db.migrate import upgrade
from driftboard.db.session import make_engine, store_error

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "DEPLOY.md"
GROUPS = ("pusher", "viewer")  # NOLOGIN groups: people log in as their members
LOGINS = ("owner", "app")
MEMBERS = {"member": "pusher", "reader": "viewer"}  # a member's login -> its group


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
    names: dict[str, str]  # owner/app/pusher/viewer/member/reader -> this test's role name
    urls: dict[str, str]  # owner/app/member/reader -> a URL logging in as it, on the scratch schema
    admin_url: str  # the superuser, without the schema

    def localize(self, sql: str) -> str:
        """The doc's SQL for this test: its role names, the scratch schema instead of public."""
        sql = re.sub(r"\bdriftboard_(owner|app|pusher|viewer)\b", lambda m: self.names[m.group(1)], sql)
        return re.sub(r"\bpublic\b", self.schema, sql)

    def run_as(self, who: str, *sql: str) -> None:
        """Statements in one transaction, logged in as ``who``."""
        engine = make_engine(self.urls[who])
        try:
            with engine.begin() as conn:
                for statement in sql:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


def admin(base: str, *sql: str) -> None:
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in sql:
                conn.execute(text(statement))
    finally:
        engine.dispose()


@contextmanager
def scratch_cluster(postgres_url: str) -> Iterator[Cluster]:
    """This test's roles, the owner owning the scratch schema; all dropped afterwards."""
    base = make_url(postgres_url)
    schema = base.query["options"].split("search_path=", 1)[1]
    admin_url = base.difference_update_query(["options"]).render_as_string(hide_password=False)
    suffix = uuid.uuid4().hex[:10]
    names = {role: f"driftboard_{role}_{suffix}" for role in (*LOGINS, *GROUPS)}
    names |= {"member": f"alice_{suffix}", "reader": f"carol_{suffix}"}
    password = secrets.token_urlsafe(16)  # works whether the server trusts local logins or asks for passwords
    admin(admin_url,
          *(f"CREATE ROLE {names[role]} LOGIN PASSWORD '{password}'" for role in LOGINS),
          *(f"CREATE ROLE {names[role]} NOLOGIN" for role in GROUPS),
          *(f"CREATE ROLE {names[who]} LOGIN PASSWORD '{password}' IN ROLE {names[group]}"
            for who, group in MEMBERS.items()),
          f'ALTER SCHEMA "{schema}" OWNER TO {names["owner"]}')
    urls = {who: base.set(username=names[who], password=password).render_as_string(hide_password=False)
            for who in (*LOGINS, *MEMBERS)}
    try:
        yield Cluster(schema, names, urls, admin_url)
    finally:
        drops = [f'DROP SCHEMA IF EXISTS "{schema}" CASCADE']
        for role in (*MEMBERS, "app", *GROUPS, "owner"):
            drops += [f"DROP OWNED BY {names[role]}", f"DROP ROLE {names[role]}"]
        admin(admin_url, *drops)


def migrate_and_grant(cluster: Cluster, grants: str | None = None) -> Cluster:
    """The schema migrated by the owner, then the doc's grants (or ``grants``) run by the owner."""
    engine = make_engine(cluster.urls["owner"])
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    cluster.run_as("owner", *statements(cluster.localize(grants if grants is not None else grants_sql())))
    return cluster


def refused(action: Callable[[], object], reason: str = "permission denied") -> str:
    """``action`` raises a StoreError saying ``reason``; its message."""
    with pytest.raises(StoreError) as info:
        action()
    assert reason in str(info.value), str(info.value)
    return str(info.value)


def sql_as(cluster: Cluster, who: str, sql: str) -> None:
    """Raw SQL as ``who``; a database refusal becomes the StoreError the store would raise."""
    try:
        cluster.run_as(who, sql)
    except SQLAlchemyError as exc:
        raise store_error(exc, cluster.urls[who]) from exc
