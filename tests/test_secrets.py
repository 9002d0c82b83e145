"""Secrets never leave the machine: runs made amid credentials store none of them.

Two real runs are made with credentials planted everywhere a user's text goes:
a capture (environment variables, label, note, tag) and a ``collect_env``
report pasted with its issue body (the report text, label, note). The check
searches the raw bytes a user would hand over: the bundle's decompressed
entries, and the SQLite database after the runs are pushed, with every
compressed blob it holds (fingerprints are stored zlib-compressed) inflated.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import zlib
from pathlib import Path

import pytest

from driftboard.core.processes import driftboard_command

pytest.importorskip("torch")

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "collect_env"
DATA = Path(__file__).resolve().parent / "data" / "collect_env"

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

# Allowlisted names that say nothing, holding a credential only the value's structure
# shows: name -> (value, the secret part that must not be stored).
STRUCTURED = {
    "TORCH_HUB_URL": ("https://TokNoPass7Qx93Lkz@hub.example.com/models", "TokNoPass7Qx93Lkz"),
    "TORCH_DATA_URL": ("https://store.example.com/m.pt?sv=2024-05-04&sig=SigPlanted8Wq2Zr5Tb", "SigPlanted8Wq2Zr5Tb"),
    "TRITON_CACHE_URL": ("https://cache.example.com/get?access_token=AccessPlanted4Hn7Vd", "AccessPlanted4Hn7Vd"),
    "PYTORCH_FETCH_URL": ("https://models.example.com/w.bin?token=QueryPlanted6Ty3Mp", "QueryPlanted6Ty3Mp"),
    "TORCHINDUCTOR_NOTIFY": ("https://hooks.slack.com/services/T0PLANT01/B0PLANT02/SlackPlanted9Xw4Kq",
                             "SlackPlanted9Xw4Kq"),
    "PYTORCH_DB_URL": ("postgresql://app:Slash/Planted5Rv@db.internal/prod", "Planted5Rv"),
    "NCCL_DSN": ("host=db.internal user=app password=LibpqPlanted3Jk8 dbname=prod", "LibpqPlanted3Jk8"),
    "CUDA_CONFIG_JSON": ('{"user": "app", "password": "JsonPlanted2Lp6"}', "JsonPlanted2Lp6"),
}

# What a user types: --label, --note, --tag.
CAPTURE_TEXT = {
    "--label": ("node-3 glpat-LabelPlanted12345678901", "LabelPlanted12345678901"),
    "--note": ("pushed from https://NoteUserTok7Hq2@git.example.com/repo.git", "NoteUserTok7Hq2"),
    "--tag": ("Bearer eyJhbGciOiJIUzI1NiJ9.eyJ0YWciOjF9.VGFnU2lnUGxhbnRlZA", "VGFnU2lnUGxhbnRlZA"),  # tags: <= 64
}

# An issue body around a real collect_env report, as people paste it.
REPORT_SECRETS = {
    "hf": "hf_ReportPlantedAbcdefghijkl1234",
    "github": "ghp_ReportPlantedAbcdefghijklmnop123456",
    "gitlab": "glpat-ReportPlanted9876543210xy",
    "aws_id": "AKIAREPORTPLANTED123",
    "aws_secret": "ReportPlantedAwsSecret/K7MDENG+bPxRfiCY",
    "jwt_payload": "eyJyZXBvcnQiOiJwbGFudGVkIn0",
    "jwt_signature": "UmVwb3J0U2lnUGxhbnRlZA",
    "pip_url_token": "PipTokPlanted5Xy",
    "bearer": "BearerPlanted0Qz8Rt",
}
IMPORT_TEXT = {
    "--label": ("password=ImportLabelPlanted", "ImportLabelPlanted"),
    "--note": ("from https://hooks.slack.com/services/T1/B2/ImportNotePlanted", "ImportNotePlanted"),
}


def _issue_body() -> str:
    s = REPORT_SECRETS
    report = (FIXTURES / "005.txt").read_text(encoding="utf-8") if FIXTURES.is_dir() else (
        DATA / "mig.txt").read_text(encoding="utf-8")
    return (
        "Training diverges on the new node. I set `export HF_TOKEN=" + s["hf"] + "` and cloned with\n"
        "git clone https://" + s["github"] + "@github.com/org/private.git (GitLab mirror token " + s["gitlab"] + ")\n"
        "AWS: " + s["aws_id"] + "\naws_secret_access_key = " + s["aws_secret"] + "\n"
        'curl -H "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.' + s["jwt_payload"] + "." + s["jwt_signature"] + '" '
        "https://api.example.com\ncurl -H 'Authorization: Bearer " + s["bearer"] + "' https://api.example.com\n\n"
        "```\n" + report.rstrip("\n") + "\n[pip3] private-pkg @ git+https://" + s["pip_url_token"]
        + "@github.com/org/pkg.git\n```\n"
    )


def _needles() -> list[bytes]:
    needles = []
    for value in SECRETS.values():
        needles.append(value.encode())
        # The distinctive part alone, in case a value was split or quoted.
        needles.append(max(value.replace("/", " ").replace(":", " ").replace("@", " ").split(), key=len).encode())
    for _, secret in [*STRUCTURED.values(), *CAPTURE_TEXT.values(), *IMPORT_TEXT.values()]:
        needles.append(secret.encode())
    needles += [secret.encode() for secret in REPORT_SECRETS.values()]
    return needles


def _leaked(raw: bytes) -> list[str]:
    return [n.decode() for n in _needles() if n in raw]


@pytest.fixture(scope="module")
def planted_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("secrets") / "run.driftboard"
    env = {**os.environ, **SECRETS, **{name: value for name, (value, _) in STRUCTURED.items()}}
    typed = [arg for option, (value, _) in CAPTURE_TEXT.items() for arg in (option, value)]
    subprocess.run([*driftboard_command(), "capture", "-q", "--repeats", "1", "--case", "linear_10_5", *typed,
                    "-o", str(out)], check=True, env=env, capture_output=True)
    return out


@pytest.fixture(scope="module")
def planted_import(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("secrets-import")
    (folder / "issue.md").write_text(_issue_body(), encoding="utf-8")
    out = folder / "imported.driftboard"
    typed = [arg for option, (value, _) in IMPORT_TEXT.items() for arg in (option, value)]
    subprocess.run([*driftboard_command(), "import-env", str(folder / "issue.md"), *typed, "-o", str(out)],
                   check=True, capture_output=True)
    return out


def _bundle_text(path: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
        return b"".join(zf.read(name) for name in zf.namelist())


def _database_bytes(path: Path) -> bytes:
    """The SQLite files, plus every blob in them inflated (zlib or raw deflate) where it is compressed."""
    with sqlite3.connect(path) as conn:  # fold the WAL into the file we search
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        blobs = [value for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')
                 for value in row if isinstance(value, bytes)]
    inflated = []
    for blob in blobs:
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
            try:
                inflated.append(zlib.decompress(blob, wbits))
                break
            except zlib.error:
                continue
    files = b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))
    return files + b"".join(inflated)


def _stored(bundles: list[Path], tmp_path: Path) -> bytes:
    from driftboard import Store

    path = tmp_path / "team.sqlite"
    with Store(f"sqlite:///{path}") as store:
        for bundle in bundles:
            store.ingest(bundle, uploader="tester")
    return _database_bytes(path)


def test_bundle_holds_no_planted_secret(planted_capture: Path) -> None:
    raw = planted_capture.read_bytes() + _bundle_text(planted_capture)
    assert not _leaked(raw), f"secrets found in the bundle: {_leaked(raw)}"
    assert b"node-3" in raw and b"hub.example.com" not in raw  # the label is there; env values are redacted whole


def test_allowlisted_secret_names_are_kept_but_redacted(planted_capture: Path) -> None:
    from driftboard.core.bundle import read_bundle

    run = read_bundle(planted_capture).run
    env = run.fingerprint["env"]
    for name in ("TORCH_HUB_TOKEN", "PYTORCH_STORE_URL", "CUDA_CACHE_PASSWORD", "NCCL_AUTH_KEY", "OMP_NOTE",
                 *STRUCTURED):
        assert env.get(name) == "<redacted>", name
    for name in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DATABASE_URL", "HF_TOKEN", "MY_PASSWORD"):
        assert name not in env
    # The user's own text keeps its words, only the credentials go.
    assert run.label == "node-3 <redacted>" == run.fingerprint["identity"]["label"]
    assert run.note == "pushed from https://<redacted>@git.example.com/repo.git"
    assert run.tags == ("Bearer <redacted>",)


def test_imported_report_holds_no_planted_secret(planted_import: Path) -> None:
    from driftboard.core.bundle import read_bundle

    raw = planted_import.read_bytes() + _bundle_text(planted_import)
    assert not _leaked(raw), f"secrets found in the imported bundle: {_leaked(raw)}"
    run = read_bundle(planted_import).run
    text = run.fingerprint["collect_env"]["text"]
    assert "PyTorch version" in text and "Training diverges" in text  # the paste is kept, minus its credentials
    assert "aws_secret_access_key = <redacted>" in text and "Authorization: Bearer <redacted>" in text
    assert (run.label, run.note) == ("password=<redacted>", "from https://hooks.slack.com/<redacted>")


def test_database_holds_no_planted_secret(planted_capture: Path, planted_import: Path, tmp_path: Path) -> None:
    raw = _stored([planted_capture, planted_import], tmp_path)
    assert b"linear_10_5" in raw and b"Training diverges" in raw  # both runs are really there...
    assert not _leaked(raw), f"secrets found in the database: {_leaked(raw)}"  # ...and no secret is
