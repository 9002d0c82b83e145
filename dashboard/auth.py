"""Who may do what on the dashboard: roles, hashed tokens, OIDC e-mails. Pure: no Streamlit.

Three actions change data: uploading runs, marking goldens and deleting runs.
Each needs a minimum role (viewer < uploader < admin); viewing may stay open
on a trusted network. Roles come from one of:

- ``open`` (the default): no access control, every action allowed; `serve`
  warns when such a dashboard listens beyond loopback.
- ``tokens``: a small team's built-in mode. Each member gets a random token;
  only its scrypt hash is kept in the configuration file, so the file can be
  shared without giving anyone access.
- ``oidc``: Streamlit's native login (``st.login`` with an OpenID Connect
  provider configured in ``.streamlit/secrets.toml``); roles are given by
  e-mail address.

The configuration is a TOML file named by ``driftboard serve --auth FILE`` or
``$DRIFTBOARD_AUTH_FILE``::

    mode = "tokens"          # open | tokens | oidc
    view = "open"            # open, or the role needed to see anything
    upload = "uploader"      # roles needed for each action (these are the defaults)
    golden = "admin"
    delete = "admin"

    [tokens]                 # name = { role, hash } from `driftboard auth hash-token`
    alice = { role = "admin", hash = "scrypt$16384$8$1$...$..." }

    [oidc]                   # with mode = "oidc"
    default_role = "viewer"
    roles = { "alice@example.com" = "admin" }
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from driftboard.core.errors import DriftboardError

ENV_VAR = "DRIFTBOARD_AUTH_FILE"
ACTIONS = ("view", "upload", "golden", "delete")
MODES = ("open", "tokens", "oidc")
# A refused token costs the caller this long: guessing stays slow even without a lockout.
REFUSAL_DELAY_SECONDS = 1.5


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


DEFAULT_NEEDS = {"view": Role.ANONYMOUS, "upload": Role.UPLOADER, "golden": Role.ADMIN, "delete": Role.ADMIN}
OPEN = AccessPolicy()


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


# ------------------------------------------------------------------ configuration


def load_policy(path: str | Path | None = None) -> AccessPolicy:
    """The policy from ``path`` or ``$DRIFTBOARD_AUTH_FILE``; open when neither is set."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return OPEN
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthConfigError(f"cannot read access configuration {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"access configuration {path} is not valid TOML: {exc}") from None
    return policy_from_dict(data, str(path))


def policy_from_dict(data: dict[str, Any], where: str = "access configuration") -> AccessPolicy:
    mode = data.get("mode", "open")
    if mode not in MODES:
        raise AuthConfigError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
    needs = dict(DEFAULT_NEEDS)
    for action in ACTIONS:
        if action in data:
            needs[action] = Role.parse(str(data[action]), f"{where}: {action}")
    members = []
    for name, entry in (data.get("tokens") or {}).items():
        if not isinstance(entry, dict) or not str(entry.get("hash", "")).startswith("scrypt$"):
            raise AuthConfigError(f"{where}: tokens.{name} needs role and a hash from `driftboard auth hash-token`")
        members.append(Member(str(name), Role.parse(str(entry.get("role", "viewer")), f"{where}: tokens.{name}"),
                              str(entry["hash"])))
    if mode == "tokens" and not members:
        raise AuthConfigError(f"{where}: mode tokens needs at least one entry under [tokens]")
    oidc = data.get("oidc") or {}
    roles = {str(email).strip().lower(): Role.parse(str(role), f"{where}: oidc.roles.{email}")
             for email, role in (oidc.get("roles") or {}).items()}
    default = Role.parse(str(oidc.get("default_role", "viewer")), f"{where}: oidc.default_role")
    return AccessPolicy(mode, needs, tuple(members), roles, default)
