"""The guards in front of Streamlit: the Host allow-list (DNS rebinding) and the refused "Clear cache" message.

The middleware is tested on its own with real ASGI messages and real
``BackMsg`` bytes, then inside a real ``driftboard serve`` on a free loopback
port: an HTTP request and a WebSocket upgrade naming another host are refused
while the dashboard's own names work, and a browser's clear_cache message is
refused and logged with the client's address.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving import free_port, wait_healthy
from streamlit.proto.BackMsg_pb2 import BackMsg

from driftboard.core.processes import driftboard_command
from driftboard.dashboard.guards import ClearCacheGuard, HostGuard, HostRule, host_name, host_rule, is_clear_cache

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "driftboard.example.test"


def back_msg(kind: str) -> bytes:
    msg = BackMsg()
    if kind == "clear_cache":
        msg.clear_cache = True
    else:
        msg.rerun_script.query_string = ""
    return msg.SerializeToString()


# ---------------------------------------------------------------- the rule


LOOPBACK = host_rule("127.0.0.1")


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8501", True), ("localhost:8501", True), ("LOCALHOST.", True), ("[::1]:8501", True),
    ("127.0.0.1", True),
    ("evil.example:8501", False), ("evil.example", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io:8501", False), ("192.168.1.5:8501", False), (None, False), ("", False),
    ("127.0.0.1:port", False), ("user@127.0.0.1", False), ("127.0.0.1/x", False), ("local host", False),
])
def test_on_loopback_only_loopback_names_are_answered(host, allowed):
    assert LOOPBACK.allows(host) is allowed


def test_public_names_and_network_binds():
    proxied = host_rule("127.0.0.1", ["Driftboard.Example.test."])
    assert proxied.allows(f"{PUBLIC}:443") and proxied.allows("localhost") and not proxied.allows("evil.example")
    named = host_rule("0.0.0.0", [PUBLIC], ["box"])
    assert named.allows(PUBLIC) and not named.allows("box") and not named.allows("10.0.0.5")
    network = host_rule("0.0.0.0", (), ["box", "box.lan"])
    assert network.allows("box:8501") and network.allows("box.lan") and network.allows("10.0.0.5:8501")
    assert network.allows("[2001:db8::1]:8501") and not network.allows("evil.example")
    assert host_rule("::1").allows("[::1]:8501") and host_rule("localhost").allows("127.0.0.1")


def test_the_rule_travels_through_the_environment():
    rule = host_rule("0.0.0.0", [PUBLIC])
    assert HostRule.from_env(rule.to_env()) == rule
    assert HostRule.from_env(None) == HostRule(frozenset({"localhost", "127.0.0.1", "::1"}))
    assert host_name("[::1]:80") == "::1" and host_name("Example.COM.:8080") == "example.com"


# ---------------------------------------------------------------- the middleware, with real ASGI messages


@dataclass
class Exchange:
    sent: list[dict]
    app_saw: list[dict]
    app_called: bool


def exchange(guard_class, scope: dict, incoming: list[dict], **kwargs) -> Exchange:
    """Run one ASGI call through a guard around an app that reads every message it is given."""
    sent: list[dict] = []
    app_saw: list[dict] = []
    called = []
    queue = list(incoming)

    async def app(scope, receive, send):
        called.append(True)
        while True:
            message = await receive()
            app_saw.append(message)
            if message["type"] in ("websocket.disconnect", "http.request"):
                return

    async def receive():
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(guard_class(app, **kwargs)(scope, receive, send))
    return Exchange(sent, app_saw, bool(called))


def scope(kind: str, host: str | None) -> dict:
    headers = [(b"host", host.encode())] if host is not None else []
    return {"type": kind, "path": "/", "headers": headers, "client": ("203.0.113.7", 50000)}


def test_the_host_guard_refuses_other_names_before_the_app_runs(caplog):
    http_evil = exchange(HostGuard, scope("http", "evil.example:8501"), [{"type": "http.request"}], rule=LOOPBACK)
    assert not http_evil.app_called and http_evil.sent[0]["status"] == 400
    assert b"--public-name" in http_evil.sent[1]["body"]
    ws_evil = exchange(HostGuard, scope("websocket", "evil.example:8501"), [], rule=LOOPBACK)
    assert not ws_evil.app_called and ws_evil.sent == [{"type": "websocket.close", "code": 1008}]
    assert "from 203.0.113.7 for Host 'evil.example:8501'" in caplog.text
    two_hosts = scope("http", "127.0.0.1")
    two_hosts["headers"].append((b"host", b"evil.example"))
    assert not exchange(HostGuard, two_hosts, [{"type": "http.request"}], rule=LOOPBACK).app_called
    ok = exchange(HostGuard, scope("websocket", "127.0.0.1:8501"), [{"type": "websocket.disconnect"}], rule=LOOPBACK)
    assert ok.app_called and ok.sent == []


def test_the_clear_cache_guard_drops_only_clear_cache(caplog):
    incoming = [{"type": "websocket.connect"},
                {"type": "websocket.receive", "bytes": back_msg("clear_cache")},
                {"type": "websocket.receive", "bytes": back_msg("rerun")},
                {"type": "websocket.receive", "bytes": b"\xff not a BackMsg"},
                {"type": "websocket.disconnect", "code": 1000}]
    seen = exchange(ClearCacheGuard, scope("websocket", "127.0.0.1"), incoming).app_saw
    assert [m["type"] for m in seen] == ["websocket.connect", "websocket.receive", "websocket.receive",
                                         "websocket.disconnect"]
    assert seen[1]["bytes"] == back_msg("rerun") and seen[2]["bytes"] == b"\xff not a BackMsg"
    assert "refused Streamlit's clear_cache message from 203.0.113.7" in caplog.text
    assert is_clear_cache(back_msg("clear_cache")) and not is_clear_cache(back_msg("rerun"))
    assert not is_clear_cache(None) and not is_clear_cache(b"")


# ---------------------------------------------------------------- a real driftboard serve


@dataclass
class Served:
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    """``driftboard serve`` on loopback with one public name, as behind a TLS proxy; stopped at the end."""
    tmp = tmp_path_factory.mktemp("guards")
    port = free_port()
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DRIFTBOARD_DATABASE_URL", "DRIFTBOARD_AUTH_FILE")}
    with log.open("w") as out:
        proc = subprocess.Popen([*driftboard_command(), "serve", "--db", str(tmp / "guards.sqlite"), "--port", str(port),
                                 "--public-name", PUBLIC], cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield Served(port, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: nothing it started survives
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def get(port: int, path: str, host: str, **headers: str) -> int:
    """The status of a request to 127.0.0.1:port that names ``host`` (what a rebound DNS name makes a browser send)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def upgrade(port: int, host: str, **headers: str) -> int:
    """The status of a WebSocket upgrade to the dashboard's stream, with Host and Origin both naming ``host``."""
    return get(port, "/_stcore/stream", host, Origin=f"http://{host}", Upgrade="websocket", Connection="Upgrade",
               Sec_WebSocket_Key=base64.b64encode(os.urandom(16)).decode(), Sec_WebSocket_Version="13",
               Sec_WebSocket_Protocol="streamlit", **headers)


