"""torch build, numerics settings in force, and numpy collectors.

torch is imported inside the collectors only: importing this module never
loads it. Every flag is read with ``getattr`` so an older torch without it
reports None instead of failing, and a flag whose read raises records an
error for that field alone.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

from driftboard.core.fingerprint._probe import error, guarded, is_error

_MISSING = object()


def _torch() -> Any:
    import torch

    return torch


# --- torch build


def collect_torch(torch: Any = None) -> dict[str, Any]:
    torch = torch or _torch()
    version = torch.version
    config = guarded(torch.__config__.show)
    parallel = guarded(torch.__config__.parallel_info)
    parsed = guarded(parse_config, config) if isinstance(config, str) else config
    return {
        "version": torch.__version__,
        "git_version": getattr(version, "git_version", None),
        "debug": bool(getattr(version, "debug", False)),
        "cuda": getattr(version, "cuda", None),
        "hip": getattr(version, "hip", None),
        "cxx11_abi": guarded(lambda: bool(torch._C._GLIBCXX_USE_CXX11_ABI)),
        "cpu_capability": guarded(_cpu_capability, torch, parsed),
        **{key: _part(parsed, key) for key in ("blas", "lapack", "mkl", "mkldnn", "openmp", "build_settings")},
        "parallel_backend": guarded(parse_parallel_backend, parallel) if isinstance(parallel, str) else parallel,
        "config": config,
        "parallel_info": parallel,
        "libraries": guarded(loaded_libraries),
    }


def _part(parsed: dict[str, Any], key: str) -> Any:
    return parsed if is_error(parsed) else parsed.get(key)


def _cpu_capability(torch: Any, parsed: dict[str, Any]) -> str | None:
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    if get is not None:
        return str(get())
    return None if is_error(parsed) else parsed.get("cpu_capability")


_MKL = re.compile(r"Math Kernel Library Version ([\d.]+)(?:\D+Build (\d+))?")
_MKLDNN = re.compile(r"MKL-DNN v([\w.]+)(?: \(Git Hash (\w+)\))?")
_OPENMP = re.compile(r"OpenMP (\d+)(?: \(a\.k\.a\. OpenMP ([\d.]+)\))?")
_CAPABILITY = re.compile(r"CPU capability usage: (\S+)")
_SETTING = re.compile(r", (?=[A-Z][A-Z0-9_]*=)")


def parse_config(text: str) -> dict[str, Any]:
    """BLAS, LAPACK, MKL, oneDNN, OpenMP and build settings from ``torch.__config__.show()``."""
    settings = parse_build_settings(text)
    mkl, mkldnn, openmp, capability = (p.search(text) for p in (_MKL, _MKLDNN, _OPENMP, _CAPABILITY))
    lapack = settings.get("LAPACK_INFO")
    if lapack is None and "LAPACK is enabled" in text:
        lapack = "enabled"
    return {
        "blas": settings.get("BLAS_INFO"),
        "lapack": lapack,
        "mkl": _joined(mkl.group(1), mkl.group(2) and f"build {mkl.group(2)}") if mkl else None,
        "mkldnn": _joined(mkldnn.group(1), mkldnn.group(2) and f"git {mkldnn.group(2)[:12]}") if mkldnn else None,
        "openmp": _joined(openmp.group(2), openmp.group(1)) if openmp else None,
        "cpu_capability": capability.group(1) if capability else None,
        "build_settings": settings,
    }


def _joined(main: str | None, extra: str | None) -> str | None:
    if main and extra:
        return f"{main} ({extra})"
    return main or extra


def parse_build_settings(text: str) -> dict[str, str]:
    """The ``Build settings: K=V, ...`` line as a dict, or ``{"error": ...}`` when there is none."""
    for line in text.splitlines():
        line = line.strip().removeprefix("- ")
        if line.startswith("Build settings:"):
            body = line[len("Build settings:") :].strip().rstrip(",")
            pairs = (item.partition("=") for item in _SETTING.split(body) if item.strip())
            return {key.strip(): value.strip() for key, _, value in pairs}
    return {"error": "ValueError: torch.__config__.show() has no 'Build settings' line"}


def parse_parallel_backend(text: str) -> str | None:
    match = re.search(r"ATen parallel backend: (.+)", text)
    return match.group(1).strip() if match else None


# The numerics libraries actually mapped into this process: what torch and numpy
# loaded, not what the system's loader would find (collect_env's cuDNN is the
# latter, pytorch#78489).
_NUMERICS_LIB = re.compile(
    r"lib(?:gomp|iomp5|omp|mkl_\w+|\w*openblas\w*|blas|lapack|cblas|flexiblas|blis|tbb|dnnl|sleef|arm_compute\w*"
    r"|cublas\w*|cudnn\w*|nccl|rccl|cudart|nvrtc|cufft\w*|cusolver\w*|cusparse\w*|curand|nvJitLink"
    r"|hipblas\w*|rocblas|MIOpen|amdhip64)[-.]"
)


def loaded_libraries(maps: Path = Path("/proc/self/maps")) -> list[str] | None:
    """Basenames of BLAS/OpenMP/CUDA libraries mapped into the process (Linux only, else None)."""
    if not sys.platform.startswith("linux"):
        return None
    names = {line.rsplit("/", 1)[-1] for line in maps.read_text().splitlines() if "/" in line}
    return sorted(name for name in names if _NUMERICS_LIB.match(name))


# --- numerics settings in force

# Legacy flags: (field, dotted attribute under torch.backends).
_BACKEND_FLAGS = (
    ("mkldnn_enabled", "mkldnn.enabled"),
    ("mkldnn_deterministic", "mkldnn.deterministic"),
    ("cudnn_enabled", "cudnn.enabled"),
    ("cudnn_deterministic", "cudnn.deterministic"),
    ("cudnn_benchmark", "cudnn.benchmark"),
    ("cudnn_allow_tf32", "cudnn.allow_tf32"),
    ("matmul_allow_tf32", "cuda.matmul.allow_tf32"),
    ("matmul_fp16_reduced", "cuda.matmul.allow_fp16_reduced_precision_reduction"),
    ("matmul_bf16_reduced", "cuda.matmul.allow_bf16_reduced_precision_reduction"),
    ("matmul_fp16_accumulation", "cuda.matmul.allow_fp16_accumulation"),
)

# The fp32_precision settings of torch >= 2.9 ("ieee", "tf32", "bf16", "none").
# cuDNN convolutions and RNNs still default to TF32 while matmul is "ieee", so
# a float32 LSTM on Ampere can run in TF32 when nn.Linear does not.
FP32_PRECISION = (
    ("generic", "fp32_precision"),
    ("cuda_matmul", "cuda.matmul.fp32_precision"),
    ("cudnn", "cudnn.fp32_precision"),
    ("cudnn_conv", "cudnn.conv.fp32_precision"),
    ("cudnn_rnn", "cudnn.rnn.fp32_precision"),
    ("mkldnn", "mkldnn.fp32_precision"),
    ("mkldnn_matmul", "mkldnn.matmul.fp32_precision"),
    ("mkldnn_conv", "mkldnn.conv.fp32_precision"),
    ("mkldnn_rnn", "mkldnn.rnn.fp32_precision"),
)


def _dotted(root: Any, path: str) -> Any:
    """``root.a.b.c``; ``_MISSING`` when this torch has no such attribute; ``{"error"}`` when reading raises."""
    try:
        value = root
        for part in path.split("."):
            value = getattr(value, part, _MISSING)
            if value is _MISSING:
                return _MISSING
        return value
    except Exception as exc:  # a property that raises is a failed field, not a failed section
        return error(exc)


def _plain(value: Any) -> Any:
    if value is _MISSING:
        return None
    if isinstance(value, (bool, int, float, str)) or value is None or is_error(value):
        return value
    return getattr(value, "name", None) or str(value)  # enums such as _BlasBackend.Cublas


def collect_numerics(torch: Any = None) -> dict[str, Any]:
    torch = torch or _torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # newer torch warns when the legacy TF32 flags are read
        out: dict[str, Any] = {
            "intra_op_threads": guarded(torch.get_num_threads),
            "inter_op_threads": guarded(torch.get_num_interop_threads),
            "deterministic_algorithms": guarded(torch.are_deterministic_algorithms_enabled),
            "deterministic_warn_only": _call(torch, "is_deterministic_algorithms_warn_only_enabled"),
        }
        out.update({field: _plain(_dotted(torch.backends, path)) for field, path in _BACKEND_FLAGS})
        out["float32_matmul_precision"] = _call(torch, "get_float32_matmul_precision")
        out["fp32_precision"] = {
            name: _plain(value)
            for name, path in FP32_PRECISION
            if (value := _dotted(torch.backends, path)) is not _MISSING
        }
        out["preferred_blas_library"] = _call(torch.backends.cuda, "preferred_blas_library")
        out["preferred_linalg_library"] = _call(torch.backends.cuda, "preferred_linalg_library")
        out["default_dtype"] = guarded(lambda: str(torch.get_default_dtype()).removeprefix("torch."))
        out["flush_denormal"] = guarded(flush_denormal, torch)
    return out


def _call(owner: Any, name: str) -> Any:
    fn = getattr(owner, name, None)
    if fn is None:
        return None
    try:
        return _plain(fn())
    except Exception as exc:  # recorded for this field; the others go on
        return error(exc)


def flush_denormal(torch: Any) -> bool:
    """Whether denormals are flushed to zero now; torch.set_flush_denormal has no getter."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 subnormal
    return bool((tiny * 1.0).item() == 0.0)


# --- numpy


def collect_numpy() -> dict[str, Any]:
    import numpy

    return {"version": numpy.__version__, "blas": guarded(numpy_blas, numpy)}


def numpy_blas(numpy: Any) -> str | None:
    try:
        config = numpy.show_config(mode="dicts")  # numpy >= 1.26
    except TypeError:
        legacy = getattr(numpy.__config__, "blas_ilp64_opt_info", None) or getattr(
            numpy.__config__, "blas_opt_info", {}
        )
        return ",".join(legacy.get("libraries", [])) or None
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return " ".join(str(part) for part in (blas.get("name"), blas.get("version")) if part) or None
