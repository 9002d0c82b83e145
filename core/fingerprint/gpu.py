"""GPU collector: NVML first, torch.cuda as fallback, plus what torch actually loaded.

NVML (the ``pynvml`` module of nvidia-ml-py) answers without creating a CUDA
context and knows the driver, MIG and ECC; it is read in a child process
(``core.fingerprint.nvml``) so a broken driver library cannot crash or hang
the capture. torch.cuda adds the multiprocessor count and is the only source
on ROCm or when NVML is missing (reading device properties initializes CUDA
in this process, as the capture does anyway). Both
come in as parameters so tests can fake a 2xA100 node, a MIG slice or a
missing driver.

NVML lists every GPU the driver has; ``CUDA_VISIBLE_DEVICES`` (kept under
``env``) says which of them torch uses. SM counts are matched to NVML's
devices by UUID, else by position when both list as many devices.

The CUDA runtime and cuDNN recorded are the ones torch uses
(``torch.version.cuda``, ``torch.backends.cudnn.version()``); the system's
``nvcc`` and cuDNN files, which collect_env reports instead (pytorch#21399,
#78489), are recorded next to them and a mismatch is flagged.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
from collections.abc import Callable, Sequence
from typing import Any

from driftboard.core.fingerprint._probe import guarded, is_error, read_text, run
from driftboard.core.fingerprint.nvml import nvml_facts, nvml_facts_once
from driftboard.core.fingerprint.versions import cudnn_version

SystemVersions = Callable[[], tuple[str | None, str | None]]


def collect_gpu(
    *,
    nvml: Any = None,
    cuda: Any = None,
    torch: Any = None,
    system: SystemVersions | None = None,
) -> dict[str, Any]:
    """The ``gpu`` section.

    ``nvml``: a pynvml-like module read in this process (default: pynvml, read
    in a child process, ``core.fingerprint.nvml``); ``cuda``: a
    torch.cuda-like module (default: ``torch.cuda``); ``torch``: the module
    whose ``version``, ``backends`` and ``xpu`` are read; ``system``: returns
    the system (nvcc, cuDNN) versions.
    """
    if torch is None:
        import torch
    cuda = torch.cuda if cuda is None else cuda
    from_nvml = guarded(nvml_facts_once) if nvml is None else guarded(nvml_facts, nvml)
    from_torch = guarded(torch_cuda_facts, cuda)
    torch_devices = [] if is_error(from_torch) else from_torch["devices"]
    cuda_available = from_torch if is_error(from_torch) else from_torch["available"]

    if not is_error(from_nvml):
        source, devices = "nvml", _with_multiprocessors(from_nvml["devices"], torch_devices)
        driver, cuda_driver = from_nvml["driver"], from_nvml["cuda_driver"]
    elif torch_devices:
        source, devices, driver, cuda_driver = "torch.cuda", torch_devices, None, None
    else:
        source, devices, driver, cuda_driver = "none", [], None, None

    built_cuda = getattr(torch.version, "cuda", None)
    built_hip = getattr(torch.version, "hip", None)
    usable = cuda_available is True
    out: dict[str, Any] = {
        "source": source,
        "count": len(devices),
        "devices": devices,
        "driver": driver,
        "cuda_driver": cuda_driver,
        "nvml": from_nvml if is_error(from_nvml) else from_nvml["version"],
        "cuda_available": cuda_available,
        "cuda_runtime": built_cuda if usable else None,
        "cudnn": guarded(_cudnn, torch) if built_cuda or built_hip else None,
        "nccl": guarded(_nccl, cuda) if (built_cuda or built_hip) and usable else None,
        "rocm": built_hip if usable and built_hip else None,
        "mps": guarded(_mps, torch),
        "xpu": guarded(_xpu, torch),
    }
    system_cuda, system_cudnn = _system(system)
    out["system_cuda"] = system_cuda
    out["system_cudnn"] = system_cudnn
    out["system_mismatch"] = system_mismatch(out)
    return out


# --- torch.cuda


def torch_cuda_facts(cuda: Any) -> dict[str, Any]:
    available = bool(cuda.is_available())
    devices = [_torch_device(cuda.get_device_properties(i)) for i in range(cuda.device_count())] if available else []
    return {"available": available, "devices": devices}


def _torch_device(props: Any) -> dict[str, Any]:
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_mb": int(props.total_memory) // 2**20,
        "uuid": _prefixed_uuid(getattr(props, "uuid", None)),
        "multiprocessors": getattr(props, "multi_processor_count", None),
        "mig": None,  # torch.cuda does not say; NVML does
        "ecc": None,
    }


def _prefixed_uuid(uuid: Any) -> str | None:
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _bare_uuid(uuid: Any) -> str | None:
    return str(uuid).lower().removeprefix("mig-").removeprefix("gpu-") if isinstance(uuid, str) else None


def _with_multiprocessors(devices: list[dict[str, Any]], torch_devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NVML devices with torch's SM counts, matched by UUID, else by position when the counts agree."""
    by_uuid = {_bare_uuid(d["uuid"]): d for d in torch_devices if d.get("uuid")}
    positional = len(devices) == len(torch_devices)
    out = []
    for i, device in enumerate(devices):
        match = by_uuid.get(_bare_uuid(device["uuid"])) or (torch_devices[i] if positional else None)
        out.append({**device, "multiprocessors": match["multiprocessors"] if match else None})
    return out


