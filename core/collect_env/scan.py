"""Find the report in pasted text and classify each of its lines.

The scan knows the report's line grammar only (which label, which sub-block);
turning values into fingerprint facts is ``build``'s job. Text before the
report (an issue body, a shell prompt, warnings printed before
``Collecting environment information...``) and after its last recognised line
is left out of the scan; the caller keeps the whole text anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driftboard.core.collect_env.labels import BY_TEXT, HEADER, Label

# Kinds of report lines.
FIELD = "field"  # "Label: value"
HEADER_LINE = "header"  # "Collecting environment information..."
GPU = "gpu"  # "GPU 0: NVIDIA A100-SXM4-80GB"
MIG = "mig"  # "  MIG 1g.10gb     Device  0:"
CUDNN = "cudnn"  # a path under "cuDNN version: Probably one of the following:"
XPU = "xpu"  # "* item" under an "Intel GPU ..." label
CPU = "cpu"  # a "key: value" / "key=value" / brand line of the CPU block
CPU_MORE = "cpu+"  # continuation of the previous CPU value (wrapped Flags)
PIP = "pip"  # "[pip3] numpy==1.24.2"
CONDA = "conda"  # "[conda] mkl 2023.0.0 pypi_0 pypi"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Line:
    index: int  # position among the input's lines (0-based)
    text: str  # the line as pasted, trailing whitespace removed
    kind: str
    key: str = ""  # label name, CPU key, GPU index, MIG profile, package tool
    value: str = ""


@dataclass(frozen=True)
class Scan:
    lines: tuple[Line, ...]  # the report region without blank and markup lines
    notes: tuple[str, ...]


_QUOTE = re.compile(r"^\s*(?:>\s?)+")
_MARKUP = re.compile(r"^(?:```|~~~|</?(?:details|summary|pre|code)\b[^>]*>)", re.IGNORECASE)
_PKG = re.compile(r"^\[(pip\d*|conda)\]\s?(.*)$")
GPU_LINE = re.compile(r"^GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?$")
_MIG = re.compile(r"^MIG (\S+)\s+Device\s+(\d+):?(?: \(UUID: [^)]*\))?$")
_CPU_KV = re.compile(r"^([A-Za-z][A-Za-z0-9 _()/,.+\-]{0,63}?)\s*[:=]\s*(.*)$")
_SEPARATOR = re.compile(r"^-{3,}$")
_ALIGNED = re.compile(r"^[^:=]+[:=]\s{2,}\S")  # lscpu pads its keys into a column
# First words of lscpu keys (util-linux 2.2x-2.4x, x86, ARM, POWER, s390).
_LSCPU_KEY = re.compile(
    r"^(?:Architecture|CPU|Byte Order|Address sizes|On-line|Off-line|Vendor ID|Model|BIOS|Thread|Core|Socket"
    r"|Cluster|Book|Drawer|Stepping|Frequency|BogoMIPS|Flags|Virtualization|Hypervisor|L[1-4]|Caches|NUMA"
    r"|Vulnerabilit|Dispatching mode|Machine type|Max speed|Min speed)"
)
_ITEM = re.compile(r"^\*\s*(.*)$")

# Keys of the Windows CPU shapes (wmic ``/VALUE`` and PowerShell ``ConvertTo-Json``),
# whose multi-socket output separates CPUs by blank lines.
WINDOWS_CPU_KEYS = frozenset(
    {
        "Architecture",
        "CurrentClockSpeed",
        "DeviceID",
        "Family",
        "L2CacheSize",
        "L2CacheSpeed",
        "Manufacturer",
        "MaxClockSpeed",
        "Name",
        "ProcessorType",
        "Revision",
    }
)


def clean(raw: str) -> str:
    """A line without Markdown quote markers and surrounding whitespace."""
    if ">" in raw[:8]:
        raw = _QUOTE.sub("", raw)
    return raw.strip()


def label_of(s: str) -> tuple[Label, str] | None:
    head, sep, rest = s.partition(":")
    if not sep:
        return None
    label = BY_TEXT.get(head.strip().lower())
    return (label, rest.strip()) if label else None


def _anchor(raw: list[str]) -> int:
    for i, line in enumerate(raw):
        s = clean(line).lower()
        if s.startswith(HEADER) or s.startswith("pytorch version:"):
            return i
    return 0


class _Stop(Exception):
    """A second report starts here."""


class _Scanner:
    def __init__(self) -> None:
        self.block = ""
        self.seen: set[str] = set()
        self.blank = False  # a blank line since the last non-blank one
        self.cpu_lines = 0
        self.cpu_key = ""

    def classify(self, i: int, raw: str) -> Line | None:
        text = raw.rstrip()
        s = clean(text)
        if not s:
            self.blank = True
            return None
        if _MARKUP.match(s):
            return None
        line = self._line(i, text, s)
        self.blank = False
        return line

    def _line(self, i: int, text: str, s: str) -> Line:
        found = label_of(s)
        if found:
            return self._field(i, text, *found)
        if s.lower().startswith(HEADER):
            if self.seen:
                raise _Stop
            return Line(i, text, HEADER_LINE)
        pkg = _PKG.match(s)
        if pkg:
            kind = CONDA if pkg.group(1) == "conda" else PIP
            return Line(i, text, kind, pkg.group(1), pkg.group(2).strip())
        if self.block == "gpu":
            return self._gpu(i, text, s)
        if self.block == "cudnn":
            return Line(i, text, CUDNN, value=s) if "cudnn" in s.lower() else Line(i, text, UNKNOWN)
        if self.block.startswith("xpu_"):
            return self._xpu(i, text, s)
        if self.block == "cpu":
            return self._cpu(i, text, s)
        return Line(i, text, UNKNOWN)

    def _field(self, i: int, text: str, label: Label, value: str) -> Line:
        if label.name in self.seen:
            if label.name == "torch_version":
                raise _Stop
            return Line(i, text, UNKNOWN)
        self.seen.add(label.name)
        self.block = label.block
        self.cpu_lines = 1 if value else 0
        self.cpu_key = ""
        return Line(i, text, FIELD, label.name, value)

    def _gpu(self, i: int, text: str, s: str) -> Line:
        gpu = GPU_LINE.match(s)
        if gpu:
            return Line(i, text, GPU, gpu.group(1), gpu.group(2).strip())
        mig = _MIG.match(s)
        if mig:
            return Line(i, text, MIG, mig.group(1), mig.group(2))
        return Line(i, text, UNKNOWN)

    def _xpu(self, i: int, text: str, s: str) -> Line:
        item = _ITEM.match(s)
        if item:
            return Line(i, text, XPU, self.block, item.group(1).strip())
        if s.upper() == "N/A":
            return Line(i, text, XPU, self.block, "")
        return Line(i, text, UNKNOWN)

    def _cpu(self, i: int, text: str, s: str) -> Line:
        if _SEPARATOR.match(s):
            return Line(i, text, CPU, "-")
        indented = _QUOTE.sub("", text)[:1].isspace()
        kv = _CPU_KV.match(s)
        if kv:
            key = kv.group(1).strip()
            known = key in WINDOWS_CPU_KEYS or _LSCPU_KEY.match(key)
            # After a blank line only another Windows CPU record continues the block;
            # a key no lscpu prints, neither indented nor padded, is prose after the report.
            if (self.blank and key not in WINDOWS_CPU_KEYS) or not (known or indented or _ALIGNED.match(s)):
                self.block = ""
                return Line(i, text, UNKNOWN)
            self.cpu_lines += 1
            self.cpu_key = key
            return Line(i, text, CPU, key, kv.group(2).strip())
        if self.cpu_lines == 0:
            self.cpu_lines = 1
            return Line(i, text, CPU, "", s)  # sysctl brand string, or lscpu's error
        if self.cpu_key and not self.blank and indented:
            return Line(i, text, CPU_MORE, self.cpu_key, s)  # lscpu's tree layout wraps Flags, indented
        self.block = ""
        return Line(i, text, UNKNOWN)


def scan(text: str) -> Scan:
    """Classify the lines of the first report in ``text`` (already LF-only)."""
    raw = text.split("\n")
    start = _anchor(raw)
    scanner = _Scanner()
    lines: list[Line] = []
    notes: list[str] = []
    for i in range(start, len(raw)):
        try:
            line = scanner.classify(i, raw[i])
        except _Stop:
            notes.append(f"a second report starts at line {i + 1}; only the first was parsed")
            break
        if line is not None:
            lines.append(line)
    known = [k for k, line in enumerate(lines) if line.kind != UNKNOWN]
    if not known:
        return Scan((), tuple(notes))
    return Scan(tuple(lines[known[0] : known[-1] + 1]), tuple(notes))
