"""CPU collector: vendor, model, topology and the instruction sets that change numerics.

Linux is read from ``/proc/cpuinfo`` (no ``lscpu``); macOS from one ``sysctl``
call with a timeout. The parsers take text so tests can feed odd files.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from driftboard.core.fingerprint._probe import guarded, read_text, run

# isa key -> the flag names that mean it, on x86 (/proc/cpuinfo flags, macOS
# machdep.cpu features upper-cased) and on ARM (/proc/cpuinfo Features, macOS
# hw.optional names). Every key is always reported, True or False, so two
# machines of different architectures still compare key by key.
ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "sse4_1": ("sse4_1", "sse4.1"),
    "sse4_2": ("sse4_2", "sse4.2"),
    "avx": ("avx", "avx1.0", "avx1_0"),
    "avx2": ("avx2", "avx2_0"),
    "fma": ("fma",),
    "f16c": ("f16c",),
    "avx_vnni": ("avx_vnni", "avxvnni"),
    "avx512f": ("avx512f",),
    "avx512dq": ("avx512dq",),
    "avx512bw": ("avx512bw",),
    "avx512vl": ("avx512vl",),
    "avx512_vnni": ("avx512_vnni", "avx512vnni"),
    "avx512_bf16": ("avx512_bf16", "avx512bf16"),
    "avx512_fp16": ("avx512_fp16", "avx512fp16"),
    "amx_tile": ("amx_tile", "amxtile"),
    "amx_bf16": ("amx_bf16", "amxbf16"),
    "amx_int8": ("amx_int8", "amxint8"),
    "neon": ("neon", "asimd", "feat_asimd", "arm64"),
    "sve": ("sve", "feat_sve"),
    "sve2": ("sve2", "feat_sve2"),
}

# ARM "CPU implementer" codes (Linux arch/arm64 cputype.h).
ARM_IMPLEMENTERS = {
    "0x41": "ARM",
    "0x42": "Broadcom",
    "0x43": "Cavium",
    "0x48": "HiSilicon",
    "0x4e": "NVIDIA",
    "0x50": "APM",
    "0x51": "Qualcomm",
    "0x61": "Apple",
    "0x6d": "Microsoft",
    "0xc0": "Ampere",
}
ARM_PARTS = {  # (implementer, part) -> core name, for the common server and laptop cores
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x41", "0xd8e"): "Neoverse-N3",
    ("0x41", "0xd84"): "Neoverse-V3",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0xc0", "0xac3"): "Ampere-1",
}


def collect_cpu(
    *,
    cpuinfo_text: str | None = None,
    system: str | None = None,
    sysctl: Callable[[], str] | None = None,
    cpu_count: Callable[[], int | None] = os.cpu_count,
) -> dict[str, Any]:
    """The ``cpu`` section. ``cpuinfo_text`` / ``sysctl`` replace the real sources in tests.

    When the source cannot be parsed, its facts become ``{"error": ...}`` and
    the facts that do not depend on it (threads, arch) are still reported.
    """
    system = system or platform.system()
    facts = guarded(_source_facts, system, cpuinfo_text, sysctl)
    facts = dict(facts)
    facts["threads"] = cpu_count()
    facts["arch"] = platform.machine()
    if "error" in facts:
        return facts
    return _ordered(facts)


def _source_facts(system: str, cpuinfo_text: str | None, sysctl: Callable[[], str] | None) -> dict[str, Any]:
    if system == "Darwin":
        return parse_sysctl((sysctl or _sysctl)())
    if system == "Linux" or cpuinfo_text is not None:
        text = cpuinfo_text if cpuinfo_text is not None else read_text("/proc/cpuinfo")
        if text is None:
            raise OSError("/proc/cpuinfo is not readable")
        facts = parse_cpuinfo(text)
        if facts.get("cores") is None:
            facts["cores"] = guarded(_sysfs_cores)
        return facts
    return _portable()


def _ordered(facts: dict[str, Any]) -> dict[str, Any]:
    keys = ("vendor", "model", "family", "model_number", "stepping", "cores", "threads", "arch", "isa")
    return {key: facts.get(key) for key in keys}


def isa_from_flags(flags: Iterable[str]) -> dict[str, bool]:
    present = {flag.lower() for flag in flags}
    return {isa: any(name in present for name in names) for isa, names in ISA_FLAGS.items()}


# --- Linux


def _blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per processor block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Facts from /proc/cpuinfo text (x86 or ARM); raises ValueError when it holds no processor."""
    blocks = [b for b in _blocks(text) if "processor" in b]
    if not blocks:
        raise ValueError("/proc/cpuinfo has no processor entries")
    first = blocks[0]
    facts = _arm(first) if "cpu implementer" in first else _x86(first)
    facts["cores"] = _cores(blocks)
    flags = first.get("flags", first.get("features"))
    if flags is None:
        facts["isa"] = {"error": "ValueError: /proc/cpuinfo has neither 'flags' nor 'Features'"}
    else:
        facts["isa"] = isa_from_flags(flags.split())
    return facts


