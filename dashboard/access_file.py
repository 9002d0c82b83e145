"""The access configuration file (``driftboard serve --auth FILE``): read strictly, so a slip never serves open.

The file is TOML. Settings come first, then sections; every part is optional
except that the file must say who gets in::

    mode = "tokens"          # open | tokens | oidc; a file holding [tokens] entries and no mode means tokens
    view = "open"            # open, or the role needed to see anything
    upload = "uploader"      # roles needed for each action (these are the defaults)
    golden = "admin"
    delete = "admin"

    [tokens.alice]           # what `driftboard auth hash-token --name alice --role admin` prints
    role = "admin"
    hash = "scrypt$16384$8$1$...$..."

    [oidc]                   # with mode = "oidc"
    default_role = "viewer"
    roles = { "alice@example.com" = "admin" }
    verified_claim = "email_verified"   # the claim that proves the e-mail is the user's, and its value:
    verified_value = true               # without it a login gets at most viewer

The older ``[tokens]`` table of inline ``alice = { role = …, hash = … }``
lines is read too. Everything else is refused in one line naming the key or
section: an unknown key, a setting that landed inside a section (TOML puts a
line appended below ``[tokens.bob]`` into that table), a token entry outside
``[tokens]``, a section the mode does not use, and a file that holds neither
tokens nor a mode, since serving it would leave every action open.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from driftboard.dashboard.auth import (
    ACTIONS,
    DEFAULT_NEEDS,
    ENV_VAR,
    MODES,
    OPEN,
    AccessPolicy,
    AuthConfigError,
    Member,
    Role,
    is_token_hash,
)

SETTINGS = ("mode", *ACTIONS)
SECTIONS = ("tokens", "oidc")
TOKEN_KEYS = ("role", "hash")
OIDC_KEYS = ("default_role", "roles", "verified_claim", "verified_value")
_AT_THE_TOP = "mode, view, upload, golden and delete go at the top of the file, above every [section]"


def load_policy(path: str | Path | None = None) -> AccessPolicy:
    """The policy from ``path`` or ``$DRIFTBOARD_AUTH_FILE``; open when neither is set."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        return OPEN
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthConfigError(f"cannot read access configuration {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AuthConfigError(f"access configuration {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise AuthConfigError(f"access configuration {path} is not valid TOML: {exc}") from None
    return policy_from_dict(data, str(path))


def policy_from_dict(data: dict[str, Any], where: str = "access configuration") -> AccessPolicy:
    _check_top_level(data, where)
    needs = dict(DEFAULT_NEEDS)
    for action in ACTIONS:
        if action in data:
            needs[action] = Role.parse(_text(data[action], f"{where}: {action}"), f"{where}: {action}")
    members = _members(_table(data.get("tokens", {}), f"{where}: [tokens]"), where)
    oidc = _table(data.get("oidc", {}), f"{where}: [oidc]")
    mode = _mode(data, members, oidc, where)
    roles, default, verified = _oidc(oidc, where)
    return AccessPolicy(mode, needs, members, roles, default, verified)


def _check_top_level(data: dict[str, Any], where: str) -> None:
    for key, value in data.items():
        if key in SETTINGS or key in SECTIONS:
            continue
        if isinstance(value, dict) and "hash" in value:
            raise AuthConfigError(f"{where}: token entry {key!r} is outside [tokens]: add the line [tokens] above it "
                                  f"(or make it [tokens.{key}], as `driftboard auth hash-token` prints)")
        if key in TOKEN_KEYS:
            raise AuthConfigError(f"{where}: {key!r} at the top level belongs in a [tokens.NAME] table")
        if key in OIDC_KEYS:
            raise AuthConfigError(f"{where}: {key!r} at the top level belongs under [oidc]")
        raise AuthConfigError(f"{where}: unknown key {key!r} (expected {', '.join(SETTINGS)}, [tokens] or [oidc])")


def _mode(data: dict[str, Any], members: tuple[Member, ...], oidc: dict[str, Any], where: str) -> str:
    """The mode written, or the one the file's content implies; a file that says nothing is refused."""
    if "mode" not in data:
        if members:
            return "tokens"
        if oidc:
            raise AuthConfigError(f'{where}: [oidc] needs the line mode = "oidc" at the top of the file')
        raise AuthConfigError(f"{where}: holds no tokens and no mode, so every action would be open: add entries "
                              f'from `driftboard auth hash-token`, or mode = "oidc" (mode = "open" to mean it)')
    mode = data["mode"]
    if mode not in MODES:
        raise AuthConfigError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "tokens" and not members:
        raise AuthConfigError(f"{where}: mode tokens needs at least one entry under [tokens]")
    if members and mode != "tokens":
        raise AuthConfigError(f'{where}: [tokens] is not used with mode {mode}: set mode = "tokens" or remove it')
    if oidc and mode != "oidc":
        raise AuthConfigError(f'{where}: [oidc] is not used with mode {mode}: set mode = "oidc" or remove it')
    return str(mode)


def _members(tokens: dict[str, Any], where: str) -> tuple[Member, ...]:
    members = []
    for name, entry in tokens.items():
        at = f"{where}: tokens.{name}"
        if not isinstance(entry, dict):
            hint = _AT_THE_TOP if name in SETTINGS else "use `driftboard auth hash-token` to make an entry"
            raise AuthConfigError(f"{at} is not a token entry: {hint}")
        _only(entry, TOKEN_KEYS, at)
        stored = entry.get("hash")
        if not isinstance(stored, str) or not is_token_hash(stored):
            raise AuthConfigError(f"{at} needs role and a hash from `driftboard auth hash-token`")
        role = Role.parse(_text(entry.get("role", "viewer"), f"{at}.role"), at)
        members.append(Member(str(name), role, stored))
    return tuple(members)


def _oidc(oidc: dict[str, Any], where: str) -> tuple[dict[str, Role], Role, tuple[str, bool | str]]:
    at = f"{where}: oidc"
    _only(oidc, OIDC_KEYS, at)
    roles = {str(email).strip().lower(): Role.parse(_text(role, f"{at}.roles.{email}"), f"{at}.roles.{email}")
             for email, role in _table(oidc.get("roles", {}), f"{at}.roles").items()}
    default = Role.parse(_text(oidc.get("default_role", "viewer"), f"{at}.default_role"), f"{at}.default_role")
    claim = _text(oidc.get("verified_claim", "email_verified"), f"{at}.verified_claim")
    value = oidc.get("verified_value", True)
    if not claim.strip() or not isinstance(value, bool | str):
        raise AuthConfigError(f"{at}: verified_claim needs a claim name and verified_value true, false or a string")
    return roles, default, (claim, value)


def _only(table: dict[str, Any], allowed: tuple[str, ...], at: str) -> None:
    for key in table:
        if key not in allowed:
            hint = _AT_THE_TOP if key in SETTINGS else f"expected {', '.join(allowed)}"
            raise AuthConfigError(f"{at}: unknown key {key!r} ({hint})")


def _table(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AuthConfigError(f"{at} must be a table, not {type(value).__name__}")
    return value


def _text(value: Any, at: str) -> str:
    if not isinstance(value, str):
        raise AuthConfigError(f"{at} must be a string, not {value!r}")
    return value
