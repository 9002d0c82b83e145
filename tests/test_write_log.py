"""The write log on real SQLite and PostgreSQL: every push, delete, golden set and clear, with the write or not at all.

Each write path of the store adds its entry in its own transaction: the
tests check who, how and from where is recorded, that a refused, duplicate
or rolled-back write logs nothing, that a PostgreSQL pusher's push is logged
by the ingest function under its login (and that the roles of docs/DEPLOY.md
cannot forge or rewrite entries), that upgrading a database at 0003 keeps
its runs, and ``driftboard log``, its JSON document and the dashboard page.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run_driftboard as cli
from db_factory import make_bundle, write_bundle_file
from pg_cluster import Cluster, migrate_and_grant, refused, scratch_cluster, sql_as

from driftboard.core import documents
from driftboard.core.errors import StoreError
from driftboard.db import migrate
from driftboard.db.push import push_files
from driftboard.db.session import make_engine
from driftboard.db.store import GoldenKey, RunFilter, Store, write_log

GOLDEN = "m0001-r00000-default"
OTHER = "m0001-r00001-default"


def entries(url: str) -> list[tuple[str, str, str, str | None, str | None]]:
    """(action, actor, channel, address, run id) of every entry, oldest first."""
    with Store(url) as store:
        return [(e.action, e.actor, e.channel, e.address, e.run_id) for e in reversed(store.write_log(limit=1000))]


# ---------------------------------------------------------------- each write, logged with it


def test_push_delete_golden_set_and_clear_are_each_logged(fresh_db, tmp_path):
    files = [write_bundle_file(tmp_path, 1, 0), write_bundle_file(tmp_path, 1, 1, drift={"linear_1024": 1})]
    with Store(fresh_db) as store:
        outcomes = push_files(store, files, uploader="alice")  # as driftboard push
        assert [o.status for o in outcomes] == ["stored", "stored"]
        store.ingest(make_bundle(2, 0), uploader="dashboard upload (bob)", channel="page", address="10.0.0.7")
        store.ingest(make_bundle(3, 0), uploader="ci-gpu-1", channel="api", address="2001:db8::1")
        golden = store.set_golden(GOLDEN, set_by="carol", reason="first clean run", channel="page",
                                  address="10.0.0.9")
        store.set_golden(OTHER, set_by="carol")  # moves the golden
        assert store.clear_golden(golden.key, actor="dave", channel="api", address="10.0.0.10")
        store.delete_run("m0003-r00000-default", actor="dashboard (erin)", channel="page", address="10.0.0.11")
        newest = store.write_log()
    local = None if fresh_db.startswith("sqlite") else newest[-1].address  # PostgreSQL: the connection's
    assert entries(fresh_db) == [
        ("push", "alice", "cli", local, GOLDEN),
        ("push", "alice", "cli", local, OTHER),
        ("push", "dashboard upload (bob)", "page", "10.0.0.7", "m0002-r00000-default"),
        ("push", "ci-gpu-1", "api", "2001:db8::1", "m0003-r00000-default"),
        ("golden-set", "carol", "page", "10.0.0.9", GOLDEN),
        ("golden-set", "carol", "cli", local, OTHER),
        ("golden-clear", "dave", "api", "10.0.0.10", OTHER),
        ("delete", "dashboard (erin)", "page", "10.0.0.11", "m0003-r00000-default"),
    ]
    assert [e.id for e in newest] == sorted((e.id for e in newest), reverse=True)  # newest first
    details = {e.action: e.detail for e in reversed(newest)}
    assert details["push"].startswith("18 cases, bundle ")
    assert details["golden-set"] == (f"golden 'default' for driftboard-reference v1 on cpu, was run {GOLDEN}")
    assert details["golden-clear"] == "golden 'default' for driftboard-reference v1 on cpu"
    assert details["delete"] == "0 arrays no other run used removed (0 stored bytes)"  # it agreed with the others
    with Store(fresh_db) as store:
        assert [e.action for e in store.write_log(limit=2)] == ["delete", "golden-clear"]
        assert [e.run_id for e in store.write_log(action="golden-set")] == [OTHER, GOLDEN]
        assert [e.action for e in store.write_log(actor="carol")] == ["golden-set", "golden-set"]
        with pytest.raises(StoreError, match="unknown write action 'upload'"):
            store.write_log(action="upload")


def test_refused_duplicate_and_rolled_back_writes_log_nothing(fresh_db, tmp_path, monkeypatch):
    junk = tmp_path / "junk.driftboard"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with Store(fresh_db) as store:
        assert store.ingest(make_bundle(1, 0), uploader="alice").created
        before = entries(fresh_db)
        (bad,) = push_files(store, [junk], uploader="alice")
        assert bad.status == "refused"
        assert not store.ingest(make_bundle(1, 0), uploader="alice").created  # a duplicate writes nothing
        clash = make_bundle(1, 0, run_id=GOLDEN, label="same id, other content")
        with pytest.raises(StoreError, match="already stored with different content"):
            store.ingest(clash, uploader="mallory")
        store.set_golden(GOLDEN, set_by="carol")  # logged
        with pytest.raises(StoreError, match="clear that golden before deleting"):
            store.delete_run(GOLDEN, actor="mallory")
        assert not store.clear_golden(GoldenKey("nope", "driftboard-reference", 1, "cpu"), actor="mallory")
        with pytest.raises(ValueError, match="unknown write channel 'email'"):
            store.ingest(make_bundle(2, 0), channel="email")
        assert store.runs(RunFilter()).total == 1  # the write did not happen without its entry
        assert store.ingest(make_bundle(2, 0), uploader="bob").created

        def broken(*args, **kwargs):
            raise RuntimeError("the log insert failed")

        monkeypatch.setattr(write_log, "record", broken)  # the entry fails: the write must roll back with it
        for write in (lambda: store.ingest(make_bundle(3, 0)), lambda: store.delete_run("m0002-r00000-default"),
                      lambda: store.clear_golden(store.golden_for(GOLDEN).key)):
            with pytest.raises(RuntimeError, match="the log insert failed"):
                write()
        assert store.runs(RunFilter()).total == 2 and store.golden_for(GOLDEN) is not None
    local = entries(fresh_db)[-1][3]
    assert entries(fresh_db) == [*before, ("golden-set", "carol", "cli", local, GOLDEN),
                                 ("push", "bob", "cli", local, "m0002-r00000-default")]


def test_log_text_is_one_inert_line_cut_to_its_column(fresh_db):
    with Store(fresh_db) as store:
        store.log_write("push", actor="eve\x1b]0;pwned\x07\nsecond line" + "x" * 300, channel="api",
                        address="10.0.0.1", run_id="r1", detail="a\tb\x00c")
        (entry,) = store.write_log()
    assert entry.actor.startswith("eve\\x1b]0;pwned\\x07 second line") and len(entry.actor) == 200
    assert entry.detail == "a b\\x00c"


# ---------------------------------------------------------------- driftboard log


def test_driftboard_log_prints_lines_and_a_document_matching_its_schema(tmp_path, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    db = f"sqlite:///{tmp_path / 'team.sqlite'}"
    files = [write_bundle_file(tmp_path, 1, 0), write_bundle_file(tmp_path, 2, 0)]
    assert cli(capsys, "push", "-q", *map(str, files), "--db", db, "--uploader", "alice")[0] == 0
    assert cli(capsys, "golden", "set", GOLDEN, "--db", db, "--by", "carol", "--reason", "ref")[0] == 0
    assert cli(capsys, "golden", "clear", GOLDEN, "--db", db)[0] == 0

    code, out, err = cli(capsys, "log", "--db", db)
    lines = out.splitlines()
    assert (code, err, len(lines)) == (0, "", 4)
    assert lines[0].split("\t")[1:6] == ["golden-clear", "cli", lines[0].split("\t")[3], "-", GOLDEN]
    assert lines[1].split("\t")[1:6] == ["golden-set", "cli", "carol", "-", GOLDEN]
    assert [line.split("\t")[1] for line in lines] == ["golden-clear", "golden-set", "push", "push"]
    assert cli(capsys, "log", "--db", db, "--action", "push", "--limit", "1")[1].count("\n") == 1
    assert cli(capsys, "log", "--db", db, "--actor", "nobody")[1] == "no writes logged matching the filters\n"

    doc = json.loads(cli(capsys, "log", "--db", db, "--json")[1])
    assert list(doc)[:2] == ["format", "schema_version"] and doc["format"] == "driftboard.write_log"
    schema = json.loads(documents.schema_path("driftboard.write_log").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(doc)) == []
    assert [e["action"] for e in doc["entries"]] == ["golden-clear", "golden-set", "push", "push"]
    assert doc["entries"][2] == {**doc["entries"][2], "actor": "alice", "channel": "cli", "address": None,
                                 "run_id": "m0002-r00000-default"}
    broken = {**doc, "entries": [{**doc["entries"][0], "channel": "email"}]}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(broken))  # the check can fail
    assert cli(capsys, "log", "--db", db, "--action", "upload")[0] == 2


# ---------------------------------------------------------------- upgrading from 0003


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_at_0003(request, monkeypatch) -> str:
    """A database at revision 0003 holding runs and a golden, stored by the store of that revision."""
    url = request.getfixturevalue(f"{request.param}_url")
    engine = make_engine(url)
    try:
        migrate.upgrade(engine, "0003")
    finally:
        engine.dispose()
    with monkeypatch.context() as m:
        m.setattr(migrate, "HEAD_REVISION", "0003")
        m.setattr(write_log, "record", lambda *args, **kwargs: None)  # which had no write log
        with Store(url) as store:
            for machine, seq in ((1, 0), (1, 1), (2, 0)):
                store.ingest(make_bundle(machine, seq, drift={"lstm_2layer": seq}), uploader=f"user{machine}")
            store.set_golden(GOLDEN, set_by="alice")
    return url


def test_upgrading_from_0003_keeps_the_runs_and_logs_from_then_on(db_at_0003, capsys):
    from test_migration_upgrade import read_back, snapshot

    before = snapshot(db_at_0003)
    code, out, err = cli(capsys, "db", "upgrade", "--db", db_at_0003)
    assert (code, err) == (0, "") and f"-> {migrate.head_revision()}" in out
    after = snapshot(db_at_0003)
    assert {table: rows for table, rows in after.items() if table in before} == before  # every row kept
    assert after.get("write_log", []) == [] and len(after["runs"]) == 3
    view = read_back(db_at_0003)
    assert {r.run_id for r in view["runs"]} == {"m0002-r00000-default", OTHER, GOLDEN}
    assert [g.run_id for g in view["goldens"]] == [GOLDEN]
    with Store(db_at_0003) as store:
        store.ingest(make_bundle(3, 0), uploader="bob")
    assert entries(db_at_0003)[-1][:3] == ("push", "bob", "cli")


# ---------------------------------------------------------------- PostgreSQL roles


@pytest.fixture
def granted(postgres_url) -> Iterator[Cluster]:
    with scratch_cluster(postgres_url) as cluster:
        yield migrate_and_grant(cluster)


@pytest.mark.postgres
def test_a_pushers_push_is_logged_by_the_function_under_its_login(granted):
    member, app, reader = granted.urls["member"], granted.urls["app"], granted.urls["reader"]
    with Store(member) as store:
        assert store.ingest(make_bundle(1, 0)).created  # through driftboard_push_run
        assert store.ingest(make_bundle(1, 1), channel="api", address="192.0.2.5").created
        assert not store.ingest(make_bundle(1, 0)).created  # a duplicate: nothing
        refused(lambda: store.ingest(make_bundle(2, 0), uploader="mallory"))  # another name: refused, not logged
    with Store(app) as store:
        store.ingest(make_bundle(3, 0), uploader="dashboard upload (bob)", channel="page", address="10.1.2.3")
        store.set_golden(GOLDEN, set_by="dashboard (carol)", channel="page", address="10.1.2.4")
    got = entries(reader)  # viewers read the log
    name = granted.names["member"]
    assert [(a, actor, channel, run) for a, actor, channel, _, run in got] == [
        ("push", name, "cli", GOLDEN), ("push", name, "api", OTHER),
        ("push", "dashboard upload (bob)", "page", "m0003-r00000-default"),
        ("golden-set", "dashboard (carol)", "page", GOLDEN)]
    assert got[1][3] == "192.0.2.5" and got[2][3] == "10.1.2.3"
    # Nobody below the owner forges or rewrites an entry: pushers hold no grant on it, the server only appends.
    forge = "INSERT INTO write_log (at, action, actor, channel, detail) VALUES (now(), 'delete', 'bob', 'cli', '')"
    refused(lambda: sql_as(granted, "member", forge))
    refused(lambda: sql_as(granted, "reader", forge))
    refused(lambda: sql_as(granted, "app", "UPDATE write_log SET actor = 'someone else'"))
    refused(lambda: sql_as(granted, "app", "DELETE FROM write_log"))
    sql_as(granted, "app", forge)  # the server may append (it logs its own deletes and goldens)
    assert len(entries(reader)) == 5


@pytest.mark.postgres
def test_upgrading_a_granted_deployment_gives_the_new_table_the_grants_of_runs(postgres_url):
    """The 0003 grants are in place, then ``db upgrade``: the server and pushers work before the grants rerun."""
    with scratch_cluster(postgres_url) as cluster:
        engine = make_engine(cluster.urls["owner"])
        try:
            migrate.upgrade(engine, "0003")
        finally:
            engine.dispose()
        from pg_cluster import grants_sql, statements

        old_grants = [s for s in statements(cluster.localize(grants_sql())) if "write_log" not in s]
        cluster.run_as("owner", *old_grants)
        engine = make_engine(cluster.urls["owner"])
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        with Store(cluster.urls["member"]) as store:
            assert store.ingest(make_bundle(1, 0)).created
        with Store(cluster.urls["app"]) as store:
            store.set_golden(GOLDEN, set_by="admin")
            assert [e.action for e in store.write_log()] == ["golden-set", "push"]
        refused(lambda: sql_as(cluster, "app", "DELETE FROM write_log"))
        refused(lambda: sql_as(cluster, "member", "INSERT INTO write_log (at, action, actor, channel, detail) "
                                                  "VALUES (now(), 'push', 'x', 'cli', '')"))


# ---------------------------------------------------------------- the dashboard page


@pytest.fixture
def dashboard_db(tmp_path, monkeypatch) -> Iterator[str]:
    from apptest_factory import private_copy  # streamlit only for the page's tests

    from driftboard.dashboard import auth

    seed = tmp_path / "seed.sqlite"
    with Store(f"sqlite:///{seed}") as store:
        store.ingest(make_bundle(1, 0), uploader="alice", channel="api", address="198.51.100.7")
        store.set_golden(GOLDEN, set_by="dashboard (carol)", channel="page", address="10.9.9.9")
    monkeypatch.delenv(auth.ENV_VAR, raising=False)
    yield from private_copy(seed, tmp_path, monkeypatch)


def _log_page():
    from apptest_factory import open_page

    return open_page("write_log")


def test_the_write_log_page_lists_the_writes_with_addresses_for_admins(dashboard_db):
    at = _log_page()
    assert at.title[0].value == "Write log"
    table = at.dataframe[0].value
    assert list(table["action"]) == ["golden-set", "push"]
    assert list(table["actor"]) == ["dashboard (carol)", "alice"]
    assert list(table["through"]) == ["dashboard", "HTTP API"]
    assert list(table["address"]) == ["10.9.9.9", "198.51.100.7"]  # open mode: everyone is an admin
    at.selectbox(key="log_action").select("push").run()
    assert list(at.dataframe[0].value["run"]) == [GOLDEN]


def test_the_write_log_page_hides_addresses_from_viewers_and_is_locked_when_viewing_is(dashboard_db, tmp_path,
                                                                                      monkeypatch):
    from driftboard.dashboard import auth

    access = tmp_path / "team-auth.toml"
    access.write_text(f'mode = "tokens"\n[tokens]\nboss = {{ role = "admin", hash = "{auth.hash_token("t0k3n")}" }}\n')
    monkeypatch.setenv(auth.ENV_VAR, str(access))
    at = _log_page()
    table = at.dataframe[0].value
    assert "address" not in table.columns and list(table["actor"]) == ["dashboard (carol)", "alice"]
    assert any("addresses are shown to admins only" in c.value for c in at.caption)

    access.write_text(access.read_text().replace('mode = "tokens"', 'mode = "tokens"\nview = "viewer"'))
    import streamlit as st

    st.cache_resource.clear()
    from streamlit.testing.v1 import AppTest

    import driftboard.dashboard

    at = AppTest.from_file(str(Path(driftboard.dashboard.__file__).with_name("app.py")), default_timeout=60)
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/write_log.py")  # not in the menu of a session that may not view


def test_without_a_name_postgresql_logs_the_login_and_unknown_actions_are_refused(fresh_db):
    with Store(fresh_db) as store:
        store.ingest(make_bundle(1, 0), channel="api")
        store.set_golden(GOLDEN)
        actors = {e.actor for e in store.write_log()}
        with pytest.raises(ValueError, match="unknown write action 'rename'"):
            store.log_write("rename", actor="x", channel="cli", address=None)
    assert actors == ({""} if fresh_db.startswith("sqlite") else {"postgres"})
