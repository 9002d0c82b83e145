"""A fingerprint's key facts as short lines, for terminals and reports (no rich, no torch)."""

from __future__ import annotations

from functools import partial
from typing import Any

from driftboard.core import fields
from driftboard.core.fingerprint._probe import is_error
from driftboard.core.fingerprint.digest import is_error_key
from driftboard.core.fingerprint.versions import cudnn_version


def _get(fp: dict[str, Any], dotted: str) -> Any:
    node: Any = fp
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _show(value: Any) -> str:
    if is_error(value):
        return "error"
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _join(*parts: str | None) -> str:
    return " · ".join(p for p in parts if p)


def errors(fp: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted key, message) of every collector or field that failed, expected ones left out."""
    out = []
    for key, value in fields.flatten(fp).items():
        if is_error_key(key) and not _expected(fp, key):
            out.append((key.removesuffix(".error"), str(value)))
    return out


def _expected(fp: dict[str, Any], key: str) -> bool:
    # No NVML on a machine where torch sees no GPU either: that is the normal CPU-only case.
    return key == "gpu.nvml.error" and _get(fp, "gpu.count") == 0 and _get(fp, "gpu.cuda_available") is not True


def _section(fp: dict[str, Any], name: str) -> str | None:
    value = fp.get(name)
    return "collector failed" if is_error(value) else None


def lines(fp: dict[str, Any]) -> list[tuple[str, str]]:
    """(section, one line of its key facts), in reading order."""
    builders = (
        ("OS", "os", _os_line),
        ("Python", "python", _python_line),
        ("torch", "torch", _torch_line),
        ("numpy", "numpy", _numpy_line),
        ("CPU", "cpu", _cpu_line),
        ("ISA", "cpu", _isa_line),
        ("GPU", "gpu", _gpu_line),
        ("numerics", "numerics", _numerics_line),
        ("env", "env", _env_line),
        ("identity", "identity", _identity_line),
    )
    return [(title, _section(fp, name) or build(fp)) for title, name, build in builders]


def _os_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    return _join(
        f"{_show(g('os.system'))} {_show(g('os.release'))}",
        _show(g("os.distro")),
        _show(g("os.libc")),
        f"container {_show(g('os.container'))}",
        "WSL" if g("os.wsl") is True else None,
    )


def _python_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    return f"{_show(g('python.implementation'))} {_show(g('python.version'))} ({_show(g('python.executable'))})"


def _torch_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    return _join(
        f"{_show(g('torch.version'))} (git {str(g('torch.git_version') or '-')[:8]})",
        f"CUDA {_show(g('torch.cuda'))}" if g("torch.cuda") else None,
        f"HIP {_show(g('torch.hip'))}" if g("torch.hip") else None,
        f"CPU capability {_show(g('torch.cpu_capability'))}",
        f"BLAS {_show(g('torch.blas'))}",
        f"oneDNN {_show(g('torch.mkldnn'))}",
        f"OpenMP {_show(g('torch.openmp'))}",
        f"parallel {_show(g('torch.parallel_backend'))}",
    )


def _numpy_line(fp: dict[str, Any]) -> str:
    return _join(_show(_get(fp, "numpy.version")), f"BLAS {_show(_get(fp, 'numpy.blas'))}")


def _cpu_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    ident = f"family {_show(g('cpu.family'))} model {_show(g('cpu.model_number'))} stepping {_show(g('cpu.stepping'))}"
    return _join(
        f"{_show(g('cpu.vendor'))} {_show(g('cpu.model'))} ({ident})",
        f"{_show(g('cpu.cores'))} cores / {_show(g('cpu.threads'))} threads",
        _show(g("cpu.arch")),
    )


def _isa_line(fp: dict[str, Any]) -> str:
    isa = _get(fp, "cpu.isa")
    if not isinstance(isa, dict) or is_error(isa):
        return _show(isa)
    return " ".join(name for name, present in isa.items() if present is True) or "none of those tracked"


def _identity_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    return _join(
        _show(g("identity.hostname")),
        f"user {_show(g('identity.user'))}",
        f"machine {str(g('identity.machine_id'))[:12]}",
        f"label {g('identity.label')}" if g("identity.label") else None,
        f"tags {', '.join(g('identity.tags'))}" if g("identity.tags") else None,
        "anonymized" if g("identity.anonymized") else None,
    )


def _gpu_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp)
    devices = g("gpu.devices") or []
    names = ", ".join(
        f"{d.get('name')} (sm {d.get('compute_capability')}{', MIG' if d.get('mig') is True else ''})"
        for d in devices
        if isinstance(d, dict)
    )
    system = None
    if g("gpu.system_mismatch"):
        system = (
            f"system nvcc {_show(g('gpu.system_cuda'))} / cuDNN {_show(g('gpu.system_cudnn'))} but torch uses "
            f"CUDA {_show(g('gpu.cuda_runtime'))} / cuDNN {_cudnn(g('gpu.cudnn'))} (collect_env reports the system's)"
        )
    return _join(
        names or "no GPU visible",
        f"via {g('gpu.source')}" if names else None,
        f"driver {_show(g('gpu.driver'))} (CUDA {_show(g('gpu.cuda_driver'))})" if g("gpu.driver") else None,
        f"runtime CUDA {_show(g('gpu.cuda_runtime'))}, cuDNN {_cudnn(g('gpu.cudnn'))}, NCCL {_show(g('gpu.nccl'))}"
        if g("gpu.cuda_available") is True
        else None,
        f"ROCm {g('gpu.rocm')}" if g("gpu.rocm") else None,
        "MPS" if g("gpu.mps") is True else None,
        "XPU" if g("gpu.xpu") is True else None,
        system,
    )


def _cudnn(value: Any) -> str:
    return cudnn_version(value) if isinstance(value, int) and not isinstance(value, bool) else _show(value)


def _numerics_line(fp: dict[str, Any]) -> str:
    g = partial(_get, fp.get("numerics") or {})
    fp32 = g("fp32_precision")
    fp32_text = ""
    if isinstance(fp32, dict) and not is_error(fp32):
        fp32_text = ",".join(f"{k}={v}" for k, v in fp32.items() if v not in ("none", None))
    return _join(
        f"threads {_show(g('intra_op_threads'))}/{_show(g('inter_op_threads'))}",
        f"deterministic {_show(g('deterministic_algorithms'))}",
        f"oneDNN {_show(g('mkldnn_enabled'))}",
        f"TF32 matmul {_show(g('matmul_allow_tf32'))} cuDNN {_show(g('cudnn_allow_tf32'))}",
        f"fp32 matmul {_show(g('float32_matmul_precision'))}",
        f"fp32_precision {fp32_text}" if fp32_text else None,
        f"dtype {_show(g('default_dtype'))}",
        f"flush denormal {_show(g('flush_denormal'))}",
    )


def _env_line(fp: dict[str, Any]) -> str:
    env = fp.get("env")
    if not env:
        return "no allowlisted variable set"
    return " ".join(f"{k}={v}" for k, v in env.items())
