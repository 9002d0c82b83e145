"""Keeping an explanation with its pair of runs through the team server, on SQLite and PostgreSQL.

``POST /api/v1/explanations`` against a real ``driftboard serve`` with tokens:
a member who may push keeps what ``driftboard explain`` found, the write log
names them (channel ``api``), posting again replaces it, and every body that
is not a ``driftboard.explanation`` for two stored runs is one line with
nothing stored and nothing logged. ``GET`` answers the document. The client
(``TeamServer``) does both over real HTTP; migration 0006 lets the write log
hold ``explain`` (and takes it back). The end-to-end ``explain --server``
re-runs real captures (``test_explain.captures``): one test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from api_server import TOKENS, Server, bearer, serving, team_database, write_access_file
from db_factory import make_bundle
from explanation_factory import explanation as make_explanation
from pg_cluster import migrate_and_grant, refused, scratch_cluster
from sqlalchemy import func, select, text
from test_api_server import _read_reply, assert_one_line_error
from test_explain import captures  # noqa: F401 - the session's real captures, made once

from driftboard.core.errors import DriftboardError
from driftboard.core.explain.result import Explanation
from driftboard.db import migrate
from driftboard.db.models import ExplanationRow
from driftboard.db.remote import Retry, ServerError, TeamServer
from driftboard.db.session import make_engine
from driftboard.db.store import Store

BASE, CAND = "m0201-r00001-default", "m0202-r00001-default"
PATH = "/api/v1/explanations"


def explanation(baseline: str = BASE, candidate: str = CAND, verdict: str = "explained") -> Explanation:
    return make_explanation(baseline, candidate, verdict)


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory) -> Iterator[Server]:
    """A server with tokens (viewing open) holding BASE and CAND."""
    directory = tmp_path_factory.mktemp(f"explain-{request.param}")
    access = write_access_file(directory / "team-auth.toml")
    env = {"DRIFTBOARD_API_IDLE_SECONDS": "2", "DRIFTBOARD_API_BODY_SECONDS": "6"}

    def serve(url: str) -> Iterator[Server]:
        with serving(url, directory, access_file=access, env=env) as s:
            for machine in (201, 202):
                assert s.push(make_bundle(machine, 1), bearer("ci")).status == 201
            yield s

    with team_database(request.param, directory, "explain") as url:
        yield from serve(url)


def post(server: Server, data: bytes, token: str | None = "ci", kind: str = "application/json") -> object:
    headers = {"Content-Type": kind, **(bearer(token) if token else {})}
    return server.request("POST", PATH, data, headers)


def kept(server: Server) -> tuple[int, list[tuple[str, str, str, str | None]]]:
    """(explanation rows, the explain entries of the write log as (actor, channel, run id, detail))."""
    with Store(server.url) as store, store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(ExplanationRow)).scalar()
        log = [(e.actor, e.channel, e.run_id, e.detail) for e in reversed(store.write_log(action="explain"))]
    return rows, log


def clear(server: Server) -> None:
    with Store(server.url) as store, store.engine.begin() as conn:
        conn.execute(text("DELETE FROM explanations"))


# ---------------------------------------------------------------- kept, read back, replaced, logged


def test_a_member_keeps_an_explanation_and_posting_again_replaces_it(server: Server) -> None:
    clear(server)
    before = kept(server)[1]
    first = explanation()
    answer = post(server, body(first.to_json()))
    assert answer.status == 201, answer.body
    assert answer.json() == {"baseline": BASE, "candidate": CAND, "verdict": "explained"}
    shown = server.get(f"{PATH}?baseline={BASE}&candidate={CAND}")
    assert shown.status == 200 and shown.json() == first.to_json()
    with Store(server.url) as store:
        assert store.explanation(BASE, CAND).to_json() == first.to_json()
        (entry,) = store.write_log(limit=1)
    assert (entry.action, entry.actor, entry.channel, entry.address, entry.run_id) == (
        "explain", "ci", "api", "127.0.0.1", CAND)
    assert entry.detail == f"against baseline {BASE}: explained"

    second = replace(explanation(verdict="partly"), summary="one setting reproduces part of it")
    assert post(server, body(second.to_json()), token="alice").status == 201  # admin may too
    assert server.get(f"{PATH}?baseline={BASE}&candidate={CAND}", **bearer("vera")).json() == second.to_json()
    rows, log = kept(server)
    assert rows == 1  # one per pair
    assert log[len(before):] == [("ci", "api", CAND, f"against baseline {BASE}: explained"),
                                 ("alice", "api", CAND, f"against baseline {BASE}: partly")]


def test_get_without_an_explanation_or_runs_is_404_and_without_both_runs_400(server: Server) -> None:
    clear(server)
    assert_one_line_error(server.get(f"{PATH}?baseline={CAND}&candidate={BASE}"), 404,
                          f"no explanation stored for {CAND} (baseline) and {BASE} (candidate)")
    assert_one_line_error(server.get(f"{PATH}?baseline=nope&candidate={BASE}"), 404, "no run 'nope'")
    assert_one_line_error(server.get(f"{PATH}?baseline={BASE}"), 400, "baseline and candidate")


# ---------------------------------------------------------------- refused, nothing stored, nothing logged


def test_who_may_keep_one(server: Server) -> None:
    clear(server)
    before = kept(server)
    data = body(explanation().to_json())
    missing = post(server, data, token=None)
    assert_one_line_error(missing, 401, "token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert_one_line_error(post(server, data, token="vera"), 403, "viewer", "uploader")
    assert kept(server) == before


def _schema_broken() -> list[tuple[dict, str]]:
    good = explanation().to_json()
    trial = {**good["trials"][1], "bitwise": -1}
    return [
        ({**good, "this_machine": "both"}, "this_machine"),
        ({**good, "differing": "linear_1024/cpu/float32"}, "differing"),
        ({**good, "trials": [good["trials"][0], trial]}, "trials/1/bitwise"),
        ({**good, "schema_version": 1}, "schema_version"),
        ({k: v for k, v in good.items() if k != "summary"}, "summary"),
        ({**good, "format": "driftboard.compare"}, "driftboard.explanation"),
        ({**good, "summary": "a\x00b"}, "NUL"),
    ]


def test_bodies_that_are_not_an_explanation_of_two_stored_runs_store_nothing(server: Server) -> None:
    clear(server)
    before = kept(server)
    good = body(explanation().to_json())
    assert_one_line_error(post(server, good, kind="text/plain"), 415, "application/json")
    assert_one_line_error(post(server, good, kind="application/octet-stream"), 415, "application/json")
    assert_one_line_error(post(server, b"{not json"), 422, "not JSON")
    assert_one_line_error(post(server, b""), 422, "empty")
    assert_one_line_error(post(server, b"[1, 2]"), 422, "not a driftboard.explanation document")
    assert_one_line_error(post(server, good.replace(b'"seconds": 3.2', b'"seconds": NaN')), 422, "NaN")
    assert_one_line_error(post(server, b"[" * 100_000 + b"]" * 100_000), 422, "not JSON")
    assert_one_line_error(post(server, good.replace(b'"summary": "', b'"summary": "\\ud800')), 422, "surrogate")
    for doc, where in _schema_broken():
        assert_one_line_error(post(server, body(doc)), 422, where)
    assert_one_line_error(post(server, body(explanation(candidate="m9999-r00001-default").to_json())), 404,
                          "m9999-r00001-default", "candidate")
    assert_one_line_error(post(server, body(explanation(baseline="m0201").to_json())), 404,
                          "'m0201' (the explanation's baseline)")  # a prefix is no run id in a document
    assert_one_line_error(post(server, body(explanation(baseline="x" * 5000).to_json())), 404, "baseline")
    assert _oversize_reply(server).startswith(b"HTTP/1.1 413")
    assert kept(server) == before


def _oversize_reply(server: Server) -> bytes:
    """The answer to a body declared over 4 MiB: refused before it is read (the rest is never sent)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Authorization: {bearer('ci')['Authorization']}\r\nContent-Length: {4 * 2**20 + 1}\r\n\r\n{{"
                     .encode())
        reply = _read_reply(sock)
    assert b"over the 4.0 MiB limit of an explanation" in reply, reply[:300]
    return reply


# ---------------------------------------------------------------- the client


def test_the_client_keeps_and_reads_it_back(server: Server) -> None:
    clear(server)
    url = f"http://127.0.0.1:{server.port}"
    member = TeamServer(url, TOKENS["ci"][1], retry=Retry(attempts=1))
    assert member.explanation(BASE, CAND) is None
    found = explanation(verdict="within_tolerance")
    assert member.save_explanation(found) == {"baseline": BASE, "candidate": CAND, "verdict": "within_tolerance"}
    assert member.save_explanation(found)["verdict"] == "within_tolerance"  # again: one kept
    back = member.explanation(BASE, CAND)
    assert back is not None and back.to_json() == found.to_json()
    with pytest.raises(ServerError, match="no run 'nope'") as err:
        member.explanation("nope", CAND)
    assert err.value.status == 404
    with pytest.raises(ServerError, match="m9999-r00001-default") as err:
        member.save_explanation(explanation(candidate="m9999-r00001-default"))
    assert err.value.status == 404
    viewer = TeamServer(url, TOKENS["vera"][1], retry=Retry(attempts=1))
    with pytest.raises(ServerError, match="uploader") as err:
        viewer.save_explanation(found)
    assert err.value.status == 403
    with pytest.raises(DriftboardError, match="over the 4 MiB limit of a document: not sent"):
        member.save_explanation(replace(found, summary="x" * 4 * 2**20))
    assert kept(server)[0] == 1


# ---------------------------------------------------------------- migration 0006


def _log_row(engine, action: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO write_log (at, action, actor, channel, detail) "
                          "VALUES (CURRENT_TIMESTAMP, :action, 'test', 'cli', '')"), {"action": action})


