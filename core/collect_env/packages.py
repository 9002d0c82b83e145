"""The "Versions of relevant libraries" lists: ``[pip3] name==version`` and ``[conda] name version build channel``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from driftboard.core.collect_env.scan import Line

# pip freeze: ``numpy==1.24.2``; pip list's legacy format: ``numpy (1.14.5)``
# or ``torch (0.4.0a0+abc, /src/pytorch)`` for an editable install.
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*(\S+)$")
_LEGACY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s+\(([^,)]+)(?:,[^)]*)?\)$")
_URL = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s+@\s+\S+")
_EGG = re.compile(r"^-e\s+\S*#egg=([A-Za-z0-9][A-Za-z0-9._-]*)")
_CONDA = re.compile(r"^(\S+)\s+(\S+)(?:\s+(\S+))?(?:\s+(\S+))?$")

# The distribution conda's pytorch package installs is "torch".
CONDA_ALIASES = {"pytorch": "torch", "pytorch-nightly": "torch", "pytorch-cpu": "torch", "pytorch-gpu": "torch"}


def normalize(name: str) -> str:
    """PEP 503 name: ``mypy_extensions`` and ``Mypy.Extensions`` are ``mypy-extensions``.

    Also keeps dots out of the dotted fingerprint key ``packages.<name>``.
    """
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Package:
    name: str  # normalised
    version: str | None
    line: int
    build: str | None = None
    channel: str | None = None
    listed_as: str = ""  # the name as printed


@dataclass(frozen=True)
class Listing:
    packages: tuple[Package, ...]
    status: str  # "listed", "could not collect", "no relevant packages", "absent"


def _status(lines: list[Line]) -> str | None:
    if not lines:
        return "absent"
    values = {line.value.strip().lower() for line in lines}
    if values <= {"could not collect"}:
        return "could not collect"
    if values <= {"no relevant packages", ""}:
        return "no relevant packages"
    return None


def _listing(lines: list[Line], parse: Callable[[Line], Package | None]) -> tuple[Listing, list[Line]]:
    """Packages of a block's lines, and the lines that are not package lines."""
    status = _status(lines)
    if status:
        return Listing((), status), []
    found: list[Package] = []
    odd: list[Line] = []
    for line in lines:
        package = parse(line)
        if package:
            found.append(package)
        else:
            odd.append(line)
    return Listing(tuple(found), "listed"), odd


def pip_listing(lines: list[Line]) -> tuple[Listing, list[Line]]:
    """Packages of the ``[pip]``/``[pip3]`` lines, and the lines that are not package lines."""
    return _listing(lines, _pip_package)


def _pip_package(line: Line) -> Package | None:
    v = line.value.strip()
    for pattern in (_PIN, _LEGACY):
        m = pattern.match(v)
        if m:
            return Package(normalize(m.group(1)), m.group(2).strip(), line.index, listed_as=m.group(1))
    for pattern in (_URL, _EGG):  # installed from a URL or a checkout: no version
        m = pattern.match(v)
        if m:
            return Package(normalize(m.group(1)), None, line.index, listed_as=m.group(1))
    return None


def conda_listing(lines: list[Line]) -> tuple[Listing, list[Line]]:
    """Packages of the ``[conda]`` lines, and the lines that are not package lines."""
    return _listing(lines, _conda_package)


def _conda_package(line: Line) -> Package | None:
    m = _CONDA.match(line.value.strip())
    if not m or not m.group(2)[0].isdigit():
        return None
    name, version, build, channel = m.groups()
    if build and build.startswith("<") and not channel:
        build, channel = None, build  # old conda: "torch 1.6.0 <pip>"
    return Package(normalize(name), version, line.index, build, channel, listed_as=name)


_CONDA_TORCH_BUILD = re.compile(r"cuda(\d+\.\d+(?:\.\d+)*)_cudnn(\d+\.\d+\.\d+)")


def conda_torch_build(conda: Listing, torch_version: str | None) -> tuple[str, str, int] | None:
    """(CUDA, cuDNN, line) named by the build string of conda's pytorch, when it is the torch in use.

    ``pytorch 1.6.0 py3.7_cuda10.2.89_cudnn7.6.5_0 pytorch`` says which CUDA
    runtime and cuDNN that package ships; it only describes the running torch
    when its version is the report's ``PyTorch version`` (fixture 027 has a
    conda pytorch 1.0.1 beside the pip torch 1.0.1.post2 actually imported).
    """
    for package in conda.packages:
        if CONDA_ALIASES.get(package.name) != "torch" or package.version != torch_version:
            continue
        m = _CONDA_TORCH_BUILD.search(package.build or "")
        if m:
            return m.group(1), m.group(2), package.line
    return None
