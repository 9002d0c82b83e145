"""Admin operations on the team API: mark and clear goldens, delete runs, with an admin's token only.

A real ``driftboard serve`` (SQLite and PostgreSQL) with an access file: alice is
admin, ci an uploader, vera a viewer. Every refusal leaves the store and the
write log as they were.
"""
from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from api_server import TOKENS, Server, bearer, serving, team_database, write_access_file
from cli_runner import run_driftboard as cli
from db_factory import make_bundle

from driftboard.core.processes import driftboard_command
from driftboard.db.remote import TOKEN_ENV
from driftboard.db.store import Store

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(f"api-admin-{request.param}")
    access = write_access_file(directory / "team-auth.toml")
    with team_database(request.param, directory, "api_admin") as url, \
            serving(url, directory, access_file=access) as s:
        yield s


def put_golden(server: Server, body: object, who: str | None = "alice", raw: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else json.dumps(body).encode()
    answer = server.request("PUT", "/api/v1/golden", data, {**JSON, **(bearer(who) if who else {}), **(headers or {})})
    return answer.status, answer.json()


def log(server: Server) -> list[tuple]:
    with Store(server.url) as store:
        return [(e.action, e.actor, e.channel, e.address, e.run_id) for e in store.write_log()]


def goldens(server: Server) -> list[dict]:
    return server.get("/api/v1/golden").json()["goldens"]


def test_an_admin_marks_and_clears_a_golden_and_pushes_are_judged_against_it(server: Server) -> None:
    assert server.push(make_bundle(201, 1), bearer("ci")).status == 201
    status, entry = put_golden(server, {"run_id": "m0201-r00001-default", "reason": "new cluster"})
    assert status == 200 and entry["run_id"] == "m0201-r00001-default" and entry["set_by"] == "alice"
    assert entry["reason"] == "new cluster" and entry["name"] == "default"
    assert [g["run_id"] for g in goldens(server)] == ["m0201-r00001-default"]
    assert log(server)[0] == ("golden-set", "alice", "api", "127.0.0.1", "m0201-r00001-default")
    judged = server.push(make_bundle(202, 1), bearer("ci")).json()
    assert judged["verdict"] == "identical" and judged["golden"] == "m0201-r00001-default"

    cleared = server.request("DELETE", "/api/v1/golden?run_id=m0202-r00001-default", headers=bearer("alice"))
    assert cleared.status == 200 and cleared.json()["cleared"]["run_id"] == "m0201-r00001-default"
    assert goldens(server) == []
    assert log(server)[0] == ("golden-clear", "alice", "api", "127.0.0.1", "m0201-r00001-default")
    again = server.request("DELETE", "/api/v1/golden?run_id=m0202-r00001-default", headers=bearer("alice"))
    assert again.status == 404 and "golden" in again.json()["error"]


def test_an_admin_deletes_a_run_and_its_unused_arrays(server: Server) -> None:
    assert server.push(make_bundle(203, 1, drift={"linear_1024": 5}), bearer("ci")).status == 201
    gone = server.request("DELETE", "/api/v1/runs/m0203-r00001-default", headers=bearer("alice"))
    assert gone.status == 200, gone.body
    found = gone.json()
    assert found["run_id"] == "m0203-r00001-default" and found["arrays_removed"] >= 1 and found["bytes_freed"] > 0
    assert server.get("/api/v1/runs/m0203-r00001-default").status == 404
    assert log(server)[0] == ("delete", "alice", "api", "127.0.0.1", "m0203-r00001-default")
    assert server.request("DELETE", "/api/v1/runs/m0203-r00001-default", headers=bearer("alice")).status == 404


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("ci", 403), ("vera", 403)])
def test_only_an_admin_may(server: Server, who: str | None, status: int) -> None:
    assert server.push(make_bundle(204, 1), bearer("ci")).status in (200, 201)
    before, marks = log(server), goldens(server)
    headers = bearer(who) if who else {}
    answers = [put_golden(server, {"run_id": "m0204-r00001-default"}, who)[0],
               server.request("DELETE", "/api/v1/golden?run_id=m0204-r00001-default", headers=headers).status,
               server.request("DELETE", "/api/v1/runs/m0204-r00001-default", headers=headers).status]
    assert answers == [status] * 3
    assert log(server) == before and goldens(server) == marks
    assert server.get("/api/v1/runs/m0204-r00001-default").status == 200


