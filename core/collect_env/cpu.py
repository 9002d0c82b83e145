"""The CPU block: lscpu (Linux), ``sysctl`` brand string (macOS), wmic / PowerShell (Windows)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from driftboard.core.collect_env import values
from driftboard.core.collect_env.scan import CPU_MORE, Line
from driftboard.core.collect_env.tree import Tree
from driftboard.core.fingerprint.cpu import isa_from_flags

# Win32_Processor.Architecture codes, named as platform.machine() names them on Windows.
_WINDOWS_ARCH = {"0": "x86", "5": "ARM", "9": "AMD64", "12": "ARM64"}
_FAILED = re.compile(r"not found|not recognized|error|failed|cannot|no such", re.IGNORECASE)


@dataclass
class _Entry:
    value: str
    lines: list[int] = field(default_factory=list)


@dataclass
class CpuBlock:
    entries: dict[str, _Entry]  # first record's keys (lscpu, Windows)
    brand: _Entry | None  # a line without a key: sysctl's brand string or lscpu's error
    records: int  # Windows CPU records (sockets)

    def raw(self) -> dict[str, str | int]:
        out: dict[str, str | int] = {key: entry.value for key, entry in self.entries.items()}
        if self.brand:
            out["brand"] = self.brand.value
        if self.records > 1:
            out["records"] = self.records  # Windows prints one record per socket; the first one is mapped
        return out


def read_block(lines: list[Line], header: Line | None) -> CpuBlock:
    entries: dict[str, _Entry] = {}
    brand: _Entry | None = None
    records = 0
    current: _Entry | None = None
    if header is not None and header.value:  # "CPU: Apple M1" pasted on one line
        brand = _Entry(header.value, [header.index])
    for line in lines:
        if line.kind == CPU_MORE and current is not None:
            current.value = f"{current.value} {line.value}".strip()
            current.lines.append(line.index)
        elif line.key == "-":
            continue
        elif not line.key:
            brand = brand or _Entry(line.value, [line.index])
        else:
            if line.key == "DeviceID":
                records += 1
            current = entries.get(line.key)
            if current is None:
                current = entries[line.key] = _Entry(line.value, [line.index])
            else:
                current = _Entry(line.value, [])  # a later CPU record: read, not mapped
    return CpuBlock(entries, brand, records)


def build(tree: Tree, block: CpuBlock) -> None:
    if "Name" in block.entries or "Manufacturer" in block.entries:
        _windows(tree, block.entries)
    elif block.entries:
        _lscpu(tree, block.entries)
    elif block.brand and block.brand.value != "None" and not _FAILED.search(block.brand.value):
        _brand(tree, block.brand)


def _lscpu(tree: Tree, e: dict[str, _Entry]) -> None:
    for key, target in (("Architecture", "cpu.arch"), ("Vendor ID", "cpu.vendor"), ("Model name", "cpu.model")):
        if key in e:
            tree.set(target, values.text(e[key].value), *e[key].lines)
    for key, target in (("CPU family", "cpu.family"), ("Model", "cpu.model_number"), ("CPU(s)", "cpu.threads")):
        if key in e:
            tree.set(target, values.integer(e[key].value), *e[key].lines)
    if "Stepping" in e:  # a number on x86, "r3p1" on ARM
        stepping = e["Stepping"].value
        tree.set("cpu.stepping", int(stepping) if stepping.isdigit() else values.text(stepping), *e["Stepping"].lines)
    _cores(tree, e)
    if "Flags" in e:  # the capture's own flag table, so both name the same instruction sets
        for name, present in isa_from_flags(e["Flags"].value.split()).items():
            tree.set(f"cpu.isa.{name}", present, *e["Flags"].lines)


def _cores(tree: Tree, e: dict[str, _Entry]) -> None:
    for per, count in (("Core(s) per socket", "Socket(s)"), ("Core(s) per cluster", "Cluster(s)")):
        a = values.integer(e[per].value) if per in e else None
        b = values.integer(e[count].value) if count in e else None
        if a is not None and b is not None:
            tree.set("cpu.cores", a * b, *e[per].lines, *e[count].lines)
            return


def _windows(tree: Tree, e: dict[str, _Entry]) -> None:
    if "Name" in e:
        tree.set("cpu.model", values.text(e["Name"].value), *e["Name"].lines)
    if "Manufacturer" in e:
        tree.set("cpu.vendor", values.text(e["Manufacturer"].value), *e["Manufacturer"].lines)
    arch = e.get("Architecture")
    if arch:
        tree.set("cpu.arch", _WINDOWS_ARCH.get(arch.value.strip()), *arch.lines)
    revision = e.get("Revision")
    if revision and arch and arch.value.strip() in ("0", "9") and revision.value.strip().isdigit():
        # On x86, Win32_Processor.Revision is model << 8 | stepping (27142 = 0x6A06: model 106, stepping 6).
        number = int(revision.value)
        tree.set("cpu.model_number", number >> 8, *revision.lines)
        tree.set("cpu.stepping", number & 0xFF, *revision.lines)


def _brand(tree: Tree, brand: _Entry) -> None:
    name = brand.value.strip()
    tree.set("cpu.model", name, *brand.lines)
    vendor = "Apple" if name.startswith("Apple") else "GenuineIntel" if "Intel" in name else None
    if vendor is None and "AMD" in name:
        vendor = "AuthenticAMD"
    if vendor:
        tree.set("cpu.vendor", vendor, *brand.lines)
