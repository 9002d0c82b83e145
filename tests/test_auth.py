"""Access control: roles, hashed tokens, OIDC e-mails, and the configuration's errors."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftboard.cli import cli
from driftboard.dashboard.auth import (
    OPEN,
    AuthConfigError,
    Role,
    hash_token,
    load_policy,
    member_for_token,
    new_token,
    policy_from_dict,
)


def test_open_policy_allows_everything() -> None:
    assert not OPEN.restricted
    assert all(OPEN.allows(Role.ANONYMOUS, action) for action in ("view", "upload", "golden", "delete"))


def test_tokens_unlock_roles_and_only_hashes_are_stored() -> None:
    admin, uploader = new_token(), new_token()
    policy = policy_from_dict({"mode": "tokens", "tokens": {
        "alice": {"role": "admin", "hash": hash_token(admin)},
        "ci": {"role": "uploader", "hash": hash_token(uploader)},
    }})
    assert member_for_token(admin, policy).name == "alice"
    assert member_for_token(uploader, policy).role is Role.UPLOADER
    assert member_for_token("wrong" + admin, policy) is None
    assert member_for_token("", policy) is None
    assert all(admin not in m.token_hash and uploader not in m.token_hash for m in policy.members)
    assert policy.allows(Role.ANONYMOUS, "view") and not policy.allows(Role.ANONYMOUS, "upload")
    assert policy.allows(Role.UPLOADER, "upload") and not policy.allows(Role.UPLOADER, "golden")
    assert policy.allows(Role.ADMIN, "delete")


def test_hashes_are_salted() -> None:
    assert hash_token("same") != hash_token("same")


def test_view_can_be_restricted_and_actions_retuned() -> None:
    policy = policy_from_dict({"mode": "tokens", "view": "viewer", "golden": "uploader",
                               "tokens": {"a": {"role": "viewer", "hash": hash_token("t")}}})
    assert not policy.allows(Role.ANONYMOUS, "view") and policy.allows(Role.VIEWER, "view")
    assert policy.allows(Role.UPLOADER, "golden")


def test_oidc_roles_by_email() -> None:
    policy = policy_from_dict({"mode": "oidc", "oidc": {"default_role": "viewer",
                                                        "roles": {"Alice@Example.com": "admin"}}})
    assert policy.oidc_role("alice@example.com ") is Role.ADMIN
    assert policy.oidc_role("bob@example.com") is Role.VIEWER
    assert policy.oidc_role(None) is Role.ANONYMOUS


@pytest.mark.parametrize(("data", "words"), [
    ({"mode": "password"}, "mode 'password'"),
    ({"mode": "tokens"}, "at least one entry"),
    ({"mode": "tokens", "tokens": {"a": {"role": "admin", "hash": "plaintext"}}}, "hash-token"),
    ({"mode": "tokens", "tokens": {"a": {"role": "boss", "hash": hash_token("x")}}}, "unknown role 'boss'"),
    ({"upload": "everyone"}, "unknown role 'everyone'"),
])
def test_bad_configuration_is_one_line(data: dict, words: str) -> None:
    with pytest.raises(AuthConfigError, match=words) as info:
        policy_from_dict(data)
    assert "\n" not in str(info.value)


def test_load_policy_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "auth.toml"
    path.write_text('mode = "oidc"\n[oidc]\nroles = { "a@b.c" = "admin" }\n')
    monkeypatch.setenv("DRIFTBOARD_AUTH_FILE", str(path))
    assert load_policy().mode == "oidc"
    path.write_text("mode = = 1")
    with pytest.raises(AuthConfigError, match="not valid TOML"):
        load_policy(path)
    with pytest.raises(AuthConfigError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")
    monkeypatch.delenv("DRIFTBOARD_AUTH_FILE")
    assert load_policy() is OPEN


def test_hash_token_command_prints_a_config_line_and_the_token_once() -> None:
    result = CliRunner().invoke(cli, ["auth", "hash-token", "--name", "alice", "--role", "admin"])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    token = result.stderr.strip().rsplit(" ", 1)[1]
    entry = tomllib.loads(line)["alice"]
    assert entry["role"] == "admin" and token not in line
    policy = policy_from_dict({"mode": "tokens", "tokens": {"alice": entry}})
    assert member_for_token(token, policy).name == "alice"


def test_auth_module_imports_neither_streamlit_nor_torch() -> None:
    import subprocess

    code = "import sys, dashboard.auth; assert 'streamlit' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