@pytest.mark.parametrize(("raw", "headers", "status", "says"), [
    (b"{not json", {}, 400, "not JSON"),
    (b"[]", {}, 400, "JSON object"),
    (json.dumps({"run_id": "m0205-r00001-default", "by": "mallory"}).encode(), {}, 400, "unknown field 'by'"),
    (json.dumps({"run_id": 5}).encode(), {}, 400, "field 'run_id'"),
    (json.dumps({"name": "x"}).encode(), {}, 400, "'run_id' is required"),
    (json.dumps({"run_id": "m0205-r00001-default", "name": " "}).encode(), {}, 400, "golden name"),
    (json.dumps({"run_id": "m0205-r00001-default"}).encode(), {"Content-Type": "text/plain"}, 415, "Content-Type"),
    (json.dumps({"run_id": "m0205-r00001-default", "reason": "x" * 9000}).encode(), {}, 413, ""),
    (json.dumps({"run_id": "no-such-run"}).encode(), {}, 404, "no-such-run"),
])
def test_a_bad_request_changes_nothing(server: Server, raw: bytes, headers: dict, status: int, says: str) -> None:
    assert server.push(make_bundle(205, 1), bearer("ci")).status in (200, 201)
    before, marks = log(server), goldens(server)
    got, answer = put_golden(server, None, raw=raw, headers=headers)
    assert got == status and says in answer["error"] and "\n" not in answer["error"]
    assert log(server) == before and goldens(server) == marks


def test_a_delete_takes_the_full_run_id_never_a_prefix(server: Server) -> None:
    assert server.push(make_bundle(206, 1), bearer("ci")).status in (200, 201)
    before = log(server)
    answer = server.request("DELETE", "/api/v1/runs/m0206-r00001", headers=bearer("alice"))
    assert answer.status == 404 and "full run id" in answer.json()["error"]
    assert log(server) == before and server.get("/api/v1/runs/m0206-r00001-default").status == 200


def test_golden_set_and_clear_from_the_cli_with_server(server: Server, capsys, monkeypatch) -> None:
    assert server.push(make_bundle(207, 1), bearer("ci")).status in (200, 201)
    url = f"http://127.0.0.1:{server.port}"
    monkeypatch.setenv(TOKEN_ENV, TOKENS["ci"][1])
    code, _, err = cli(capsys, "golden", "set", "m0207-r00001-default", "--server", url)
    assert code != 0 and "mark goldens" in err and err.endswith("\n") and err.count("\n") == 1
    monkeypatch.setenv(TOKEN_ENV, TOKENS["alice"][1])
    code, out, err = cli(capsys, "golden", "set", "m0207-r00001-default", "--server", url, "--reason", "cli")
    assert code == 0, err
    assert out.startswith("m0207-r00001-default is now golden 'default' for ")
    assert log(server)[0] == ("golden-set", "alice", "api", "127.0.0.1", "m0207-r00001-default")
    code, out, err = cli(capsys, "golden", "clear", "m0207-r00001-default", "--server", url)
    assert code == 0 and out.startswith("cleared golden 'default' (m0207-r00001-default)"), err
    assert log(server)[0][:3] == ("golden-clear", "alice", "api")


def test_capture_push_golden_with_server_marks_the_captured_run(server: Server, tmp_path) -> None:
    """A real capture (one small case), pushed with an admin's token and marked golden over the API."""
    if "postgres" in server.url:
        pytest.skip("one real capture is enough: the golden path over PostgreSQL is tested above")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTBOARD_")}
    done = subprocess.run([*driftboard_command(), "capture", "--case", "linear_10_5", "--repeats", "1", "-q",
                           "-o", str(tmp_path / "gold.driftboard"), "--push", "--golden",
                           "--server", f"http://127.0.0.1:{server.port}"],
                          env={**env, TOKEN_ENV: TOKENS["alice"][1]}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    (entry, pushed, *_) = log(server)
    assert entry[:3] == ("golden-set", "alice", "api") and pushed[:3] == ("push", "alice", "api")
    assert f"{entry[4]} is now golden 'default'" in done.stdout
    assert entry[4] in [g["run_id"] for g in goldens(server)]
