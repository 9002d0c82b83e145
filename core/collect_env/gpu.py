"""GPU facts: the device list (nvidia-smi, MIG, ROCm/macOS single name, Intel XPU), driver, system CUDA and cuDNN."""

from __future__ import annotations

import re
from typing import Any

from driftboard.core.collect_env import values
from driftboard.core.collect_env.scan import CUDNN, GPU, GPU_LINE, MIG, XPU, Line
from driftboard.core.collect_env.tree import Tree

_GCN = re.compile(r"^(.*?)\s*\((gfx[0-9a-f]+[^)]*)\)$")
_XPU_DEVICE = re.compile(r"name='([^']*)'")
_XPU_MEMORY = re.compile(r"total_memory=(\d+)MB")
_DRIVER_ITEM = re.compile(r"^(.+?):\s*(\S.*)$")


def build_devices(tree: Tree, header: Line | None, block: list[Line], cuda_available: bool | None) -> None:
    """``gpu.devices`` and ``gpu.count`` from "GPU models and configuration"."""
    if header is None:
        return
    gpus = [line for line in block if line.kind == GPU]
    one = GPU_LINE.match(header.value)
    if one:  # "GPU models and configuration: GPU 0: Quadro RTX 6000"
        gpus.insert(0, Line(header.index, header.text, GPU, one.group(1), one.group(2).strip()))
    if gpus:
        _nvidia_smi(tree, header, gpus, [line for line in block if line.kind == MIG])
        return
    name = values.text(header.value)
    if name:
        _single(tree, header, name)
    elif header.value.strip().lower() == "no cuda" or cuda_available is False:
        # "No CUDA": torch sees no CUDA device and nvidia-smi found none. "Could not collect"
        # beside "Is CUDA available: False": nvidia-smi failed and torch sees none, where
        # capture, NVML failing too, counts 0 GPUs as well.
        tree.set("gpu.count", 0, header.index)
        tree.set("gpu.devices", [], header.index)
        tree.set("gpu.source", "none", header.index)
    else:
        tree.set("gpu.count", None, header.index)  # torch sees GPUs nvidia-smi could not list


def _nvidia_smi(tree: Tree, header: Line, gpus: list[Line], migs: list[Line]) -> None:
    """``nvidia-smi -L``: one ``GPU i: NAME`` per physical GPU, its ``MIG <profile> Device j:`` lines under it."""
    for i, gpu in enumerate(gpus):
        lines = (header.index, gpu.index) if i == 0 else (gpu.index,)
        tree.set(f"gpu.devices[{i}].name", gpu.value, *lines)
        after = gpus[i + 1].index if i + 1 < len(gpus) else None
        mine = [m for m in migs if m.index > gpu.index and (after is None or m.index < after)]
        if mine:
            tree.set(f"gpu.devices[{i}].mig", True, *(m.index for m in mine))
            tree.set(f"gpu.devices[{i}].mig_devices", [m.key for m in mine], *(m.index for m in mine))
    tree.set("gpu.count", len(gpus), header.index, *(g.index for g in gpus))
    tree.set("gpu.source", "nvidia-smi", header.index)


def _single(tree: Tree, header: Line, name: str) -> None:
    """One name from ``torch.cuda.get_device_name()``: ROCm builds (with the gfx arch) and CUDA on macOS.

    That name is the current device only, so the number of GPUs is unknown.
    """
    name = name.replace("NoGCNArchNameOnOldPyTorch", "").strip()
    m = _GCN.match(name)
    if m:
        name = m.group(1)
        tree.set("gpu.devices[0].arch", m.group(2), header.index)
        capability = gfx_capability(m.group(2))
        if capability:
            tree.set("gpu.devices[0].compute_capability", capability, header.index)
    tree.set("gpu.devices[0].name", name, header.index)
    tree.set("gpu.count", None, header.index)
    tree.set("gpu.source", "torch.cuda", header.index)


def gfx_capability(arch: str) -> str | None:
    """The major.minor torch reports for a ROCm gfx target: gfx90a -> 9.0, gfx942 -> 9.4, gfx1100 -> 11.0."""
    m = re.match(r"gfx(\d+)([0-9a-f])[0-9a-f]", arch)
    return f"{int(m.group(1))}.{int(m.group(2), 16)}" if m else None


def build_cudnn(tree: Tree, header: Line | None, block: list[Line]) -> dict[str, list[str]]:
    """``gpu.system_cudnn``: the newest cuDNN ldconfig (or ``where``) lists, as capture records it; not torch's."""
    if header is None:
        return {}
    files = [line.value for line in block if line.kind == CUDNN]
    value = header.value.strip()
    if not value.lower().startswith("probably one of the following") and values.text(value) is not None:
        files.insert(0, value)  # one file: "cuDNN version: /usr/lib/x86_64-linux-gnu/libcudnn.so.7.6.5"
    versions = values.cudnn_versions(files)
    tree.set("gpu.system_cudnn", versions[-1] if versions else None, header.index, *(line.index for line in block))
    return {"cudnn_files": files, "cudnn_versions": versions}


def build_xpu(tree: Tree, blocks: dict[str, list[Line]], has_devices: bool) -> dict[str, Any]:
    """Intel GPU driver packages and devices printed under ``Is XPU available: True``; returns what stays raw."""
    for line in blocks.get("xpu_driver", []):
        m = _DRIVER_ITEM.match(line.value)
        if m:  # Linux: "* intel-opencl-icd:\t25.18.33578.6-1146~24.04"
            tree.set(f"gpu.xpu_driver.{_key(m.group(1))}", m.group(2).strip(), line.index)
        elif line.value:  # Windows, one device: "* 32.0.101.6129 (20241011000000.000000-000)"
            tree.set("gpu.xpu_driver.driver", line.value, line.index)
    detected = [line for line in blocks.get("xpu_detected", []) if line.value]
    if detected and not has_devices:
        for i, line in enumerate(detected):
            name = _XPU_DEVICE.search(line.value)
            tree.set(f"gpu.devices[{i}].name", name.group(1) if name else line.value, line.index)
            memory = _XPU_MEMORY.search(line.value)
            if memory:
                tree.set(f"gpu.devices[{i}].memory_mb", int(memory.group(1)), line.index)
        tree.set("gpu.count", len(detected), *(line.index for line in detected))
        tree.set("gpu.source", "torch.xpu", *(line.index for line in detected))
    onboard = [line.value for line in blocks.get("xpu_onboard", []) if line.value]
    return {"xpu_onboard": onboard} if onboard else {}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "driver"


def xpu_blocks(lines: list[Line]) -> dict[str, list[Line]]:
    out: dict[str, list[Line]] = {}
    for line in lines:
        if line.kind == XPU:
            out.setdefault(line.key, []).append(line)
    return out
