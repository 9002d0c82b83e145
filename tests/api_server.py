"""A real ``driftboard serve`` for the team-API tests and benchmark, and a tiny HTTP client for it.

The server runs from a hostile working directory (``hostile.py``: look-alike
``core``/``db`` packages that fail when imported), in its own session so
stopping it stops everything it started. Requests go over real sockets with
``http.client``: nothing of the server is imported in-process.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hostile import hostile_directory
from serving import free_port, wait_healthy

from driftboard.core.processes import driftboard_command
from driftboard.dashboard.auth import hash_token

TOKENS = {"alice": ("admin", "alice-admin-token-0123456789abcdef"),
          "ci": ("uploader", "ci-uploader-token-0123456789abcdef"),
          "vera": ("viewer", "vera-viewer-token-0123456789abcdef"),
          "spare": ("uploader", "spare-uploader-token-0123456789ab")}


def write_access_file(path: Path, *, view: str = "open") -> Path:
    lines = ['mode = "tokens"', f'view = "{view}"']
    for name, (role, token) in TOKENS.items():
        lines += [f"[tokens.{name}]", f'role = "{role}"', f'hash = "{hash_token(token)}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name][1]}"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    port: int
    url: str  # the database it serves
    log: Path
    proc: subprocess.Popen

    def request(self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                timeout: float = 60) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def push(self, data: bytes, headers: Mapping[str, str] | None = None) -> Answer:
        return self.request("POST", "/api/v1/runs", data,
                            {"Content-Type": "application/octet-stream", **(headers or {})})

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def team_database(kind: str, directory: Path, prefix: str) -> Iterator[str]:
    """A new team database's URL: a SQLite file in ``directory`` (``serve`` creates it), or a migrated schema of
    the test PostgreSQL server, dropped afterwards (the test is skipped when that server is not reachable)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'team.sqlite'}"
        return
    import pytest
    from conftest import _postgres_problem
    from test_faults import postgres_schema, upgrade_schema

    if _postgres_problem() is not None:
        pytest.skip(f"PostgreSQL not reachable: {_postgres_problem()}")
    with postgres_schema(prefix) as url:
        upgrade_schema(url)
        yield url


@contextlib.contextmanager
def serving(url: str, directory: Path, *, access_file: Path | None = None,
            env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``driftboard serve --db URL [--auth FILE]`` on a free loopback port, from a hostile directory."""
    port = free_port()
    log = directory / f"serve-{port}.log"
    cwd = hostile_directory(directory / "training-repo")
    clean = {k: v for k, v in os.environ.items() if k not in ("DRIFTBOARD_DATABASE_URL", "DRIFTBOARD_AUTH_FILE")}
    args = [*driftboard_command(), "serve", "--db", url, "--port", str(port)]
    if access_file is not None:
        args += ["--auth", str(access_file)]
    with log.open("w") as out:
        proc = subprocess.Popen(args, cwd=cwd, env={**clean, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield Server(port, url, log, proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
