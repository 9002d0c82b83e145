"""The one list of fingerprint fields.

A fingerprint is a nested JSON-ready dict; its leaves are addressed by dotted
keys (``torch.version``, ``gpu.devices[0].name``). This registry says, for each
key pattern, what it means and whether it can change the numbers a model
computes. Capture, the environment diff, the database columns and the
``collect_env`` importer all use these keys, so they stay in agreement.

A pattern may use ``[*]`` for a list index and ``*`` as the last part for any
child key (``env.*``). Keys not matched by any pattern are informational.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

FINGERPRINT_VERSION = 1


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    numerics: bool
    description: str


def _f(key: str, label: str, numerics: bool, description: str) -> Field:
    return Field(key, label, numerics, description)


# Order matters: the environment diff lists numerics-relevant fields in this
# order, most likely cause of drift first.
FIELDS: tuple[Field, ...] = (
    # --- torch and its build
    _f("torch.version", "torch", True, "torch.__version__"),
    _f("torch.git_version", "torch git", True, "torch.version.git_version"),
    _f("torch.debug", "torch debug build", True, "torch.version.debug"),
    _f("torch.cuda", "torch built with CUDA", True, "torch.version.cuda"),
    _f("torch.hip", "torch built with HIP", True, "torch.version.hip"),
    _f("torch.xpu", "torch built with XPU", False, "torch.version.xpu (SYCL compiler version), from collect_env"),
    _f("torch.cxx11_abi", "C++11 ABI", False, "torch._C._GLIBCXX_USE_CXX11_ABI"),
    _f("torch.cpu_capability", "ATen CPU capability", True, "kernels ATen dispatches to"),
    _f("torch.blas", "BLAS", True, "BLAS named in torch.__config__.show()"),
    _f("torch.lapack", "LAPACK", True, "LAPACK named in torch.__config__.show()"),
    _f("torch.mkl", "MKL", True, "MKL version torch was built with"),
    _f("torch.mkldnn", "oneDNN", True, "oneDNN (MKL-DNN) version torch was built with"),
    _f("torch.openmp", "OpenMP", True, "OpenMP torch was built with"),
    _f("torch.xnnpack", "XNNPACK", False, "torch.backends.xnnpack.enabled, from collect_env"),
    _f("torch.parallel_backend", "ATen parallel backend", True, "from torch.__config__.parallel_info()"),
    _f("torch.build_settings.*", "torch build setting", True, "Build settings line of torch.__config__.show()"),
    _f("torch.config", "torch build config", False, "raw torch.__config__.show() text"),
    _f("torch.parallel_info", "torch parallel info", False, "raw torch.__config__.parallel_info() text"),
    # --- GPU stack
    _f("gpu.count", "GPU count", True, "visible GPUs"),
    _f("gpu.devices[*].name", "GPU model", True, "device name"),
    _f("gpu.devices[*].compute_capability", "compute capability", True, "major.minor"),
    _f("gpu.devices[*].arch", "GPU architecture", False, "gcnArchName of a ROCm device, from collect_env"),
    _f("gpu.devices[*].multiprocessors", "multiprocessors", True, "SM count"),
    _f("gpu.devices[*].mig", "MIG mode", True, "MIG enabled"),
    _f("gpu.devices[*].mig_devices", "MIG devices", False, "MIG profiles (nvidia-smi -L), from collect_env"),
    _f("gpu.devices[*].ecc", "ECC", False, "ECC enabled"),
    _f("gpu.devices[*].memory_mb", "GPU memory (MB)", False, "total memory"),
    _f("gpu.devices[*].uuid", "GPU UUID", False, "device UUID"),
    _f("gpu.driver", "NVIDIA driver", True, "driver version (NVML)"),
    _f("gpu.cuda_driver", "CUDA driver API", True, "CUDA version the driver supports"),
    _f("gpu.cuda_runtime", "CUDA runtime", True, "CUDA runtime torch loaded"),
    _f("gpu.cudnn", "cuDNN", True, "torch.backends.cudnn.version()"),
    _f("gpu.nccl", "NCCL", True, "torch.cuda.nccl.version()"),
    _f("gpu.rocm", "ROCm", True, "ROCm runtime"),
    _f("gpu.miopen", "MIOpen", False, "MIOpen runtime version, from collect_env"),
    _f("gpu.mps", "MPS available", True, "Apple Metal backend"),
    _f("gpu.xpu", "XPU available", True, "Intel XPU backend"),
    _f("gpu.xpu_driver.*", "Intel GPU driver", False, "Intel GPU driver packages, from collect_env"),
    _f("gpu.system_cuda", "system CUDA (nvcc)", False, "nvcc on PATH, as collect_env reports it"),
    _f("gpu.system_cudnn", "system cuDNN", False, "cuDNN found by the loader, as collect_env reports it"),
    _f("gpu.source", "GPU facts read from", False, "nvml, torch.cuda or none"),
    # --- CPU
    _f("cpu.vendor", "CPU vendor", True, "GenuineIntel, AuthenticAMD, ARM, Apple"),
    _f("cpu.model", "CPU model", True, "model name"),
    _f("cpu.family", "CPU family", True, "family number"),
    _f("cpu.model_number", "CPU model number", True, "model number"),
    _f("cpu.stepping", "CPU stepping", False, "stepping"),
    _f("cpu.isa.*", "instruction set", True, "numerics-relevant instruction sets present"),
    _f("cpu.arch", "CPU architecture", True, "x86_64, aarch64, arm64"),
    _f("cpu.cores", "CPU cores", False, "physical cores"),
    _f("cpu.threads", "CPU threads", False, "logical CPUs"),
    # --- numerics settings in force
    _f("numerics.intra_op_threads", "intra-op threads", True, "torch.get_num_threads()"),
    _f("numerics.inter_op_threads", "inter-op threads", True, "torch.get_num_interop_threads()"),
    _f("numerics.deterministic_algorithms", "deterministic algorithms", True, "torch.are_deterministic_algorithms_enabled()"),
    _f("numerics.deterministic_warn_only", "deterministic warn-only", False, "warn instead of error"),
    _f("numerics.mkldnn_enabled", "oneDNN enabled", True, "torch.backends.mkldnn.enabled"),
    _f("numerics.cudnn_enabled", "cuDNN enabled", True, "torch.backends.cudnn.enabled"),
    _f("numerics.cudnn_deterministic", "cuDNN deterministic", True, "torch.backends.cudnn.deterministic"),
    _f("numerics.cudnn_benchmark", "cuDNN benchmark", True, "torch.backends.cudnn.benchmark"),
    _f("numerics.cudnn_allow_tf32", "cuDNN TF32", True, "torch.backends.cudnn.allow_tf32"),
    _f("numerics.matmul_allow_tf32", "matmul TF32", True, "torch.backends.cuda.matmul.allow_tf32"),
    _f("numerics.matmul_fp16_reduced", "fp16 reduced-precision reductions", True, "allow_fp16_reduced_precision_reduction"),
    _f("numerics.matmul_bf16_reduced", "bf16 reduced-precision reductions", True, "allow_bf16_reduced_precision_reduction"),
    _f("numerics.float32_matmul_precision", "float32 matmul precision", True, "torch.get_float32_matmul_precision()"),
    _f("numerics.fp32_precision.*", "fp32 precision", True, "fp32_precision settings of newer torch"),
    _f("numerics.default_dtype", "default dtype", True, "torch.get_default_dtype()"),
    _f("numerics.flush_denormal", "flush denormals", True, "whether denormals are flushed to zero"),
    # --- environment variables (allowlisted, redacted)
    _f("env.*", "environment variable", True, "allowlisted variable that changes numerics"),
    # --- numpy and packages
    _f("numpy.version", "numpy", True, "numpy.__version__"),
    _f("numpy.blas", "numpy BLAS", True, "BLAS numpy was built with"),
    _f("packages.*", "package", True, "installed version of a numerics-relevant package"),
    # --- Python
    _f("python.version", "Python", True, "platform.python_version()"),
    _f("python.implementation", "Python implementation", True, "CPython, PyPy"),
    _f("python.compiler", "Python compiler", False, "compiler Python was built with"),
    _f("python.executable", "Python executable", False, "sys.executable"),
    # --- OS
    _f("os.system", "OS", True, "Linux, Darwin, Windows"),
    _f("os.libc", "libc", True, "C library and version"),
    _f("os.release", "kernel", False, "kernel release"),
    _f("os.distro", "distribution", False, "OS distribution name"),
    _f("os.version", "OS version", False, "kernel or OS version string"),
    _f("os.machine", "machine type", False, "platform.machine()"),
    _f("os.container", "container", False, "docker, podman, kubernetes or none"),
    _f("os.wsl", "WSL", False, "running under Windows Subsystem for Linux"),
    # --- identity (never numerics)
    _f("identity.hostname", "hostname", False, "host name, or its hash with --anonymize"),
    _f("identity.machine_id", "machine id", False, "sha256 of the OS machine id"),
    _f("identity.user", "user", False, "user name, or its hash with --anonymize"),
    _f("identity.label", "label", False, "label given at capture"),
    _f("identity.tags", "tags", False, "tags given at capture"),
    _f("identity.note", "note", False, "note given at capture"),
    _f("identity.anonymized", "anonymized", False, "hostname and user replaced by hashes"),
    # --- appended with the fingerprint collectors (issue 2)
    _f("fingerprint_version", "fingerprint version", False, "version of this field list"),
    _f("gpu.cuda_available", "CUDA usable by torch", True, "torch.cuda.is_available()"),
    _f("numerics.matmul_fp16_accumulation", "fp16 matmul accumulation", True, "allow_fp16_accumulation"),
    _f("numerics.mkldnn_deterministic", "oneDNN deterministic", True, "torch.backends.mkldnn.deterministic"),
    _f("numerics.preferred_blas_library", "preferred GPU BLAS", True, "torch.backends.cuda.preferred_blas_library()"),
    _f("numerics.preferred_linalg_library", "preferred GPU linalg", True, "preferred_linalg_library()"),
    _f("gpu.nvml", "NVML version", False, "NVML library version, or why NVML could not be read"),
    _f("gpu.system_mismatch", "system CUDA/cuDNN mismatch", False, "nvcc or system cuDNN differs from what torch uses"),
    _f("gpu.devices", "GPU devices", False, "the device list; a key of its own only when it is empty"),
    _f("torch.libraries", "loaded numerics libraries", False, "BLAS/OpenMP/CUDA libraries mapped into the process"),
    _f("env", "environment variables", False, "the allowlisted variables; a key of its own only when none is set"),
)

_INDEX = re.compile(r"\[\d+\]")


def _pattern_of(key: str) -> str:
    return _INDEX.sub("[*]", key)


@lru_cache(maxsize=4096)
def field_for(key: str) -> Field | None:
    """The registry entry describing a dotted key, or None when unregistered."""
    pattern = _pattern_of(key)
    for field in FIELDS:
        if field.key == pattern:
            return field
        if field.key.endswith(".*") and pattern.startswith(field.key[:-1]):
            return field
    return None


def is_numerics(key: str) -> bool:
    field = field_for(key)
    return bool(field and field.numerics)


def rank(key: str) -> int:
    """Position of a key's field in the registry; unregistered keys sort last."""
    field = field_for(key)
    return FIELDS.index(field) if field else len(FIELDS)


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """Dotted-key view of a nested fingerprint (lists indexed as ``[i]``)."""
    out: dict[str, object] = {}
    if isinstance(tree, dict):
        if not tree and prefix:
            out[prefix] = {}
        for name, value in tree.items():
            out.update(flatten(value, f"{prefix}.{name}" if prefix else str(name)))
    elif isinstance(tree, list) and any(isinstance(v, (dict, list)) for v in tree):
        for i, value in enumerate(tree):
            out.update(flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = tree
    return out
