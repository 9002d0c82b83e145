"""Installed versions of the packages that can change numerics, without running pip.

Reading ``*.dist-info`` directory names on ``sys.path`` is what
``importlib.metadata`` does too, minus parsing every METADATA file: the
wheel spec puts the normalized name and version in the directory name, so
only legacy ``*.egg-info`` entries need their metadata read. The first entry
on the path wins, as it does for ``import``. (collect_env shells out to pip
and broke in uv environments without pip, vllm#13888.)
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# Normalized (PEP 503) names or prefixes ending in "-" / "*".
RELEVANT = (
    "torch*",  # torch, torchvision, torchaudio, torchao, torch-xla, torch-tensorrt ...
    "pytorch-*",  # pytorch-triton, pytorch-triton-rocm, pytorch-triton-xpu
    "triton*",
    "numpy",
    "scipy",
    "scipy-openblas*",
    "nvidia-*",  # cuBLAS, cuDNN, NCCL ... wheels torch loads
    "cuda-*",  # cuda-python, cuda-bindings
    "cupy*",
    "mkl*",
    "intel-openmp",
    "intel-extension-for-pytorch",
    "intel-cmplr-lib-rt",
    "oneccl*",
    "tbb",
    "onnx*",
    "jax",
    "jaxlib",
    "jax-*",
    "xformers",
    "flash-attn",
    "transformer-engine*",
    "apex",
    "deepspeed",
)
_NORMALIZE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    return _NORMALIZE.sub("-", name).lower()


def is_relevant(name: str) -> bool:
    name = normalize(name)
    for pattern in RELEVANT:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def collect_packages(paths: Iterable[str] | None = None) -> dict[str, str]:
    """normalized name -> version, sorted by name."""
    found: dict[str, str] = {}
    for entry in sys.path if paths is None else paths:
        for name, version in _entries(entry or "."):
            found.setdefault(name, version)
    return dict(sorted(found.items()))


def _entries(directory: str) -> Iterable[tuple[str, str]]:
    try:
        names = os.listdir(directory)
    except OSError:  # a zip file, a missing directory
        return
    for entry in names:
        if entry.endswith(".dist-info"):
            # A version never holds "-"; a non-conforming old name might.
            name, _, version = entry[: -len(".dist-info")].rpartition("-")
            if not name:
                name, version = version, ""
        elif entry.endswith(".egg-info"):
            name, _, version = entry[: -len(".egg-info")].partition("-")
        else:
            continue
        if not is_relevant(name):
            continue
        if entry.endswith(".egg-info") or not version:
            # egg-info names may carry "-py3.11" or no version at all: ask its metadata.
            dist = metadata.PathDistribution(Path(directory, entry))
            name, version = dist.metadata["Name"] or name, dist.version
        yield normalize(name), version
