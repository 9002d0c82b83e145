"""Environment variables that change numerics, read from an allowlist and redacted.

Only a variable whose name is on the allowlist is ever looked at; its whole
value is still replaced by ``<redacted>`` when the name or the value looks like
a credential (anything ``core.redact`` finds in free text, or a long random
string), because allowlisted prefixes such as ``TORCH_`` also hold tokens
(``TORCH_HUB_TOKEN``) and a URL in any variable may carry a password
(vLLM's environment report has the same allowlist-plus-denylist shape,
vllm-project/vllm PR 9293).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping

from driftboard.core.redact import REDACTED, looks_secret

# Prefix -> why a variable under it can change the numbers a model computes.
ALLOWED_PREFIXES: dict[str, str] = {
    "CUDA_": "device visibility and order, launch blocking, module loading (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER)",
    "CUBLAS_": "cuBLAS workspace and determinism (CUBLAS_WORKSPACE_CONFIG=:4096:8)",
    "CUBLASLT_": "cuBLASLt heuristics and workspace",
    "CUDNN_": "cuDNN behaviour and logging",
    "NCCL_": "collective algorithm and protocol, which fix the reduction order (NCCL_ALGO, NCCL_PROTO)",
    "OMP_": "OpenMP thread count and schedule: thread count changes CPU reductions (pytorch#88718, #59863)",
    "KMP_": "Intel OpenMP runtime (KMP_AFFINITY, KMP_BLOCKTIME, KMP_DUPLICATE_LIB_OK)",
    "GOMP_": "GNU OpenMP runtime (GOMP_CPU_AFFINITY, GOMP_SPINCOUNT)",
    "MKL_": "MKL threads, instruction set and conditional numerical reproducibility (MKL_CBWR)",
    "OPENBLAS_": "OpenBLAS threads and core type (OPENBLAS_CORETYPE)",
    "DNNL_": "oneDNN ISA cap and default fp math mode (DNNL_MAX_CPU_ISA, DNNL_DEFAULT_FPMATH_MODE)",
    "ONEDNN_": "the same oneDNN settings under their newer names",
    "ATEN_": "ATen kernel dispatch (ATEN_CPU_CAPABILITY)",
    "TORCH_": "torch behaviour switches (TORCH_ALLOW_TF32_CUBLAS_OVERRIDE, TORCH_BLAS_PREFER_CUBLASLT)",
    "PYTORCH_": "torch allocator, NVML check, MPS fallback (PYTORCH_ENABLE_MPS_FALLBACK moves ops to the CPU)",
    "TORCHINDUCTOR_": "compiled kernels: precision and autotuning choices",
    "TRITON_": "Triton kernels (TRITON_F32_DEFAULT selects ieee or tf32)",
    "XLA_": "torch_xla precision (XLA_USE_BF16, XLA_DOWNCAST_BF16) and XLA_FLAGS",
    "HIP_": "ROCm device visibility (HIP_VISIBLE_DEVICES)",
    "HSA_": "ROCm runtime (HSA_OVERRIDE_GFX_VERSION selects other kernels)",
    "MIOPEN_": "MIOpen (ROCm's cuDNN) algorithm choice",
    "ROCBLAS_": "rocBLAS behaviour",
    "HIPBLASLT_": "hipBLASLt behaviour",
}

# Exact names outside those prefixes.
ALLOWED_NAMES: dict[str, str] = {
    "NVIDIA_TF32_OVERRIDE": "0 disables TF32 in every CUDA library of the process",
    "NVIDIA_VISIBLE_DEVICES": "which GPUs a container sees",
    "ROCR_VISIBLE_DEVICES": "which AMD GPUs the ROCm runtime sees",
    "VECLIB_MAXIMUM_THREADS": "Apple Accelerate thread count",
    "BLIS_NUM_THREADS": "BLIS thread count",
    "GOTO_NUM_THREADS": "legacy OpenBLAS thread count",
    "ZE_AFFINITY_MASK": "which Intel GPUs Level Zero exposes",
    "ONEAPI_DEVICE_SELECTOR": "which oneAPI devices SYCL uses",
}
# Deliberately left out: TF_* (TensorFlow's, and Terraform keeps secrets in
# TF_VAR_* / TF_TOKEN_*), LD_* and PATH (paths, not numerics), and everything else.

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASS|KEY|CREDENTIAL|AUTH|PRIVATE|COOKIE|SESSION|SIGNATURE", re.IGNORECASE)

# Candidate tokens for the entropy check: runs of characters that appear in
# keys, hex digests and base64. Separators such as ',', ':', ';', '=' and
# whitespace split them, so ``expandable_segments:True,max_split_size_mb:128``
# never forms one long token.
_TOKEN = re.compile(r"[A-Za-z0-9+/_\-.]{20,}")
# GPU-<uuid>, MIG-<uuid> and the older MIG-GPU-<uuid>/<gi>/<ci> of CUDA_VISIBLE_DEVICES.
_UUID = re.compile(
    r"^(?:MIG-)?(?:GPU-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?:/\d+)*$", re.IGNORECASE
)
_HEX = re.compile(r"^[0-9a-f]{32,}$", re.IGNORECASE)


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _high_entropy(token: str) -> bool:
    if token.startswith(("/", "~", ".")) or _UUID.match(token):
        return False  # paths and GPU/MIG UUIDs are facts, not secrets
    if _HEX.match(token):
        return True  # a long hex string is a digest or a key; either way not a setting
    classes = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    return classes == 3 and _entropy(token) >= 3.5


def name_looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def value_looks_secret(value: str) -> bool:
    """What ``core.redact`` finds in any text, or a long random string: a setting is never one."""
    return looks_secret(value) or any(_high_entropy(token) for token in _TOKEN.findall(value))


def is_allowed(name: str) -> bool:
    upper = name.upper()
    return upper in ALLOWED_NAMES or upper.startswith(tuple(ALLOWED_PREFIXES))


def redact_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Allowlisted variables, sorted by name, credentials replaced by ``<redacted>``.

    Only names are scanned; the value of a variable outside the allowlist is
    never read.
    """
    out: dict[str, str] = {}
    for name in sorted(name for name in environ if is_allowed(name)):
        value = str(environ[name])
        out[name] = REDACTED if name_looks_secret(name) or value_looks_secret(value) else value
    return out
