"""Bearer tokens on the team API: viewing restricted, wrong tokens rate-limited per address and overall.

A server of its own (SQLite, access file with ``view = "viewer"``), since the
limiter it fills is process-wide: wrong tokens here would make the other API
tests' servers refuse.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

import pytest
from api_server import TOKENS, Server, bearer, serving, write_access_file
from db_factory import make_bundle

from driftboard.dashboard import throttle
from driftboard.dashboard.api.access import VerifiedTokens
from driftboard.dashboard.auth import Member, Role


@pytest.fixture(scope="module")
def locked(tmp_path_factory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("api-access")
    access = write_access_file(directory / "team-auth.toml", view="viewer")
    with serving(f"sqlite:///{directory / 'team.sqlite'}", directory, access_file=access) as server:
        yield server


def test_viewing_needs_a_token_when_the_access_file_says_so(locked: Server) -> None:
    refused = locked.get("/api/v1/runs")
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert "view runs" in refused.json()["error"]
    assert locked.get("/api/v1/runs", **bearer("vera")).status == 200
    assert locked.get("/api/v1/golden", **bearer("vera")).status == 200
    assert locked.get("/api/v1/health").status == 200  # a probe needs no token
    assert locked.get("/api/v1/openapi.json").status == 200


def test_wrong_tokens_are_rate_limited_and_known_tokens_keep_working(locked: Server) -> None:
    assert locked.push(make_bundle(1, 1), bearer("alice")).status == 201  # alice's token is known from now on
    for i in range(throttle.PER_CLIENT):
        answer = locked.get("/api/v1/runs", Authorization=f"Bearer wrong-{i}")
        assert answer.status == 401 and answer.json()["error"] == "the token is not valid on this server"
    limited = locked.get("/api/v1/runs", Authorization="Bearer wrong-again")
    assert limited.status == 429 and "too many wrong tokens" in limited.json()["error"]
    assert 0 < int(limited.headers["retry-after"]) <= throttle.WINDOW_SECONDS
    # A member's token never checked before is refused too while the window is full: it would need hashing.
    assert locked.get("/api/v1/runs", **bearer("spare")).status == 429
    # One that matched before is recognised without hashing and is not held up by someone else's guesses.
    assert locked.get("/api/v1/runs", **bearer("alice")).status == 200
    assert locked.push(make_bundle(2, 1), bearer("alice")).status == 201
    assert "refused a wrong token from 127.0.0.1" in locked.text()
    assert all(token not in locked.text() for _, token in TOKENS.values())  # no token is ever logged


def test_verified_tokens_are_kept_as_keyed_digests_only() -> None:
    kept = VerifiedTokens()
    member = Member("ci", Role.UPLOADER, "scrypt$...")
    assert kept.member_name("secret-token") is None
    kept.remember("secret-token", member)
    kept.remember("secret-token", member)
    assert kept.member_name("secret-token") == "ci" and kept.member_name("secret-tokeN") is None
    assert len(kept._known) == 1
    digest, name = kept._known[0]
    assert b"secret-token" not in digest and len(digest) == 32 and name == "ci"
    assert not hmac.compare_digest(digest, VerifiedTokens()._digest("secret-token"))  # a key per process
