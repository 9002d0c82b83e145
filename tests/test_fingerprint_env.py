"""Environment variables: allowlist, credential redaction, planted secrets never reach the fingerprint."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

import pytest

from driftboard.core.fingerprint import collect_fingerprint, redact_environment
from driftboard.core.fingerprint.environment import REDACTED, is_allowed, value_looks_secret

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8sLp2Xk1",
    "AWS_ACCESS_KEY_ID": "AKIAQ3EGRJ7ZX5VNTK2M",
    "GITHUB_TOKEN": "ghp_R4nd0mT0k3nV4lu3F0rT3st1ngOnly0123",
    "DATABASE_URL": "postgresql://driftboard:hunter2-pw@db.internal:5432/runs",
    "TF_TOKEN_app_terraform_io": "tfe.Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hs3Jf0Wg5Ty",
    "HOME": "/home/alice-secret-home",
    "KUBERNETES_SERVICE_HOST": "10.96.0.1-k8s-host-value",
    # Allowlisted prefixes whose name says credential:
    "TORCH_HUB_TOKEN": "torchhub-0123456789-plain",
    "PYTORCH_API_KEY": "plainlowercasekeyvalue",
    "CUDA_AUTH_HEADER": "plain-header-value-17",
    "NCCL_IB_PASSWORD": "letmein",
    # Allowlisted names whose value looks like a credential:
    "PYTORCH_CUDA_ALLOC_CONF": "https://admin:s3cr3tpass@alloc.example.com/conf",
    "TORCHINDUCTOR_CACHE_DIR": "AKIAQ3EGRJ7ZX5VNTK2N",
    "TRITON_CACHE_URL": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    "MKL_LICENSE": "Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hs3Jf0Wg5TyQw",
    "XLA_FLAGS": "--token=ghp_AnotherPlantedGitHubToken0987654321",
}
KEPT = {
    "OMP_NUM_THREADS": "4",
    "MKL_CBWR": "COMPATIBLE",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "NVIDIA_TF32_OVERRIDE": "0",
    "CUDA_VISIBLE_DEVICES": "GPU-1b2c3d4e-0000-1111-2222-333344445555,1",
    "ATEN_CPU_CAPABILITY": "avx2",
    "PYTORCH_ENABLE_MPS_FALLBACK": "1",
    "CUDA_HOME": "/usr/local/cuda-12.4",
}


class SpyEnviron(Mapping[str, str]):
    """An environment that records whose values were read (membership tests are not reads)."""

    def __init__(self, data: dict[str, str]) -> None:
        self.data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.data[key]

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_planted_secrets_never_appear_in_the_fingerprint() -> None:
    environ = SpyEnviron({**SECRETS, **KEPT})
    text = json.dumps(collect_fingerprint(environ=environ))
    for name, value in SECRETS.items():
        assert value not in text, name
    for fragment in ("hunter2", "s3cr3tpass", "letmein", "ghp_", "AKIA", "alice-secret"):
        assert fragment not in text
    assert all(is_allowed(name) for name in environ.read)
    assert "HOME" not in environ.read and "DATABASE_URL" not in environ.read


def test_allowlist_keeps_settings_and_redacts_credentials() -> None:
    got = redact_environment({**SECRETS, **KEPT})
    for name, value in KEPT.items():
        assert got[name] == value, name
    for name in (
        "TORCH_HUB_TOKEN",
        "PYTORCH_API_KEY",
        "CUDA_AUTH_HEADER",
        "NCCL_IB_PASSWORD",
        "PYTORCH_CUDA_ALLOC_CONF",
        "TORCHINDUCTOR_CACHE_DIR",
        "TRITON_CACHE_URL",
        "MKL_LICENSE",
        "XLA_FLAGS",
    ):
        assert got[name] == REDACTED, name
    for name in (
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "GITHUB_TOKEN",
        "DATABASE_URL",
        "TF_TOKEN_app_terraform_io",
        "HOME",
        "KUBERNETES_SERVICE_HOST",
    ):
        assert name not in got
    assert list(got) == sorted(got)


def test_kubernetes_is_a_boolean_hint_only() -> None:
    fp = collect_fingerprint(environ={"KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert fp["os"]["container"] == "kubernetes"
    assert "10.96.0.1" not in json.dumps(fp)


@pytest.mark.parametrize(
    "value",
    [
        ":4096:8",
        "expandable_segments:True,max_split_size_mb:128",
        "GPU-3b4f5c6d-1234-5678-9abc-def012345678",
        "MIG-GPU-3b4f5c6d-1234-5678-9abc-def012345678/1/0",
        "/opt/intel/oneAPI/mkl/2024.0/lib/intel64",
        "--xla_gpu_enable_triton_gemm=false --xla_gpu_autotune_level=0",
        "granularity=fine,compact,1,0",
        "AVX512_CORE_AMX",
        "8.0;8.6;9.0+PTX",
        "https://download.pytorch.org/whl/cu124",
        "http://proxy.example.com:8080",
        "backend:cudaMallocAsync",
    ],
)
def test_ordinary_settings_are_not_mistaken_for_secrets(value: str) -> None:
    assert not value_looks_secret(value)


@pytest.mark.parametrize(
    "value",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "postgresql://app:hunter2@db.internal:5432/prod",
        "Bearer abcdef1234567890",
        "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxb-1234567890-abcdefghij",
        "-----BEGIN RSA PRIVATE KEY-----",
        "Zx8Qp2Lm9Rt4Vb7Nc1Kd6Hs3Jf0Wg5Ty",
        "d41d8cd98f00b204e9800998ecf8427ed41d8cd9",
        # Credentials only the value's structure shows (core.redact):
        "https://TokNoPass7Qx93Lkz@hub.example.com/models",
        "https://store.example.com/m.pt?sv=2024-05-04&sig=SigPlanted8Wq2Zr5Tb",
        "https://cache.example.com/get?access_token=AccessPlanted4Hn7Vd",
        "https://hooks.slack.com/services/T0PLANT01/B0PLANT02/SlackPlanted9Xw4Kq",
        "postgresql://app:Slash/Planted5Rv@db.internal/prod",
        "host=db.internal user=app password=LibpqPlanted3Jk8 dbname=prod",
        '{"user": "app", "password": "JsonPlanted2Lp6"}',
    ],
)
def test_credentials_are_recognised_by_value(value: str) -> None:
    assert value_looks_secret(value)


def test_names_outside_the_allowlist() -> None:
    for name in ("PATH", "LD_LIBRARY_PATH", "TF_ENABLE_ONEDNN_OPTS", "TF_VAR_db_password", "HOME", "SSH_AUTH_SOCK"):
        assert not is_allowed(name)
    for name in (
        "OMP_NUM_THREADS",
        "omp_num_threads",
        "DNNL_MAX_CPU_ISA",
        "ONEDNN_DEFAULT_FPMATH_MODE",
        "NVIDIA_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
        "TRITON_F32_DEFAULT",
    ):
        assert is_allowed(name)
