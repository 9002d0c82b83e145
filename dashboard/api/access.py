"""Who is calling the API: a bearer token checked against the dashboard's access file, and what they may do.

The policy is the dashboard's (``$DRIFTBOARD_AUTH_FILE``, read once per
server by ``access_file.load_policy``); roles and actions are
``dashboard.auth``'s, so a token unlocks the same things in the page and
over HTTP. In ``open`` mode every action is open to everyone and a token
adds nothing, so none is checked. Otherwise:

- no ``Authorization`` header: the caller is anonymous, allowed what
  anonymous is allowed (viewing, unless ``view`` needs a role); else 401;
- a token that is no member's: 401, and the failure is counted by the
  process-wide ``throttle.TOKEN_ATTEMPTS`` (shared with the unlock box);
  while it is full for the caller's address or overall, unknown tokens get
  429 with ``Retry-After`` before any hashing;
- a member's token whose role is too low for the action: 403.

Checking a token means one scrypt per member (``auth.member_for_token``,
which compares every digest with ``hmac.compare_digest``), tens of
milliseconds, too slow for a CI fleet pushing at once. A token that matched
is remembered as an HMAC under a key drawn at start (never the token itself)
and found again by comparing every remembered digest with
``hmac.compare_digest``. Only matched tokens are remembered, so the memory is
bounded by the number of members, and a remembered token keeps working while
the limiter refuses guesses (tokens are 192 random bits: the limit is there
for the scrypt cost and the log, not for guessing them).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
from dataclasses import dataclass
from functools import cache

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from driftboard.dashboard import access_file, auth, throttle
from driftboard.dashboard.api.responses import ApiError
from driftboard.dashboard.auth import ACTION_WORDS, AccessPolicy, Member, Role

log = logging.getLogger(__name__)

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="driftboard"'}
MAX_TOKEN_CHARS = 512


@dataclass(frozen=True)
class Caller:
    """Who a request is: a member's name ("" when anonymous), their role, and the address it came from."""

    name: str
    role: Role
    address: str

    @property
    def actor(self) -> str:
        return self.name or "anonymous"


class VerifiedTokens:
    """Tokens already matched to a member, as keyed digests; looked up in constant time per entry."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._known: list[tuple[bytes, str]] = []

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._key, token.encode(), hashlib.sha256).digest()

    def member_name(self, token: str) -> str | None:
        digest = self._digest(token)
        with self._lock:
            known = list(self._known)
        found = None
        for stored, name in known:
            if hmac.compare_digest(stored, digest) and found is None:
                found = name
        return found

    def remember(self, token: str, member: Member) -> None:
        digest = self._digest(token)
        with self._lock:
            if all(not hmac.compare_digest(stored, digest) for stored, _ in self._known):
                self._known.append((digest, member.name))


VERIFIED = VerifiedTokens()


@cache
def _policy(path: str) -> AccessPolicy:
    return access_file.load_policy(path) if path else auth.OPEN


def policy() -> AccessPolicy:
    """This server's policy, the file ``driftboard serve`` checked and named in ``$DRIFTBOARD_AUTH_FILE``."""
    return _policy(os.environ.get(auth.ENV_VAR, ""))


def client_address(request: Request) -> str:
    """The caller's address (uvicorn takes it from X-Forwarded-For when a proxy on loopback sets it)."""
    return request.client.host if request.client else "unknown"


async def authorize(request: Request, action: str) -> Caller:
    """The caller, if their token (or none) allows ``action``; else an ``ApiError`` (401, 403 or 429)."""
    access = policy()
    address = client_address(request)
    if not access.restricted:
        return Caller("", Role.ADMIN, address)
    token = _bearer(request.headers.get("authorization"))
    if token is None:
        if access.allows(Role.ANONYMOUS, action):
            return Caller("", Role.ANONYMOUS, address)
        raise ApiError(401, f"a token is needed to {ACTION_WORDS[action]}: send it as Authorization: Bearer TOKEN",
                       CHALLENGE)
    member = await _member(access, token, address)
    if not access.allows(member.role, action):
        raise ApiError(403, f"{member.name}'s role ({member.role.word}) may not {ACTION_WORDS[action]}: that needs "
                            f"{access.needs[action].word}")
    return Caller(member.name, member.role, address)


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "the Authorization header must be: Bearer TOKEN", CHALLENGE)
    return token.strip()


async def _member(access: AccessPolicy, token: str, address: str) -> Member:
    name = VERIFIED.member_name(token) if len(token) <= MAX_TOKEN_CHARS else None
    member = next((m for m in access.members if m.name == name), None) if name is not None else None
    if member is not None:
        return member
    wait = throttle.TOKEN_ATTEMPTS.retry_after(address)
    if wait > 0:
        raise ApiError(429, f"too many wrong tokens: try again in {math.ceil(wait)} s",
                       {"Retry-After": str(math.ceil(wait))})
    member = None if len(token) > MAX_TOKEN_CHARS else await run_in_threadpool(auth.member_for_token, token, access)
    if member is None:
        throttle.TOKEN_ATTEMPTS.failed(address)
        log.warning("api: refused a wrong token from %s", address)
        raise ApiError(401, "the token is not valid on this server", CHALLENGE)
    VERIFIED.remember(token, member)
    return member