def _actions(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT action FROM write_log ORDER BY id")).scalars())


def test_driftboard_log_and_the_write_log_page_offer_the_explain_action() -> None:
    from driftboard.cli.log_cmd import ACTIONS as CLI_ACTIONS
    from driftboard.db.store.write_log import ACTIONS

    assert "explain" in ACTIONS and CLI_ACTIONS == ACTIONS  # the page's choices are ACTIONS itself


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def test_0006_lets_the_write_log_hold_explain_and_downgrading_takes_it_back(any_url: str) -> None:
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    engine = make_engine(any_url)
    try:
        migrate.upgrade(engine, "0005")
        _log_row(engine, "push")
        with pytest.raises(IntegrityError):
            _log_row(engine, "explain")
        assert migrate.upgrade(engine)[1] == ("0006",) == (migrate.head_revision(),)
        _log_row(engine, "explain")
        with pytest.raises(IntegrityError):
            _log_row(engine, "upload")
        assert _actions(engine) == ["push", "explain"]  # the rows of before kept
        with engine.connect() as conn, migrate.upgrade_connection(conn):
            command.downgrade(migrate.alembic_config(conn), "0005")
        assert _actions(engine) == ["push"]
        with pytest.raises(IntegrityError):
            _log_row(engine, "explain")
        assert migrate.upgrade(engine)[1] == ("0006",)
    finally:
        engine.dispose()


def test_saves_of_one_pair_at_once_all_succeed_and_keep_one(fresh_db: str) -> None:
    """A CI fleet keeping the same finding at once (or a retried request): each save replaces, none fails."""
    import threading

    with Store(fresh_db) as store:
        for machine in (201, 202):
            assert store.ingest(make_bundle(machine, 1)).created
    errors: list[str] = []

    def save(worker: int) -> None:
        with Store(fresh_db) as store:
            for _ in range(5):
                try:
                    store.save_explanation(explanation(), actor=f"ci-{worker}", channel="api")
                except Exception as exc:  # noqa: BLE001 - collected, asserted below
                    errors.append(str(exc))

    threads = [threading.Thread(target=save, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Store(fresh_db) as store, store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ExplanationRow)).scalar() == 1
        assert len(store.write_log(action="explain")) == 30


@pytest.mark.postgres
def test_with_the_deploy_grants_the_servers_role_keeps_and_logs_explanations_and_a_pusher_cannot(
        postgres_url: str) -> None:
    """Why members go through the server: the role ``driftboard serve`` logs in as may, a pusher may not."""
    with scratch_cluster(postgres_url) as cluster:
        granted = migrate_and_grant(cluster)
        with Store(granted.urls["member"]) as store:
            for machine in (201, 202):
                assert store.ingest(make_bundle(machine, 1)).created
            refused(lambda: store.save_explanation(explanation()))
        with Store(granted.urls["app"]) as store:
            store.save_explanation(explanation(), actor="ci", channel="api", address="10.0.0.5")
            assert store.explanation(BASE, CAND).to_json() == explanation().to_json()
            (entry,) = store.write_log(action="explain")
        assert (entry.actor, entry.channel, entry.address, entry.run_id) == ("ci", "api", "10.0.0.5", CAND)


# ---------------------------------------------------------------- driftboard explain --server, end to end


def test_explain_with_server_fetches_both_runs_and_keeps_the_finding_there(
        captures: dict[str, Path], tmp_path: Path) -> None:  # noqa: F811
    """Real re-runs (a short budget): the runs come from the server, the finding goes back to it."""
    from driftboard.core.bundle import read_bundle
    from driftboard.core.processes import driftboard_command

    access = write_access_file(tmp_path / "team-auth.toml")
    with serving(f"sqlite:///{tmp_path / 'team.sqlite'}", tmp_path, access_file=access) as server:
        for name in ("default", "onednn-off"):
            assert server.push(captures[name].read_bytes(), bearer("ci")).status == 201
        base, cand = (read_bundle(captures[n]).run.run_id for n in ("default", "onednn-off"))
        url = f"http://127.0.0.1:{server.port}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("DRIFTBOARD_")},
               "DRIFTBOARD_TOKEN": TOKENS["ci"][1], "DRIFTBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'no.sqlite'}"}
        out = tmp_path / "explanation.json"
        done = subprocess.run([*driftboard_command(), "explain", "--server", url, base, cand, "--this-machine",
                               "baseline", "--budget", "6", "-o", str(out)],
                              capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == f"kept with the pair of runs on {url}"
        written = json.loads(out.read_text())
        shown = server.get(f"{PATH}?baseline={base}&candidate={cand}")
        assert shown.status == 200 and shown.json() == written
        assert not (tmp_path / "no.sqlite").exists()  # nothing local was touched
        with Store(server.url) as store:
            (entry,) = store.write_log(action="explain")
        assert (entry.actor, entry.channel, entry.run_id) == ("ci", "api", cand)

        # a viewer's token fetches the runs but may not keep the finding: one line says so, -o still written
        out.unlink()
        env["DRIFTBOARD_TOKEN"] = TOKENS["vera"][1]
        done = subprocess.run([*driftboard_command(), "explain", "--server", url, base, cand, "--this-machine",
                               "baseline", "--budget", "1", "-o", str(out)],
                              capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        last = done.stdout.strip().splitlines()[-1]
        assert last.startswith(f"not kept on {url}: ") and "uploader" in last and "HTTP 403" in last
        assert out.exists()

