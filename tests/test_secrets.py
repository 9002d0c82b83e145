"""Secrets never leave the machine: a capture in an environment full of credentials stores none of them.

The check searches the raw bytes a user would hand over: the bundle's
decompressed entries and the SQLite database file after the run is pushed.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest

from driftboard.core.processes import driftboard_command

pytest.importorskip("torch")

SECRETS = {
    # Outside the allowlist: never read at all.
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "DATABASE_URL": "postgresql://admin:hunter2-db-pass@db.internal:5432/prod",
    "HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "OPENAI_API_KEY": "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
    "MY_PASSWORD": "correct-horse-battery-staple",
    # Inside the allowlisted prefixes, but named or shaped like a credential: redacted.
    "TORCH_HUB_TOKEN": "torch-hub-secret-value-93f1",
    "PYTORCH_STORE_URL": "https://user:s3cr3t-in-url@example.com/store",
    "CUDA_CACHE_PASSWORD": "cuda-cache-password-77",
    "OMP_NOTE": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dGhpc2lzYXNpZ25hdHVyZQ",
    "NCCL_AUTH_KEY": "nccl-auth-key-value-1234",
}


def _needles() -> list[bytes]:
    needles = []
    for value in SECRETS.values():
        needles.append(value.encode())
        # The distinctive part alone, in case a value was split or quoted.
        needles.append(max(value.replace("/", " ").replace(":", " ").replace("@", " ").split(), key=len).encode())
    return needles


@pytest.fixture(scope="module")
def planted_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets") / "run.driftboard"
    env = {**os.environ, **SECRETS}
    subprocess.run([*driftboard_command(), "capture", "-q", "--repeats", "1", "--case", "linear_10_5",
                    "-o", str(out)], check=True, env=env, capture_output=True)
    return out


def _bundle_text(path: Path) -> bytes:
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
        return b"".join(zf.read(name) for name in zf.namelist())


def test_bundle_holds_no_planted_secret(planted_capture: Path) -> None:
    raw = planted_capture.read_bytes() + _bundle_text(planted_capture)
    leaked = [n.decode() for n in _needles() if n in raw]
    assert not leaked, f"secrets found in the bundle: {leaked}"


def test_allowlisted_secret_names_are_kept_but_redacted(planted_capture: Path) -> None:
    from driftboard.core.bundle import read_bundle

    env = read_bundle(planted_capture).run.fingerprint["env"]
    for name in ("TORCH_HUB_TOKEN", "PYTORCH_STORE_URL", "CUDA_CACHE_PASSWORD", "NCCL_AUTH_KEY", "OMP_NOTE"):
        assert env.get(name) == "<redacted>", name
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DATABASE_URL", "HF_TOKEN", "MY_PASSWORD"):
        assert name not in env


def test_database_holds_no_planted_secret(planted_capture: Path, tmp_path: Path) -> None:
    from driftboard.db.store import Store

    path = tmp_path / "team.sqlite"
    with Store(f"sqlite:///{path}") as store:
        store.ingest(planted_capture, uploader="tester")
    with sqlite3.connect(path) as conn:  # fold the WAL into the file we search
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("team.sqlite"))
    assert b"linear_10_5" in raw  # the run is really there...
    leaked = [n.decode() for n in _needles() if n in raw]
    assert not leaked, f"secrets found in the database file: {leaked}"  # ...and no secret is
