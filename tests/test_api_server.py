"""The team API (``/api/v1/``) over real HTTP against a real ``driftboard serve``, on SQLite and PostgreSQL.

Each database gets one server (module-scoped), started from a hostile working
directory with an access file of four members (admin, uploader, viewer, a
spare uploader) and short body timeouts. Every answer is checked as a client
sees it: status, headers, the one-line JSON error, and what the database
holds afterwards, read through the library or the CLI.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from api_server import Server, bearer, serving, team_database, write_access_file
from click.testing import CliRunner
from db_factory import make_bundle, make_run

from driftboard.cli import cli
from driftboard.core import documents
from driftboard.core.bundle import DEFAULT_LIMITS, manifest_of, read_bundle
from driftboard.db.store import Store

jsonschema = pytest.importorskip("jsonschema")

TIMEOUTS = {"DRIFTBOARD_API_IDLE_SECONDS": "2", "DRIFTBOARD_API_BODY_SECONDS": "6"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request, tmp_path_factory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    access = write_access_file(directory / "team-auth.toml")
    with team_database(request.param, directory, "api") as url, \
            serving(url, directory, access_file=access, env=TIMEOUTS) as s:
        yield s


def stored(server: Server) -> set[str]:
    with Store(server.url) as store:
        return {run.run_id for run in store.runs(per_page=1000).runs}


def assert_one_line_error(answer: Any, status: int, *words: str) -> str:
    assert answer.status == status, (answer.status, answer.body[:300])
    assert answer.headers["content-type"] == "application/json"
    doc = answer.json()
    assert list(doc) == ["error"] and doc["error"] and "\n" not in doc["error"], doc
    for word in words:
        assert word in doc["error"], doc
    return doc["error"]


def cli_json(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, (args, result.output, result.exception)
    return json.loads(result.output)


def schema_errors(doc: Any) -> list[str]:
    schema = json.loads(documents.schema_path(doc["format"]).read_text(encoding="utf-8"))
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]


# ---------------------------------------------------------------- push, list, show, download, compare, gate


def test_push_stores_201_then_the_same_bundle_is_200_already_stored(server: Server) -> None:
    data = make_bundle(100, 1)
    first = server.push(data, bearer("ci"))
    assert first.status == 201, first.body
    assert first.json() == {"run_id": "m0100-r00001-default", "stored": True, "verdict": None, "golden": None}
    again = server.push(data, bearer("ci"))
    assert again.status == 200 and again.json()["stored"] is False and again.json()["run_id"] == "m0100-r00001-default"
    with Store(server.url) as store:
        run = store.run("m0100-r00001-default")
        logged = [e for e in store.write_log(limit=1000) if e.run_id == "m0100-r00001-default"]
    assert run.uploader == "ci"  # the pushing member, from the token
    (entry,) = logged  # the duplicate wrote nothing, so logged nothing
    assert (entry.action, entry.actor, entry.channel, entry.address) == ("push", "ci", "api", "127.0.0.1")
    assert "m0100-r00001-default" in stored(server)


def test_a_push_against_a_golden_answers_its_verdict(server: Server) -> None:
    assert server.push(make_bundle(101, 1), bearer("ci")).status == 201
    with Store(server.url) as store:
        store.set_golden("m0101-r00001-default", set_by="test")
    same = server.push(make_bundle(102, 1), bearer("ci")).json()
    drifted = server.push(make_bundle(103, 1, drift={"linear_1024": 1}), bearer("ci")).json()
    assert same == {"run_id": "m0102-r00001-default", "stored": True, "verdict": "identical",
                    "golden": "m0101-r00001-default"}
    assert drifted["verdict"] == "within tolerance" and drifted["golden"] == "m0101-r00001-default"  # 1 ULP


def test_list_is_the_runs_json_document(server: Server) -> None:
    server.push(make_bundle(104, 1, label="laptop", tags=("nightly",)), bearer("ci"))
    for query, cli_args in [("", ()), ("?per_page=2&page=2", ("--per-page", "2", "--page", "2")),
                            ("?label=LAPTOP&tag=nightly", ("--label", "LAPTOP", "--tag", "nightly")),
                            ("?machine=m0104", ("--machine", "m0104")), ("?policy=bitwise", ("--policy", "bitwise")),
                            ("?since=2026-01-05&until=2026-01-05T10:03:00", ("--since", "2026-01-05", "--until",
                                                                           "2026-01-05T10:03:00")),
                            ("?torch=2.5&cpu_capability=AVX512&verdict=identical",
                             ("--torch", "2.5", "--cpu-capability", "AVX512", "--verdict", "identical"))]:
        answer = server.get(f"/api/v1/runs{query}")
        assert answer.status == 200, answer.body
        doc = answer.json()
        assert doc == cli_json("runs", "--db", server.url, "--json", *cli_args), query
        assert schema_errors(doc) == []
    assert server.get("/api/v1/runs?label=laptop").json()["total"] == 1
    assert_one_line_error(server.get("/api/v1/runs?since=yesterday"), 400, "since")


def test_show_is_the_manifest_summary_and_verdict(server: Server, tmp_path: Path) -> None:
    run, arrays = make_run(105, 1, drift={"linear_1024": 2})
    from driftboard.core.bundle import write_bundle

    path = write_bundle(tmp_path / "r.driftboard", run, arrays)
    assert server.push(path.read_bytes(), bearer("ci")).status == 201
    with Store(server.url) as store:
        if not store.goldens():
            store.set_golden(store.runs().runs[-1].run_id, set_by="test")
    doc = server.get("/api/v1/runs/m0105-r00001-default?policy=bitwise").json()
    assert schema_errors(doc) == [] and doc["format"] == "driftboard.stored_run"
    assert doc["manifest"] == cli_json("show", str(path), "--json")
    assert doc["run"]["run_id"] == "m0105-r00001-default" and doc["run"]["uploader"] == "ci"
    assert doc["verdict"]["worst"] == doc["run"]["verdict"] == "drift"
    assert server.get("/api/v1/runs/m0105").json()["run"]["run_id"] == "m0105-r00001-default"  # a unique prefix
    assert_one_line_error(server.get("/api/v1/runs/no-such-run"), 404, "no-such-run")


def test_a_downloaded_bundle_round_trips(server: Server, tmp_path: Path) -> None:
    original = make_bundle(106, 1, label="round trip", tags=("a", "b"))
    assert server.push(original, bearer("ci")).status == 201
    answer = server.get("/api/v1/runs/m0106-r00001-default/bundle")
    assert answer.status == 200 and answer.headers["content-type"] == "application/octet-stream"
    assert 'filename="m0106-r00001-default.driftboard"' in answer.headers["content-disposition"]
    before, after = read_bundle(original), read_bundle(answer.body)
    assert after.digest == before.digest and manifest_of(after.run) == manifest_of(before.run)
    for case in before.run.cases:
        if case.output is not None:
            assert after.arrays.load(case.output).tobytes() == before.arrays.load(case.output).tobytes()
    again = server.push(answer.body, bearer("ci"))
    assert again.status == 200 and again.json()["stored"] is False
    assert_one_line_error(server.get("/api/v1/runs/nope-nope/bundle"), 404)


def test_compare_is_the_compare_json_document_and_gates(server: Server) -> None:
    for machine, drift in ((107, {}), (108, {"linear_1024": 3})):
        server.push(make_bundle(machine, 1, drift=drift), bearer("ci"))
    a, b = "m0107-r00001-default", "m0108-r00001-default"
    within = server.get(f"/api/v1/compare?baseline={a}&candidate={b}")
    assert within.status == 200
    assert within.json() == cli_json("compare", "--db", server.url, a, b, "--json")
    assert within.json()["failed"] is False and within.json()["comparisons"][0]["worst"] == "within tolerance"
    doc = server.get(f"/api/v1/compare?baseline={a}&candidate={b}&policy=bitwise").json()
    assert doc == cli_json("compare", "--db", server.url, a, b, "--json", "--policy", "bitwise", code=1)
    assert doc["failed"] is True and schema_errors(doc) == []
    ulp = server.get(f"/api/v1/compare?baseline={a}&candidate={b}&policy=ulp:1000000&fail_on=never").json()
    assert ulp == cli_json("compare", "--db", server.url, a, b, "--json", "--policy", "ulp:1000000",
                           "--fail-on", "never")
    assert ulp["failed"] is False
    with Store(server.url) as store:
        if store.golden_for(a) is None:  # run alone: no earlier test of the module has set the suite's golden
            store.set_golden(a, set_by="test")
        golden = store.golden_for(a)
    assert golden is not None
    gate = server.get(f"/api/v1/compare?baseline=golden&candidate={a}").json()
    assert gate == cli_json("compare", "--db", server.url, golden.run_id, a, "--json")
    assert gate["failed"] is False and gate["comparisons"][0]["baseline"]["run_id"] == golden.run_id
    assert_one_line_error(server.get(f"/api/v1/compare?baseline={a}&candidate={b}&policy=nonsense"), 400, "policy")
    assert_one_line_error(server.get(f"/api/v1/compare?baseline={a}"), 400, "candidate")
    assert_one_line_error(server.get(f"/api/v1/compare?baseline={a}&candidate=zzz-none"), 404, "zzz-none")


def test_golden_is_the_golden_list_json_document(server: Server) -> None:
    doc = server.get("/api/v1/golden").json()
    assert doc == cli_json("golden", "list", "--db", server.url, "--json")
    assert schema_errors(doc) == [] and doc["goldens"]


def test_health_names_the_version_and_schema(server: Server) -> None:
    from driftboard.core.version import __version__
    from driftboard.db.migrate import head_revision

    assert server.get("/api/v1/health").json() == {"status": "ok", "version": __version__, "schema": head_revision()}


# ---------------------------------------------------------------- who may do what


def test_missing_wrong_and_viewer_tokens_are_refused_and_nothing_is_stored(server: Server) -> None:
    data = make_bundle(110, 1)
    missing = server.push(data)
    assert_one_line_error(missing, 401, "token")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = server.push(data, {"Authorization": "Bearer not-a-member-token"})
    assert_one_line_error(wrong, 401, "not valid")
    assert wrong.headers["www-authenticate"].startswith("Bearer")
    assert_one_line_error(server.push(data, {"Authorization": "Basic YTpi"}), 401, "Bearer")
    assert_one_line_error(server.push(data, bearer("vera")), 403, "viewer", "uploader")
    assert "m0110-r00001-default" not in stored(server)
    assert server.get("/api/v1/runs").status == 200  # viewing is open in this access file
    assert server.get("/api/v1/runs", **bearer("vera")).status == 200
    assert server.push(data, bearer("alice")).status == 201  # admin may push


def test_a_browser_form_cannot_push(server: Server) -> None:
    """Only application/octet-stream is taken: a cross-site form or text/plain POST needs a CORS preflight then."""
    answer = server.request("POST", "/api/v1/runs", make_bundle(111, 1), {"Content-Type": "text/plain",
                                                                           **bearer("ci")})
    assert_one_line_error(answer, 415, "application/octet-stream")
    assert "m0111-r00001-default" not in stored(server)


def test_unknown_routes_and_methods_are_json_errors(server: Server) -> None:
    assert_one_line_error(server.get("/api/v1/nothing"), 404, "/api/v1/nothing")
    answer = server.request("DELETE", "/api/v1/runs")
    assert_one_line_error(answer, 405, "DELETE")
    assert answer.headers["allow"] == "GET, HEAD, POST"
    assert_one_line_error(server.get("/api/v1/runs?per_page=0"), 400, "per_page")
    assert_one_line_error(server.get("/api/v1/runs?page=x"), 400, "page")


# ---------------------------------------------------------------- bodies that must not be stored


def test_an_oversize_body_is_413_before_it_is_read(server: Server) -> None:
    too_big = DEFAULT_LIMITS.file_bytes + 1
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     + f"Authorization: {bearer('ci')['Authorization']}\r\nContent-Length: {too_big}\r\n\r\n".encode()
                     + b"PK")
        reply = _read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"over the 64.0 MiB limit" in reply or b"limit" in reply


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(server: Server) -> None:
    before = stored(server)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    chunk = b"\0" * (1 << 20)

    def body() -> Iterator[bytes]:
        for _ in range(DEFAULT_LIMITS.file_bytes // len(chunk) + 8):
            yield chunk

    try:
        conn.request("POST", "/api/v1/runs", body=body(), encode_chunked=True,
                     headers={"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked",
                              **bearer("ci")})
        response = conn.getresponse()
        status, payload = response.status, response.read()
    except (BrokenPipeError, ConnectionResetError):  # the server answered and closed while we were still sending
        status, payload = 413, b'{"error":"closed"}'
    finally:
        conn.close()
    assert status == 413, payload
    assert stored(server) == before


def test_a_slow_body_is_408_and_the_server_stays_responsive(server: Server) -> None:
    data = make_bundle(112, 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     + f"Authorization: {bearer('ci')['Authorization']}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                     + data[:1000])
        started = time.monotonic()
        health = server.get("/api/v1/health")  # while the slow client holds its request open
        assert health.status == 200 and time.monotonic() - started < 2
        reply = _read_reply(sock)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert 1.5 < waited < 10, waited
    assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"].startswith("the body was not sent in time")
    assert "m0112-r00001-default" not in stored(server)
    assert server.push(data, bearer("ci")).status == 201  # a normal push right after


def test_a_body_that_is_not_a_bundle_is_422_and_nothing_is_stored(server: Server) -> None:
    before = stored(server)
    for body, words in [(b"hello, not a zip", ("not a driftboard bundle",)),
                        (_zip_with("notes.txt", b"x"), ("manifest.json",)),
                        (_zip_with("manifest.json", b"{not json"), ("manifest",))]:
        assert_one_line_error(server.push(body, bearer("ci")), 422, "not stored", *words)
    assert_one_line_error(server.push(b"", bearer("ci")), 422, "empty")
    assert stored(server) == before


def test_a_truncated_bundle_and_a_cut_upload_store_nothing(server: Server) -> None:
    before = stored(server)
    data = make_bundle(113, 1)
    assert_one_line_error(server.push(data[: len(data) // 2], bearer("ci")), 422, "not stored")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:  # the client goes away mid-body
        sock.sendall(b"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                     + f"Authorization: {bearer('ci')['Authorization']}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                     + data[: len(data) // 2])
    time.sleep(0.5)
    assert server.get("/api/v1/health").status == 200
    assert stored(server) == before
    assert server.push(data, bearer("ci")).status == 201


def _zip_with(name: str, data: bytes) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(name, data)
    return buffer.getvalue()


def _read_reply(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        reply = b"".join(chunks)
        head, _, rest = reply.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if length is not None and len(rest) >= length:
            break
    return b"".join(chunks)
