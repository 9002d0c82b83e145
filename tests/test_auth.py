"""Access control: roles, hashed tokens, OIDC e-mails, and the configuration's errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftboard.cli import cli, main, serve_cmd
from driftboard.dashboard.access_file import load_policy, policy_from_dict
from driftboard.dashboard.auth import (
    OPEN,
    AuthConfigError,
    Role,
    hash_token,
    member_for_token,
    new_token,
)

ROOT = Path(__file__).resolve().parents[1]
HASH = hash_token("a-token")


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
    entry_text = result.stdout
    token = result.stderr.strip().rsplit(" ", 1)[1]
    entry = tomllib.loads(entry_text)["tokens"]["alice"]
    assert entry["role"] == "admin" and token not in entry_text
    policy = policy_from_dict({"mode": "tokens", "tokens": {"alice": entry}})
    assert member_for_token(token, policy).name == "alice"


def test_auth_module_imports_neither_streamlit_nor_torch() -> None:
    import subprocess

    code = ("import sys, driftboard.dashboard.auth, driftboard.dashboard.access_file, driftboard.dashboard.throttle, "
            "driftboard.dashboard.guards; assert 'streamlit' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the recipes in the README and docs/DEPLOY.md


def recipe_lines(doc: Path) -> list[str]:
    """The ``driftboard auth hash-token … >> FILE`` lines of a document's shell blocks, as written."""
    lines = [line.split("#", 1)[0].strip() for line in doc.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line.startswith("driftboard auth hash-token") and ">>" in line]


@pytest.mark.parametrize("doc", ["README.md", "docs/DEPLOY.md"])
def test_the_documented_recipe_run_literally_gives_a_locked_dashboard(doc, tmp_path, monkeypatch):
    lines = recipe_lines(ROOT / doc)
    assert lines, f"{doc} shows no `driftboard auth hash-token … >> FILE` line"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    tokens = []
    for line in lines:  # each line run as written, appending to the same file
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60, check=True)
        tokens.append(re.search(r": (\S+)$", done.stderr.strip()).group(1))
    [path] = tmp_path.glob("*.toml")  # a new file, holding what the commands appended and nothing else
    policy = load_policy(path)
    assert policy.mode == "tokens" and policy.restricted
    assert not any(policy.allows(Role.ANONYMOUS, action) for action in ("upload", "golden", "delete"))
    assert member_for_token(tokens[0], policy).role is Role.ADMIN
    assert len({member_for_token(t, policy).name for t in tokens}) == len(lines)  # every member its own token

    execs: list[dict[str, str]] = []
    monkeypatch.setattr(serve_cmd.os, "execve", lambda path, args, env: execs.append(env))
    served = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "db.sqlite"), "--host", "0.0.0.0",
                                      "--auth", str(path)])
    assert served.exit_code == 0, served.output
    assert "access tokens" in served.stdout and "warning" not in served.stderr and len(execs) == 1


def test_the_documented_access_files_load(monkeypatch):
    """Each ```toml block of docs/DEPLOY.md that is an access file loads, with real hashes for the placeholders."""
    text = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", text, flags=re.S) if "[auth]" not in b]
    assert len(blocks) >= 2
    for block in blocks:
        policy = policy_from_dict(tomllib.loads(block.replace("scrypt$16384$8$1$…$…", HASH)), "docs")
        assert policy.restricted


def test_hash_token_entries_append_to_any_file(tmp_path):
    """Appended after settings, after an older [tokens] table or after [oidc]'s lines: each lands in [tokens]."""
    entries = [CliRunner().invoke(cli, ["auth", "hash-token", "--name", name, "--role", "uploader"]).stdout
               for name in ("bob", "carol")]
    path = tmp_path / "auth.toml"
    path.write_text(f'mode = "tokens"\nview = "viewer"\n[tokens]\nalice = {{ role = "admin", hash = "{HASH}" }}')
    path.write_text(path.read_text() + "".join(entries))  # no final newline before the first entry
    policy = load_policy(path)
    assert [m.name for m in policy.members] == ["alice", "bob", "carol"]
    assert policy.needs["view"] is Role.VIEWER


# ---------------------------------------------------------------- a file is read strictly


def test_a_file_holding_only_tokens_is_tokens_mode():
    policy = policy_from_dict({"tokens": {"alice": {"role": "admin", "hash": HASH}}})
    assert policy.mode == "tokens" and not policy.allows(Role.ANONYMOUS, "upload")
    assert policy_from_dict({"mode": "open"}) == OPEN  # open only when the file says so


TOKEN = f'role = "admin"\nhash = "{HASH}"\n'