def _x86(block: dict[str, str]) -> dict[str, Any]:
    return {
        "vendor": block.get("vendor_id"),
        "model": block.get("model name"),
        "family": _int(block.get("cpu family")),
        "model_number": _int(block.get("model")),
        "stepping": _int(block.get("stepping")),
    }


def _arm(block: dict[str, str]) -> dict[str, Any]:
    """ARM facts named as lscpu names them, so collect_env imports compare equal.

    lscpu reports the part as the model name, the revision as "Model" and
    "r<variant>p<revision>" as "Stepping"; ARM has no family number.
    """
    implementer = (block.get("cpu implementer") or "").lower()
    part = (block.get("cpu part") or "").lower()
    model = block.get("model name") or ARM_PARTS.get((implementer, part))
    if model is None and part:
        model = f"part {part}"
    variant, revision = _int(block.get("cpu variant")), _int(block.get("cpu revision"))
    return {
        "vendor": ARM_IMPLEMENTERS.get(implementer, implementer or None),
        "model": model,
        "family": None,
        "model_number": revision,
        "stepping": f"r{variant}p{revision}" if variant is not None and revision is not None else None,
    }


def _cores(blocks: list[dict[str, str]]) -> int | None:
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    return len(pairs) or None


def _sysfs_cores(root: Path = Path("/sys/devices/system/cpu")) -> int | None:
    siblings = {(path / "topology" / "thread_siblings_list").read_text().strip() for path in root.glob("cpu[0-9]*")}
    return len(siblings) or None


def _int(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip(), 0)
    except ValueError:
        return None


# --- macOS


def _sysctl() -> str:
    return run(["sysctl", "machdep.cpu", "hw.optional", "hw.physicalcpu", "hw.logicalcpu"])


def parse_sysctl(text: str) -> dict[str, Any]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    if not values:
        raise ValueError("sysctl printed nothing")
    flags: list[str] = []
    for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features", "machdep.cpu.extfeatures"):
        flags += values.get(key, "").split()
    for key, value in values.items():
        if key.startswith("hw.optional.") and value == "1":
            flags.append(key.rsplit(".", 1)[1])  # hw.optional.neon, hw.optional.arm.FEAT_SVE
    brand = values.get("machdep.cpu.brand_string")
    vendor = values.get("machdep.cpu.vendor") or ("Apple" if brand and brand.startswith("Apple") else None)
    return {
        "vendor": vendor,
        "model": brand,
        "family": _int(values.get("machdep.cpu.family")),
        "model_number": _int(values.get("machdep.cpu.model")),
        "stepping": _int(values.get("machdep.cpu.stepping")),
        "cores": _int(values.get("hw.physicalcpu")),
        "isa": isa_from_flags(flags),
    }


# --- elsewhere (Windows): what the standard library knows


def _portable() -> dict[str, Any]:
    return {
        "vendor": None,
        "model": platform.processor() or None,
        "cores": None,
        "isa": {"error": f"instruction sets are not read on {sys.platform}"},
    }
