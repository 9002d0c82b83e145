"""Who may do what on the dashboard: roles, hashed tokens, OIDC e-mails. Pure: no Streamlit.

Three actions change data: uploading runs, marking goldens and deleting runs.
Each needs a minimum role (viewer < uploader < admin); viewing may stay open
on a trusted network. Roles come from one of:

- ``open`` (without an access file, or one saying ``mode = "open"``): no
  access control, every action allowed; `serve` warns when such a dashboard
  listens beyond loopback.
- ``tokens``: a small team's built-in mode. Each member gets a random token;
  only its scrypt hash is kept in the configuration file, so the file can be
  shared without giving anyone access.
- ``oidc``: Streamlit's native login (``st.login`` with an OpenID Connect
  provider configured in ``.streamlit/secrets.toml``); roles are given by
  e-mail address.

The configuration is a TOML file named by ``driftboard serve --auth FILE`` or
``$DRIFTBOARD_AUTH_FILE``, read by ``dashboard.access_file``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from driftboard.core.errors import DriftboardError

ENV_VAR = "DRIFTBOARD_AUTH_FILE"
ACTIONS = ("view", "upload", "golden", "delete")
MODES = ("open", "tokens", "oidc")


class AuthConfigError(DriftboardError):
    """The access-control configuration is invalid."""


class Role(IntEnum):
    ANONYMOUS = 0
    VIEWER = 1
    UPLOADER = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str, where: str) -> Role:
        if text == "open":
            return cls.ANONYMOUS
        try:
            return cls[text.upper()]
        except KeyError:
            raise AuthConfigError(f"{where}: unknown role {text!r} (expected viewer, uploader or admin)") from None

    @property
    def word(self) -> str:
        return "anonymous" if self is Role.ANONYMOUS else self.name.lower()


@dataclass(frozen=True)
class Member:
    name: str
    role: Role
    token_hash: str


@dataclass(frozen=True)
class AccessPolicy:
    mode: str = "open"
    needs: dict[str, Role] = field(default_factory=lambda: dict(DEFAULT_NEEDS))
    members: tuple[Member, ...] = ()
    oidc_roles: dict[str, Role] = field(default_factory=dict)
    oidc_default: Role = Role.VIEWER
    # The claim (and its exact value) by which the provider vouches that the e-mail is the user's.
    oidc_verified: tuple[str, bool | str] = ("email_verified", True)

    @property
    def restricted(self) -> bool:
        return self.mode != "open"

    def allows(self, role: Role, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        return not self.restricted or role >= self.needs[action]

    def oidc_role(self, email: str | None) -> Role:
        if not email:
            return Role.ANONYMOUS
        return self.oidc_roles.get(email.strip().lower(), self.oidc_default)

    def oidc_user_role(self, user: Mapping[str, Any]) -> Role:
        """The role of a logged-in user's claims (``st.user``); above viewer only with a verified e-mail.

        Anyone can sign up at some providers with an address they do not own, so
        a missing claim, ``"false"``, ``"true"``, 0 or 1 count as unverified:
        only the configured value itself (``True`` by default) does.
        """
        if not user.get("is_logged_in"):
            return Role.ANONYMOUS
        email = user.get("email")
        if not isinstance(email, str) or not email.strip():
            return Role.ANONYMOUS
        if self.email_verified(user):
            return self.oidc_role(email)
        return min(self.oidc_default, Role.VIEWER)

    def email_verified(self, user: Mapping[str, Any]) -> bool:
        claim, expected = self.oidc_verified
        actual = user.get(claim)
        return type(actual) is type(expected) and actual == expected


DEFAULT_NEEDS = {"view": Role.ANONYMOUS, "upload": Role.UPLOADER, "golden": Role.ADMIN, "delete": Role.ADMIN}
OPEN = AccessPolicy()
WRITES = ("upload", "golden", "delete")
# What each action lets a caller do, in the words of the API's refusals and of `serve`'s open-writes warning.
ACTION_WORDS = {"view": "view runs", "upload": "push runs", "golden": "mark goldens", "delete": "delete runs"}


def open_writes(policy: AccessPolicy) -> tuple[str, ...]:
    """The actions that change data which anyone may do without a token or login under ``policy``."""
    return tuple(action for action in WRITES if policy.allows(Role.ANONYMOUS, action))


# ------------------------------------------------------------------ tokens

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def new_token() -> str:
    """A random token to hand to one team member (shown once, never stored)."""
    return secrets.token_urlsafe(24)


def hash_token(token: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def is_token_hash(stored: str) -> bool:
    """Whether ``stored`` has the shape ``hash_token`` writes (so a truncated paste is refused when loading)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    try:
        return len(base64.urlsafe_b64decode(parts[4])) == 16 and len(base64.urlsafe_b64decode(parts[5])) == 32
    except ValueError:
        return False


def _matches(token: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(token.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n), r=int(r), p=int(p),
                                dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def member_for_token(token: str, policy: AccessPolicy) -> Member | None:
    """The member whose token this is; every entry is checked so timing does not reveal which."""
    found = None
    for member in policy.members:
        if _matches(token, member.token_hash) and found is None:
            found = member
    return found