@pytest.mark.parametrize(("text", "words"), [
    ("", "holds no tokens and no mode"),
    ('view = "viewer"\n', "holds no tokens and no mode"),
    (f'alice = {{ role = "admin", hash = "{HASH}" }}\n', "token entry 'alice' is outside \\[tokens\\]: add the line"),
    (f'mode = "tokens"\n[tokens.a]\n{TOKEN}view = "viewer"\n', "tokens.a: unknown key 'view' .*top of the file"),
    (f'mode = "tokens"\nviwe = "viewer"\n[tokens.a]\n{TOKEN}', "unknown key 'viwe'"),
    (f'[tokens]\na = {{ role = "admin", hash = "{HASH}" }}\nmode = "tokens"\n', "tokens.mode is not a token entry"),
    (f'[tokens.a]\n{TOKEN}salt = "x"\n', "tokens.a: unknown key 'salt'"),
    ('[tokens]\na = "scrypt$16384$8$1$x$y"\n', "tokens.a is not a token entry"),
    ('[tokens.a]\nrole = "admin"\nhash = "scrypt$16384$8$1$abc"\n', "tokens.a needs role and a hash"),
    (f'[tokens.a]\nrole = "admin"\nhash = "{HASH[:-20]}"\n', "tokens.a needs role and a hash"),
    ('mode = "oidc"\n[oidc]\nrole = { "a@b.c" = "admin" }\n', "oidc: unknown key 'role'"),
    ('mode = "oidc"\ndefault_role = "viewer"\n', "'default_role' at the top level belongs under \\[oidc\\]"),
    ('role = "admin"\n', "'role' at the top level belongs in a \\[tokens.NAME\\] table"),
    (f'mode = "tokens"\n[tokens.a]\n{TOKEN}[oidc]\ndefault_role = "viewer"\n', "\\[oidc\\] is not used with mode tokens"),
    (f'mode = "oidc"\n[tokens.a]\n{TOKEN}', "\\[tokens\\] is not used with mode oidc"),
    (f'mode = "open"\n[tokens.a]\n{TOKEN}', "\\[tokens\\] is not used with mode open"),
    ('[oidc]\nroles = { "a@b.c" = "admin" }\n', 'needs the line mode = "oidc"'),
    ('mode = "tokens"\n[policy]\nx = 1\n', "unknown key 'policy'"),
    ('mode = 1\n', "mode 1 is not one of"),
    ('mode = "oidc"\n[oidc]\nverified_value = 1\n', "verified_claim needs a claim name"),
    ('mode = "oidc"\noidc = "yes"\n', "\\[oidc\\] must be a table"),
])
def test_unknown_keys_and_misplaced_sections_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "team-auth.toml"
    path.write_text(text)
    with pytest.raises(AuthConfigError, match=words) as info:
        load_policy(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    assert HASH not in message


def test_serve_refuses_a_file_that_would_leave_the_dashboard_open(tmp_path, monkeypatch, capsys):
    path = tmp_path / "team-auth.toml"
    path.write_text(f'alice = {{ role = "admin", hash = "{HASH}" }}\n')  # what the README recipe used to make
    monkeypatch.setattr(serve_cmd.os, "execve", lambda *args: pytest.fail("served a file that leaves access open"))
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", str(tmp_path / "db.sqlite"), "--auth", str(path)])
    assert exit_info.value.code == 2 and "outside [tokens]" in capsys.readouterr().err


# ---------------------------------------------------------------- OIDC: only a verified e-mail gets its role

OIDC = {"default_role": "viewer", "roles": {"boss@example.com": "admin"}}
MISSING = object()


@pytest.mark.parametrize(("verified", "role"), [
    (True, Role.ADMIN),
    (MISSING, Role.VIEWER),
    (False, Role.VIEWER),
    ("false", Role.VIEWER),
    ("true", Role.VIEWER),
    ("True", Role.VIEWER),
    (0, Role.VIEWER),
    (1, Role.VIEWER),
    (None, Role.VIEWER),
])
def test_only_email_verified_exactly_true_gets_the_mapped_role(verified, role):
    policy = policy_from_dict({"mode": "oidc", "oidc": OIDC})
    user = {"is_logged_in": True, "email": "boss@example.com"}
    if verified is not MISSING:
        user["email_verified"] = verified
    assert policy.oidc_user_role(user) is role


@pytest.mark.parametrize(("default", "unverified"), [("uploader", Role.VIEWER), ("admin", Role.VIEWER),
                                                     ("open", Role.ANONYMOUS), ("viewer", Role.VIEWER)])
def test_an_unverified_login_never_gets_more_than_viewer(default, unverified):
    policy = policy_from_dict({"mode": "oidc", "oidc": {"default_role": default}})
    someone = {"is_logged_in": True, "email": "someone@example.com"}
    assert policy.oidc_user_role(someone) is unverified
    assert policy.oidc_user_role({**someone, "email_verified": True}) is Role.parse(default, "test")


def test_the_verification_claim_can_be_configured():
    entra = policy_from_dict({"mode": "oidc", "oidc": {**OIDC, "verified_claim": "xms_edov", "verified_value": True}})
    boss = {"is_logged_in": True, "email": "boss@example.com"}
    assert entra.oidc_user_role({**boss, "xms_edov": True}) is Role.ADMIN
    assert entra.oidc_user_role({**boss, "email_verified": True}) is Role.VIEWER  # not the claim configured
    domain = policy_from_dict({"mode": "oidc", "oidc": {**OIDC, "verified_claim": "hd", "verified_value": "example.com"}})
    assert domain.oidc_user_role({**boss, "hd": "example.com"}) is Role.ADMIN
    assert domain.oidc_user_role({**boss, "hd": "example.com.evil"}) is Role.VIEWER
    assert domain.oidc_user_role({**boss, "hd": True}) is Role.VIEWER

