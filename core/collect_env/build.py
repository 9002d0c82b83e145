"""Assemble a fingerprint from the classified lines of one report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftboard.core.collect_env import cpu, gpu, packages, values
from driftboard.core.collect_env.labels import BY_NAME, CONDA_FACT, LABELS, PIP_FACT, Version
from driftboard.core.collect_env.scan import CONDA, CPU, CPU_MORE, CUDNN, FIELD, GPU, MIG, PIP, UNKNOWN, XPU, Line, Scan, clean
from driftboard.core.collect_env.tree import Tree
from driftboard.core.fields import FINGERPRINT_VERSION
from driftboard.core.fingerprint.packages import is_relevant
from driftboard.core.fingerprint.versions import cudnn_version

PARSER_VERSION = 1
SECTIONS = ("os", "python", "torch", "numpy", "packages", "cpu", "gpu", "numerics", "env", "identity")


@dataclass(frozen=True)
class Built:
    fingerprint: dict[str, Any]
    unknown: tuple[str, ...]
    missing: tuple[str, ...]
    mapped: int
    total: int


def build(report: Scan, text: str) -> Built:
    lines = list(report.lines)
    fields = {line.key: line for line in lines if line.kind == FIELD}
    root: dict[str, Any] = {"fingerprint_version": FINGERPRINT_VERSION, "source": {}}
    root.update({section: {} for section in SECTIONS})
    tree = Tree(root)

    _torch(tree, fields)
    _os_and_python(tree, fields)
    cpu_block = cpu.read_block([x for x in lines if x.kind in (CPU, CPU_MORE)], fields.get("cpu_info"))
    cpu.build(tree, cpu_block)
    _machine(tree)
    _gpu_scalars(tree, fields)
    available = root["gpu"].get("cuda_available")
    gpu.build_devices(tree, fields.get("nvidia_gpu_models"), [x for x in lines if x.kind in (GPU, MIG)], available)
    cudnn_raw = gpu.build_cudnn(tree, fields.get("cudnn_version"), [x for x in lines if x.kind == CUDNN])
    xpu_raw = gpu.build_xpu(tree, gpu.xpu_blocks(lines), bool(root["gpu"].get("devices")))
    pip, odd_pip = packages.pip_listing([x for x in lines if x.kind == PIP])
    conda, odd_conda = packages.conda_listing([x for x in lines if x.kind == CONDA])
    conflicts = _packages(tree, pip, conda)
    inferred = _torch_gpu_stack(tree, fields, pip, conda)
    _system_mismatch(tree)

    layout = _layout(fields, root["torch"].get("version"))
    missing = _missing(fields, layout, pip, conda)
    odd = {line.index for line in odd_pip + odd_conda}
    unknown = tuple(line.text for line in lines if line.kind == UNKNOWN or line.index in odd)
    total, mapped = len(lines), len(tree.mapped)
    root["source"] = {
        "kind": "collect_env",
        "parser_version": PARSER_VERSION,
        "layout_since_torch": f"{layout[0]}.{layout[1]}",
        "total_lines": total,
        "mapped_lines": mapped,
    }
    root["collect_env"] = {
        "fields": _raw_fields(lines),
        "cpu": cpu_block.raw(),
        **cudnn_raw,
        "pip_status": pip.status,
        "pip": {p.name: p.version for p in pip.packages},
        "conda_status": conda.status,
        "conda": [
            {"name": c.listed_as, "version": c.version, "build": c.build, "channel": c.channel} for c in conda.packages
        ],
        "package_conflicts": conflicts,
        "inferred": inferred,
        **xpu_raw,
        "notes": list(report.notes),
        "missing": list(missing),
        "unmapped": list(unknown),
        "text": text,
    }
    return Built(root, unknown, missing, mapped, total)


def _set(tree: Tree, key: str, line: Line | None, parse: Any) -> None:
    if line is not None:
        tree.set(key, parse(line.value), line.index)


def _torch(tree: Tree, f: dict[str, Line]) -> None:
    _set(tree, "torch.version", f.get("torch_version"), values.text)
    _set(tree, "torch.debug", f.get("is_debug_build"), values.flag)
    _set(tree, "torch.cuda", f.get("cuda_compiled_version"), values.text)
    _set(tree, "torch.hip", f.get("hip_compiled_version"), values.text)
    _set(tree, "torch.xpu", f.get("xpu_compiled_version"), values.text)
    _set(tree, "torch.xnnpack", f.get("is_xnnpack_available"), values.flag)
    _set(tree, "torch.cxx11_abi", f.get("cxx11_abi"), values.flag)
    version = tree.root["torch"].get("version") or ""
    if "cxx11" in version.partition("+")[2] and "cxx11_abi" not in f:  # "2.0.0.dev20230228+cpu-cxx11-abi"
        tree.set("torch.cxx11_abi", True, f["torch_version"].index)


def _os_and_python(tree: Tree, f: dict[str, Line]) -> None:
    os_field, platform_field = f.get("os"), f.get("python_platform")
    o = values.os_line(os_field.value if os_field else None)
    p = values.platform_line(platform_field.value if platform_field else None)
    os_at = (os_field.index,) if os_field else ()
    platform_at = (platform_field.index,) if platform_field else ()
    if os_field or platform_field:
        tree.set("os.system", p.system or o.system, *(platform_at if p.system else os_at))
    if p.system == "Windows" and p.release and p.version:
        # As capture writes it (platform.win32_ver()); the caption stays in collect_env.fields.
        tree.set("os.distro", f"Windows {p.release} ({p.version})", *os_at, *platform_at)
    elif os_field:
        tree.set("os.distro", o.distro, *os_at)
    if o.machine or p.machine:
        tree.set("os.machine", o.machine or p.machine, *(os_at if o.machine else platform_at))
    if p.release:
        tree.set("os.release", p.release, *platform_at)
        if p.system == "Linux":
            tree.set("os.wsl", "microsoft" in p.release.lower(), *platform_at)
    if o.version or p.version:
        tree.set("os.version", o.version or p.version, *(os_at if o.version else platform_at))
    _set(tree, "os.libc", f.get("libc_version"), values.text)  # "glibc-2.35", as capture writes it too
    python = f.get("python_version")
    if python is not None:
        parsed = values.python_line(python.value)
        tree.set("python.version", parsed.version, python.index)
        if parsed.compiler:
            tree.set("python.compiler", parsed.compiler, python.index)
        if parsed.implementation:
            tree.set("python.implementation", parsed.implementation, python.index)


def _machine(tree: Tree) -> None:
    """``cpu.arch`` and ``os.machine`` are both ``platform.machine()`` in a capture: each fills the other."""
    for have, want in (("os.machine", "cpu.arch"), ("cpu.arch", "os.machine")):
        value = tree.root[have.split(".")[0]].get(have.split(".")[1])
        if value and not tree.has(want):
            tree.set(want, value, *tree.origin[have])


def _gpu_scalars(tree: Tree, f: dict[str, Line]) -> None:
    _set(tree, "gpu.cuda_available", f.get("is_cuda_available"), values.flag)
    _set(tree, "gpu.driver", f.get("nvidia_driver_version"), values.text)
    # collect_env's "CUDA runtime version" is the nvcc on PATH, the system toolkit, not the
    # runtime torch loads (DRIFT_FACTS, pytorch#21399); capture records its release, major.minor.
    _set(tree, "gpu.system_cuda", f.get("cuda_runtime_version"), values.cuda_release)
    _set(tree, "gpu.miopen", f.get("miopen_runtime_version"), values.text)
    _set(tree, "gpu.xpu", f.get("is_xpu_available"), values.flag)
    _set(tree, "gpu.nccl", f.get("nccl_version"), values.text)
    if tree.root["os"].get("system") in ("Linux", "Windows"):
        tree.set("gpu.mps", False)  # Metal exists on macOS only


def _packages(tree: Tree, pip: packages.Listing, conda: packages.Listing) -> dict[str, dict[str, str | None]]:
    """``packages.<name>`` for the packages capture records (``is_relevant``): pip's version wins,
    conda's fills names pip does not list.

    Where both list a name with different versions, both are kept under
    ``collect_env.package_conflicts`` (fixture 003: pip torch 1.14 nightly,
    conda pytorch 1.13 nightly); every listed package stays under
    ``collect_env.pip`` / ``collect_env.conda``.
    """
    from_pip: dict[str, str | None] = {}
    for p in pip.packages:
        from_pip.setdefault(p.name, p.version)
        if is_relevant(p.name) and not tree.has(f"packages.{p.name}"):
            tree.set(f"packages.{p.name}", p.version, p.line)
    conflicts: dict[str, dict[str, str | None]] = {}
    for c in conda.packages:
        name = packages.CONDA_ALIASES.get(c.name, c.name)
        if name in from_pip:
            if c.version != from_pip[name] and name not in conflicts:
                conflicts[name] = {"pip": from_pip[name], "conda": c.version}
        elif is_relevant(name) and not tree.has(f"packages.{name}"):
            tree.set(f"packages.{name}", c.version, c.line)
    if tree.has("packages.numpy"):
        tree.set("numpy.version", tree.root["packages"]["numpy"], *tree.origin["packages.numpy"])
    return conflicts


def _torch_gpu_stack(tree: Tree, f: dict[str, Line], pip: packages.Listing, conda: packages.Listing) -> dict[str, str]:
    """``gpu.cuda_runtime``, ``gpu.rocm``, ``gpu.cudnn``, ``gpu.nccl``: what torch itself uses.

    They follow capture's rules (``core.fingerprint.gpu.collect_gpu``): the
    runtime is ``torch.version.cuda`` (ROCm: ``torch.version.hip``) when CUDA is
    available, else None; NCCL only when available; cuDNN whenever torch was
    built with CUDA or HIP. The report's own CUDA runtime and cuDNN lines read
    the system, so cuDNN and NCCL come only from evidence of what torch loads:
    the ``nvidia-*-cuNN`` wheels pip lists beside that same torch, or the build
    string of conda's pytorch when it is the torch in use. Returns what was
    inferred from what (kept as ``collect_env.inferred``).
    """
    t, available = tree.root["torch"], f.get("is_cuda_available")
    version, cuda, hip = t.get("version"), t.get("cuda"), t.get("hip")
    if available is None or version is None:
        return {}
    usable = tree.root["gpu"].get("cuda_available") is True
    built = [f[k].index for k in ("cuda_compiled_version", "hip_compiled_version") if k in f]
    if "cuda_compiled_version" in f or not usable:
        tree.set("gpu.cuda_runtime", cuda if usable else None, available.index, *built)
    if "hip_compiled_version" in f or cuda or not usable:  # a CUDA build is no HIP build
        tree.set("gpu.rocm", hip if usable and hip else None, available.index, *built)
    if not usable:
        tree.set("gpu.nccl", None, available.index)
    if not cuda and not hip and "cuda_compiled_version" in f:
        tree.set("gpu.cudnn", None, *built)  # a CPU build loads no cuDNN
        return {}
    inferred: dict[str, str] = {}
    listed = {p.name: p for p in pip.packages}
    same_torch = listed.get("torch") and (listed["torch"].version or "").split("+")[0] == version.split("+")[0]
    if cuda and same_torch:
        major = cuda.split(".")[0]
        wanted = [("gpu.cudnn", f"nvidia-cudnn-cu{major}", values.cudnn_as_torch)]
        if usable:
            wanted.append(("gpu.nccl", f"nvidia-nccl-cu{major}", values.text))
        for key, wheel, convert in wanted:
            p = listed.get(wheel)
            if p and p.version and not tree.has(key):
                tree.set(key, convert(p.version), p.line)
                inferred[key] = f"pip {wheel} {p.version}: the library the torch wheel loads"
    conda_build = packages.conda_torch_build(conda, version)
    if conda_build and not tree.has("gpu.cudnn"):
        _, cudnn, line = conda_build
        tree.set("gpu.cudnn", values.cudnn_as_torch(cudnn), line)
        inferred["gpu.cudnn"] = f"build string of conda pytorch {version} (cudnn{cudnn})"
    return inferred


def _system_mismatch(tree: Tree) -> None:
    """Capture's ``gpu.system_mismatch``: the system's nvcc or cuDNN differs from what torch uses.

    Set only when decidable: a system version against torch's, both known.
    """
    gpu_section = tree.root["gpu"]
    verdicts = []
    for system, used in (("system_cuda", "cuda_runtime"), ("system_cudnn", "cudnn")):
        if isinstance(gpu_section.get(system), str):
            if not tree.has(f"gpu.{used}"):
                return
            verdicts.append(values.major_minor(gpu_section[system]) != _version_text(gpu_section.get(used)))
        elif not tree.has(f"gpu.{system}"):
            return
    tree.set("gpu.system_mismatch", any(verdicts))


def _version_text(version: Any) -> str | None:
    """major.minor of torch's CUDA ("12.6") or cuDNN (torch's integer form, 90501)."""
    if isinstance(version, int) and not isinstance(version, bool):
        version = cudnn_version(version)
    return values.major_minor(version)


def _layout(fields: dict[str, Line], torch_version: str | None) -> Version:
    """The newest collect_env layout the report certainly has: its newest line, or its torch release."""
    layout: Version = max((BY_NAME[name].since or (0, 4) for name in fields), default=(0, 4))
    floor = values.torch_release(torch_version)
    return max(layout, floor) if floor else layout


def _missing(
    fields: dict[str, Line], layout: Version, pip: packages.Listing, conda: packages.Listing
) -> tuple[str, ...]:
    """Lines the report's own layout prints that this paste lacks (old layouts are not partial)."""
    out = [label.text for label in LABELS if label.since and label.since <= layout and label.name not in fields]
    if pip.status == "absent":
        out.append(PIP_FACT)
    if conda.status == "absent":
        out.append(CONDA_FACT)
    return tuple(out)


def _raw_fields(lines: list[Line]) -> dict[str, str]:
    """Each label's value as printed; a GPU list, cuDNN list or XPU list joined below it."""
    raw: dict[str, str] = {}
    current = ""
    for line in lines:
        if line.kind == FIELD:
            current = line.key
            raw[current] = line.value
        elif line.kind in (GPU, MIG, CUDNN, XPU) and current:
            raw[current] = f"{raw[current]}\n{clean(line.text)}".strip()
    return raw
