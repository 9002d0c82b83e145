"""A small real HTTP server speaking the team API's contract, on a real SQLite store: the client's edge.

``driftboard serve`` implements ``/api/v1/`` for real (dashboard/api/, tested
against real HTTP in its own tests); this stub is what the client tests need
beyond it: faults on demand. ``script`` holds canned answers for the next
requests (``(503, {"error": ...}, headers)``), ``drop_after_store`` stores a
push and then closes the connection without answering (an answer lost on the
way back), and every request is recorded (method, path, Authorization header,
body size). Otherwise it answers as the contract says: bearer tokens
(``tokens``: token -> member), pushes validated and stored by ``Store.ingest``
(201, or 200 for a bundle already stored), the runs and goldens documents of
``db.documents``, bundles rebuilt from the store.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from driftboard.core.bundle import bundle_bytes
from driftboard.core.errors import DriftboardError, NotFoundError
from driftboard.db.documents import goldens_document, runs_document, runs_page
from driftboard.db.store import RunFilter, Store


@dataclass
class Seen:
    method: str
    path: str
    authorization: str | None
    body_bytes: int


@dataclass
class StubState:
    store: Store
    tokens: dict[str, str]
    script: list[tuple[int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    drop_after_store: int = 0  # pushes to store and then answer nothing
    echo_authorization: bool = False  # a hostile server: put the Authorization header in its error lines
    seen: list[Seen] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization")
        state.seen.append(Seen(method, self.path, auth, len(body)))
        if state.script:
            status, doc, headers = state.script.pop(0)
            if state.echo_authorization:
                doc = {"error": f"{doc.get('error', '')} (you sent {auth})"}
            return self._answer(status, doc, headers)
        member = state.tokens.get((auth or "").removeprefix("Bearer "))
        if state.tokens and member is None:
            line = "missing or wrong token" + (f": {auth}" if state.echo_authorization else "")
            return self._answer(401, {"error": line}, {"WWW-Authenticate": "Bearer"})
        parts = urlsplit(self.path)
        path, query = parts.path.removeprefix("/api/v1/"), parse_qs(parts.query)
        try:
            if method == "POST" and path == "runs":
                return self._push(body, member or "")
            if method == "GET" and path == "health":
                return self._answer(200, {"status": "ok"})
            if method == "GET" and path == "golden":
                return self._answer(200, goldens_document(state.store.goldens()))
            if method == "GET" and path == "runs":
                filters = RunFilter(machine=_one(query, "machine"), label=_one(query, "label"),
                                    tags=tuple(query.get("tag", ())))
                page = runs_page(state.store, filters, page=int(_one(query, "page") or 1),
                                 per_page=int(_one(query, "per_page") or 50))
                return self._answer(200, runs_document(page))
            if method == "GET" and path.startswith("runs/") and path.endswith("/bundle"):
                run, arrays = state.store.load_run(unquote(path[5:-7]))
                return self._answer_bytes(200, bundle_bytes(run, arrays), "application/octet-stream")
        except NotFoundError as exc:
            return self._answer(404, {"error": str(exc)})
        except DriftboardError as exc:
            return self._answer(400, {"error": str(exc)})
        return self._answer(404, {"error": f"no such endpoint: {method} {parts.path}"})

    def _push(self, body: bytes, member: str) -> None:
        state = self.server.state
        result = state.store.ingest(body, uploader=member, channel="api", address=self.client_address[0])
        if state.drop_after_store > 0:
            state.drop_after_store -= 1
            self.close_connection = True
            self.connection.close()  # stored, but the answer never reaches the client
            return
        found = state.store.verdict(result.run_id) if result.created else None
        self._answer(201 if result.created else 200,
                     {"run_id": result.run_id, "stored": result.created,
                      "verdict": found.worst if found else None, "golden": found.golden_run_id if found else None})

    def _answer(self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        self._answer_bytes(status, json.dumps(doc).encode(), "application/json", headers)

    def _answer_bytes(self, status: int, data: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class _Server(HTTPServer):
    state: StubState


@contextmanager
def team_server_stub(db_url: str, tokens: dict[str, str] | None = None) -> Iterator[tuple[str, StubState]]:
    """(base URL, state) of a stub server on a free loopback port, serving ``db_url``; stopped afterwards."""
    with Store(db_url) as store:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.state = StubState(store, dict(tokens or {}))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", server.state
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
