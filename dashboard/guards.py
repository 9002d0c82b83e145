"""ASGI middleware `driftboard serve` puts in front of Streamlit: a Host allow-list, no "Clear cache" from
browsers, and no file uploads from sessions that may not upload (``UploadGuard``, ``dashboard.upload_permits``).

**Host** (DNS rebinding): a page on ``evil.example`` whose name is made to
resolve to 127.0.0.1 reaches a dashboard on loopback as a same-origin page, so
Streamlit's Origin check lets its WebSocket in. Its requests still carry
``Host: evil.example``, so every HTTP request and WebSocket upgrade whose Host
is not one of the dashboard's own names is refused (400, or 403 for a
WebSocket) before Streamlit sees it. The names: loopback names when bound to
loopback, the ``--public-name`` values, and, when bound to the network with no
public name, this machine's names and any IP address (an attacker's page
cannot make a browser send an IP address as Host for its own origin).

**Clear cache**: Streamlit answers a ``clear_cache`` message from any browser
session by emptying the caches of the whole server (``AppSession.
_handle_clear_cache_request``), with no hook to ask the app first. This
middleware drops that message on the WebSocket, for everyone; an admin clears
the caches from the dashboard instead (``state.clear_caches``). Which
driftboard role a socket has is known only inside the app, so the refusal
cannot be per role here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ENV_VAR = "DRIFTBOARD_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostRule:
    """The Host names the dashboard answers to, and whether any IP address is one."""

    names: frozenset[str]
    any_ip: bool = False

    def allows(self, host: str | None) -> bool:
        name = host_name(host)
        if name is None:
            return False
        return name in self.names or (self.any_ip and is_ip(name))

    def to_env(self) -> str:
        return json.dumps({"names": sorted(self.names), "any_ip": self.any_ip})

    @classmethod
    def from_env(cls, text: str | None) -> HostRule:
        """The rule ``driftboard serve`` handed over; loopback names only when there is none."""
        if not text:
            return cls(frozenset(LOOPBACK_NAMES))
        data = json.loads(text)
        return cls(frozenset(_normal(n) for n in data["names"]), bool(data["any_ip"]))


def host_rule(bind: str, public_names: Iterable[str] = (), machine_names: Iterable[str] = ()) -> HostRule:
    """The names a dashboard bound to ``bind`` answers to (``machine_names``: this host's, for a network bind)."""
    public = {_normal(n) for n in public_names}
    if is_loopback(bind):
        return HostRule(frozenset({*LOOPBACK_NAMES, _normal(bind), *public}))
    if public:
        return HostRule(frozenset({*LOOPBACK_NAMES, *public}))
    return HostRule(frozenset({*LOOPBACK_NAMES, *(_normal(n) for n in machine_names if n)}), any_ip=True)


def host_name(host: str | None) -> str | None:
    """The name in a Host header, lower-case, without port or trailing dot; None when it is not one."""
    if not host or any(c.isspace() for c in host):
        return None
    try:
        parts = urlsplit(f"//{host}")
        _ = parts.port  # a port that is not a number is refused too
    except ValueError:
        return None
    extra = parts.username is not None or parts.password is not None or parts.path or parts.query or parts.fragment
    if parts.hostname is None or extra:
        return None
    return _normal(parts.hostname)


class HostGuard:
    """Refuse any HTTP request or WebSocket whose Host is not the dashboard's own (DNS rebinding)."""

    def __init__(self, app: ASGIApp, rule: HostRule | None = None) -> None:
        self.app = app
        self.rule = rule or HostRule.from_env(os.environ.get(ENV_VAR))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if self.rule.allows(host):
            await self.app(scope, receive, send)
            return
        log.warning("dashboard: refused a %s request from %s for Host %r: not a name of this dashboard",
                    scope["type"], _client(scope), host)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the server answers 403
            return
        body = (f"driftboard: this dashboard does not answer to the name {host_name(host) or host!r}; "
                "start it with --public-name NAME for a name it should answer to.\n").encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class ClearCacheGuard:
    """Drop Streamlit's ``clear_cache`` message from every browser WebSocket (it empties the whole server's caches)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def receive_without_clear_cache() -> Message:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive" and is_clear_cache(message.get("bytes")):
                    log.warning("dashboard: refused Streamlit's clear_cache message from %s (an admin clears the "
                                "caches from the sidebar)", _client(scope))
                    continue
                return message

        await self.app(scope, receive_without_clear_cache, send)


class UploadGuard:
    """Refuse a file upload from a browser session whose role may not upload, before its body is read."""

    PREFIX = "/_stcore/upload_file/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(self.PREFIX) or scope.get("method") in ("OPTIONS", "HEAD", "GET"):
            await self.app(scope, receive, send)
            return
        from driftboard.dashboard import upload_permits

        session_id = path[len(self.PREFIX):].split("/", 1)[0]
        if upload_permits.may_upload(session_id):
            await self.app(scope, receive, send)
            return
        log.warning("dashboard: refused a file upload from %s: its session may not upload", _client(scope))
        body = b"driftboard: this session may not upload runs; unlock with a token that has the upload role.\n"
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def is_clear_cache(data: bytes | None) -> bool:
    """Whether a WebSocket frame is Streamlit's ``BackMsg`` asking to clear the caches."""
    if not data:
        return False
    from google.protobuf.message import DecodeError
    from streamlit.proto.BackMsg_pb2 import BackMsg

    try:
        return BackMsg.FromString(data).WhichOneof("type") == "clear_cache"
    except DecodeError:
        return False  # not ours to judge: Streamlit refuses it as it always has


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if len(values) != 1:
        return None  # none, or two Host headers: no single name to trust
    return values[0].decode("latin-1")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "an unknown address"


def _normal(name: str) -> str:
    return name.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


_HOST_NAME = re.compile(r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def is_host_name(text: str) -> bool:
    """Whether ``text`` is a DNS name or an IP address (``[::1]`` too): no scheme, port or path."""
    return bool(_HOST_NAME.fullmatch(text)) or is_ip(text.removeprefix("[").removesuffix("]"))


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether an address (or ``localhost``) answers this machine only."""
    name = _normal(host)
    return name == "localhost" or (is_ip(name) and ipaddress.ip_address(name).is_loopback)
