"""The labelled lines a ``collect_env`` report prints, and since which torch.

``name`` is the field of collect_env's own ``SystemEnv`` namedtuple (so the raw
values kept under ``fingerprint["collect_env"]["fields"]`` read like the
script's source). ``since`` is the first torch release whose report prints the
line; it lets ``missing`` tell a partial paste from an old format. ``None``
means the line is optional (printed only on some machines, or by a fork of the
script), so its absence is never reported. ``block`` names the sub-block the
label opens: the lines that follow it belong to that label until the next one.

The ``since`` versions were read off the fixtures and pytorch's history:
Clang/ROCm/HIP/MIOpen appear in 1.7 reports and not in 1.6 ones, libc and
Python platform came with pytorch PR 58485 (1.9), XNNPACK is in 1.12.1
reports, CUDA_MODULE_LOADING came with lazy loading (1.13), the CPU block with
pytorch PR 93899 (2.0), and "Is XPU available" is absent from 2.4 reports.
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, int]


@dataclass(frozen=True)
class Label:
    text: str
    name: str
    since: Version | None
    block: str = ""


LABELS: tuple[Label, ...] = (
    Label("PyTorch version", "torch_version", (0, 4)),
    Label("Is debug build", "is_debug_build", (0, 4)),
    Label("CUDA used to build PyTorch", "cuda_compiled_version", (0, 4)),
    Label("ROCM used to build PyTorch", "hip_compiled_version", (1, 7)),
    Label("OS", "os", (0, 4)),
    Label("GCC version", "gcc_version", (0, 4)),
    Label("Clang version", "clang_version", (1, 7)),
    Label("CMake version", "cmake_version", (0, 4)),
    Label("Libc version", "libc_version", (1, 9)),
    Label("Python version", "python_version", (0, 4)),
    Label("Python platform", "python_platform", (1, 9)),
    Label("Is CUDA available", "is_cuda_available", (0, 4)),
    Label("CUDA runtime version", "cuda_runtime_version", (0, 4)),
    Label("CUDA_MODULE_LOADING set to", "cuda_module_loading", (1, 13)),
    Label("GPU models and configuration", "nvidia_gpu_models", (0, 4), block="gpu"),
    Label("Nvidia driver version", "nvidia_driver_version", (0, 4)),
    Label("cuDNN version", "cudnn_version", (0, 4), block="cudnn"),
    Label("Is XPU available", "is_xpu_available", (2, 6)),
    Label("XPU used to build PyTorch", "xpu_compiled_version", None),
    Label("Intel GPU driver version", "intel_gpu_driver", None, block="xpu_driver"),
    Label("Intel GPU models onboard", "intel_gpu_onboard", None, block="xpu_onboard"),
    Label("Intel GPU models detected", "intel_gpu_detected", None, block="xpu_detected"),
    Label("HIP runtime version", "hip_runtime_version", (1, 7)),
    Label("MIOpen runtime version", "miopen_runtime_version", (1, 7)),
    Label("Is XNNPACK available", "is_xnnpack_available", (1, 12)),
    Label("Caching allocator config", "caching_allocator_config", None),
    Label("CPU", "cpu_info", (2, 0), block="cpu"),
    Label("Versions of relevant libraries", "libraries", None, block="libs"),
    # Printed by forks of the script (vLLM's, IPEX's); mapped when present.
    Label("NCCL version", "nccl_version", None),
    Label("PyTorch CXX11 ABI", "cxx11_abi", None),
)

BY_TEXT: dict[str, Label] = {label.text.lower(): label for label in LABELS}
BY_NAME: dict[str, Label] = {label.name: label for label in LABELS}

# Lines that only a collect_env report carries; a generic "OS:" or "Python
# version:" in prose is not enough to call a text a report.
ANCHORS = frozenset(
    {
        "torch_version",
        "is_debug_build",
        "cuda_compiled_version",
        "hip_compiled_version",
        "is_cuda_available",
        "cuda_runtime_version",
        "cuda_module_loading",
        "nvidia_gpu_models",
        "nvidia_driver_version",
        "cudnn_version",
        "hip_runtime_version",
        "miopen_runtime_version",
        "is_xnnpack_available",
        "libraries",
    }
)

HEADER = "collecting environment information"

# What ``missing`` calls the two package listings.
PIP_FACT = "pip packages"
CONDA_FACT = "conda packages"