# --- what torch loaded


def _cudnn(torch: Any) -> int | None:
    # torch's integer form (90100), as the collect_env importer records it too.
    value = torch.backends.cudnn.version()
    return int(value) if value else None


def _nccl(cuda: Any) -> str | None:
    nccl = getattr(cuda, "nccl", None)
    if nccl is None:
        import torch.cuda.nccl as nccl
    return ".".join(str(part) for part in nccl.version())


def _mps(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def _xpu(torch: Any) -> bool:
    xpu = getattr(torch, "xpu", None)
    return bool(xpu and xpu.is_available())


# --- the system's CUDA, as collect_env sees it


def _system(system: SystemVersions | None) -> tuple[Any, Any]:
    if system is not None:
        return system()
    return guarded(system_cuda), guarded(system_cudnn)


def system_cuda(which: Callable[[str], str | None] = shutil.which, runner: Callable[..., str] = run) -> str | None:
    """Release of the ``nvcc`` on PATH (the "CUDA runtime" collect_env prints), or None."""
    nvcc = which("nvcc")
    if nvcc is None:
        return None
    match = re.search(r"release (\d+\.\d+)", runner([nvcc, "--version"]))
    return match.group(1) if match else None


_LIB_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/lib",
)


def system_cudnn(dirs: Sequence[str] | None = None) -> str | None:
    """Newest ``libcudnn.so.X.Y.Z`` in the loader's directories (what ``ldconfig -p`` would list), or None.

    Reads /etc/ld.so.conf.d instead of running ldconfig.
    """
    if dirs is None:
        dirs = [*_LIB_DIRS, *_ld_conf_dirs()]
    best: tuple[int, ...] | None = None
    for directory in dict.fromkeys(dirs):
        for path in glob.glob(os.path.join(directory, "libcudnn.so.*")):
            match = re.search(r"libcudnn\.so\.(\d+(?:\.\d+)*)$", path)
            if match:
                version = tuple(int(p) for p in match.group(1).split("."))
                best = max(best or version, version)
    return ".".join(str(p) for p in best) if best else None


def _ld_conf_dirs() -> list[str]:
    dirs: list[str] = []
    for conf in sorted(glob.glob("/etc/ld.so.conf.d/*.conf")):
        dirs += [line.strip() for line in (read_text(conf) or "").splitlines() if line.startswith("/")]
    return dirs


def _major_minor(version: Any) -> str | None:
    if isinstance(version, int) and not isinstance(version, bool):
        version = cudnn_version(version)
    if not isinstance(version, str):
        return None
    return ".".join(version.split(".")[:2])


def system_mismatch(gpu: dict[str, Any]) -> bool:
    """True when a system CUDA or cuDNN was found and differs from the one torch uses (or torch uses none)."""
    pairs = (("system_cuda", "cuda_runtime"), ("system_cudnn", "cudnn"))
    return any(
        isinstance(gpu.get(system), str) and _major_minor(gpu.get(system)) != _major_minor(gpu.get(used))
        for system, used in pairs
    )
