"""``core.redact``: one redaction for every text kept; each credential shape, and the facts it must leave alone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from driftboard.core.redact import REDACTED, looks_secret, redact_strings, redact_text

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "collect_env"
DATA = Path(__file__).resolve().parent / "data" / "collect_env"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # token shapes
        ("export HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWx12", "export HF_TOKEN=<redacted>"),
        ("token ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 expired", "token <redacted> expired"),
        ("github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", REDACTED),
        ("glpat-AbCdEfGhIjKlMnOpQrSt", REDACTED),
        ("id AKIAIOSFODNN7EXAMPLE here", "id <redacted> here"),
        ("xoxb-1234567890-abcdefghij", REDACTED),
        ("sk-proj-AbCdEfGhIjKlMnOpQrStUvWx", REDACTED),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXBhcnQ", "jwt <redacted>"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAKCAQ==\n-----END RSA PRIVATE KEY-----\nafter",
         "<redacted>\nafter"),
        # URL structure
        ("https://TokNoPass7Qx93Lkz@hub.example.com/models", "https://<redacted>@hub.example.com/models"),
        ("postgresql://app:hunter2@db:5432/prod", "postgresql://<redacted>@db:5432/prod"),
        ("postgresql://app:pa/ss-w1th/slash@db.internal/prod", "postgresql://<redacted>@db.internal/prod"),
        ("mysql://root:p@ss@db/x", "mysql://<redacted>@db/x"),
        ("https://s.example.com/m.pt?sv=2024-05-04&sig=Zm9vYmFy%2Bc2ln&se=2025",
         "https://s.example.com/m.pt?sv=2024-05-04&sig=<redacted>&se=2025"),
        ("https://x.example.com/cb?access_token=at-9f8e7d&state=1", "https://x.example.com/cb?access_token=<redacted>&state=1"),
        ("https://x.example.com/?token=abc123", "https://x.example.com/?token=<redacted>"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F2024&X-Amz-Signature=9f8e",
         "https://b.s3.amazonaws.com/k?X-Amz-Credential=<redacted>&X-Amz-Signature=<redacted>"),
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://hooks.slack.com/<redacted>"),
        ("see https://discord.com/api/webhooks/123/abcDEF now", "see https://discord.com/api/webhooks/<redacted> now"),
        ("https://ci.example.com/generic/hooks/9f8e7d6c", "https://ci.example.com/generic/hooks/<redacted>"),
        # headers and schemes
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer <redacted>"),
        ("curl -H 'Authorization: token 0123abcd' x", "curl -H 'Authorization: token <redacted>' x"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', '{"Authorization": "Basic <redacted>"}'),
        ("Bearer abcdef1234567890", "Bearer <redacted>"),
        # key/value pairs
        ("host=db user=app password=libpq-pw dbname=prod", "host=db user=app password=<redacted> dbname=prod"),
        ("host=db password='has space' dbname=x", "host=db password='<redacted>' dbname=x"),
        ('{"user": "app", "password": "json-pw", "port": 5432}', '{"user": "app", "password": "<redacted>", "port": 5432}'),
        ("{'client_secret': 'py-pw'}", "{'client_secret': '<redacted>'}"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = <redacted>"),
        ("password: correct horse battery staple", "password: <redacted>"),
        ("NCCL_AUTH=abc X-Api-Key: k1", "NCCL_AUTH=<redacted> X-Api-Key: <redacted>"),
        ('"config": "password=x"', '"config": "password=<redacted>"'),
    ],
)
def test_each_credential_shape_is_redacted(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # idempotent
    assert looks_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "CUDA_VISIBLE_DEVICES=0,1",
        "GPU-3b4f5c6d-1234-5678-9abc-def012345678",
        "torch==2.13.0+git1a2b3c4",
        "2.13.0+git1a2b3c4",
        "Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)",
        "Build settings: BLAS_INFO=mkl, COMMIT_SHA=cf30153c4c131c8164ee7798e5022d810682e2cb, USE_CUDA=0",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "d41d8cd98f00b204e9800998ecf8427ed41d8cd9",
        "/usr/local/cuda-12.4/lib64",
        "/opt/conda/envs/py311/bin/python",
        "expandable_segments:True,max_split_size_mb:128",
        ":4096:8",
        "https://download.pytorch.org/whl/cu124",
        "http://proxy.example.com:8080",
        "git+https://github.com/org/repo@v1.0",
        "ssh://git@github.com/org/repo.git",
        "[pip3] tokenizers==0.15.0",
        "[pip3] secretstorage==3.3.3",
        "[conda] keyring 24.3.0 py311h06a4308_0",
        "BLAS (Basic Linear Algebra Subprograms)",
        "Bearer tokens are mentioned in prose",
        "Is CUDA available: True",
        "Vulnerability Spectre v2: Mitigation; Enhanced IBRS; IBPB conditional",
        "Flags: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov avx512f",
        "",
    ],
)
def test_ordinary_values_survive_untouched(text: str) -> None:
    assert redact_text(text) == text


def _reports() -> list[Path]:
    real = sorted(FIXTURES.glob("*.txt")) if FIXTURES.is_dir() else []
    return real + sorted(DATA.glob("*.txt"))


@pytest.mark.parametrize("path", _reports(), ids=lambda p: p.name)
def test_real_collect_env_reports_hold_nothing_to_redact(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert redact_text(text) == text


def test_redact_strings_walks_keys_values_and_lists() -> None:
    value = {"a": ["x", "password=p1", {"ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234": 3}], "n": 1, "t": ("token=t",)}
    assert redact_strings(value) == {"a": ["x", "password=<redacted>", {REDACTED: 3}], "n": 1,
                                     "t": ("token=<redacted>",)}


@pytest.mark.parametrize(
    "text",
    ["a://" * 50_000, "a://b:" * 35_000, "a=b " * 50_000, "password: x\n" * 20_000,
     "-----BEGIN PRIVATE KEY-----" * 8_000, "http://" + "a/" * 100_000, "eyJ" * 70_000],
    ids=["schemes", "scheme-colons", "pairs", "yaml-secrets", "pem-headers", "deep-path", "jwt-prefixes"],
)
def test_hostile_text_takes_linear_time(text: str) -> None:
    # A pasted report may be 2 MB; these 200 kB would take minutes with backtracking.
    start = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - start < 5.0