def test_a_rebound_name_is_refused_and_the_dashboards_own_names_work(served):
    port = served.port
    assert upgrade(port, f"evil.example:{port}") == 403
    assert get(port, "/", f"evil.example:{port}") == 400
    assert get(port, "/_stcore/health", f"evil.example:{port}") == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"{PUBLIC}:{port}"):
        assert get(port, "/", host) == 200, host
        assert upgrade(port, host) == 101, host
    assert "refused a websocket request from 127.0.0.1 for Host 'evil.example:" in served.text()


def test_a_refusal_behind_a_local_proxy_logs_the_forwarded_client_address(served):
    """uvicorn takes X-Forwarded-For from a proxy on 127.0.0.1: the log names the real client."""
    assert upgrade(served.port, "evil.example", X_Forwarded_For="198.51.100.23") == 403
    assert "refused a websocket request from 198.51.100.23" in served.text()


def test_a_browsers_clear_cache_message_is_refused(served):
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{served.port}/_stcore/stream"
    with connect(url, subprotocols=["streamlit"], origin=f"http://127.0.0.1:{served.port}") as ws:
        ws.send(back_msg("rerun"))
        ws.send(back_msg("clear_cache"))
        ws.recv(timeout=30)  # the app answers the rerun: the connection is a working session
        deadline = time.monotonic() + 30
        while "clear_cache" not in served.text() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "refused Streamlit's clear_cache message from 127.0.0.1" in served.text()
