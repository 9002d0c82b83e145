"""Import environments from the wild: ``python -m torch.utils.collect_env`` text to a fingerprint.

``parse_report(text)`` reads every layout the report has had (torch 0.4 to
2.x; Linux, macOS, Windows; CUDA, ROCm, XPU and CPU-only builds) and returns
a fingerprint with the keys and value formats capture writes
(``core.fingerprint``), so the environment diff treats an imported
environment like a captured one. It never imports torch.

How the report's lines map (``None`` where the report says "Could not
collect", "N/A", "No CUDA" or nothing; a key is left out where the report has
no line for it, so "unknown" never reads as "none"):

============================  ==============================================
PyTorch version               torch.version
Is debug build                torch.debug (True/False and Yes/No)
CUDA used to build PyTorch    torch.cuda
ROCM used to build PyTorch    torch.hip
OS                            os.distro ("Mac OSX" read as "macOS"; cp866 mojibake repaired),
                              os.system, os.machine
Libc version                  os.libc, as capture writes it ("glibc 2.28")
Python version                python.version (x.y.z, or x.y in old layouts), python.compiler
Python platform               os.system, os.release, os.machine, os.wsl; on Windows os.version and
                              os.distro "Windows 10 (10.0.22631)" as capture writes it
Is CUDA available             gpu.cuda_available
CUDA runtime version          gpu.system_cuda, its release ("11.1"): it is ``nvcc --version``, the
                              system toolkit, not the runtime torch loads (pytorch#21399)
GPU models and configuration  gpu.devices[i].name and gpu.count from ``GPU i:`` lines; MIG lines
                              give devices[i].mig and .mig_devices. A single name (ROCm, CUDA on
                              macOS) is the current device only: gpu.count stays None; ROCm's gfx
                              target gives .arch and .compute_capability (gfx90a -> 9.0)
Nvidia driver version         gpu.driver
cuDNN version                 gpu.system_cudnn: the newest version the listed files name (a path,
                              a "Probably one of the following" list, cudnn64_7.dll -> "7");
                              the files stay under collect_env.cudnn_files
HIP runtime version           informational (gpu.rocm is torch.hip, as capture records it)
MIOpen runtime version        gpu.miopen
Is XPU available (+ block)    gpu.xpu, torch.xpu, gpu.xpu_driver.*, the XPU devices when no
                              other GPU is listed
Is XNNPACK available          torch.xnnpack
CPU block                     cpu.arch, vendor, model, family, model_number, stepping, threads,
                              cores and cpu.isa.* (capture's own flag table) from lscpu, flat or
                              tree layout; model and vendor from macOS's sysctl brand string;
                              Name, Manufacturer, Architecture and Revision from Windows wmic or
                              PowerShell
[pip*] / [conda] lines        packages.<PEP 503 name> for the packages capture records; pip wins,
                              conda fills names pip lacks (conda's "pytorch" is "torch");
                              numpy.version. Every listed package stays under collect_env.pip /
                              collect_env.conda, disagreements under collect_env.package_conflicts
GCC/Clang/CMake, CUDA_MODULE_LOADING, Caching allocator config, other lscpu lines
                              informational: collect_env.fields / collect_env.cpu
============================  ==============================================

What torch itself uses follows capture's rules (``build._torch_gpu_stack``):
``gpu.cuda_runtime`` is torch.cuda when CUDA is available, else None;
``gpu.cudnn`` and ``gpu.nccl`` come only from evidence of the libraries torch
loads (the nvidia-*-cuNN wheels pip lists beside that torch, or conda
pytorch's build string), never from the report's system-wide cuDNN line;
``gpu.cudnn`` is in ``torch.backends.cudnn.version()``'s integer form (90501),
as capture records it; ``collect_env.inferred`` says what came from what. ``gpu.system_mismatch`` is
set where decidable.

Everything else is kept under ``fingerprint["collect_env"]``: the raw values,
the conda listing, unrecognised lines (``unmapped``), the facts the paste
lacks (``missing``), notes and the whole text as pasted (``text``). Credentials
in the text (``core.redact``) are replaced by ``<redacted>`` before parsing,
so neither the text kept nor any value read from it holds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftboard.core.collect_env.build import build
from driftboard.core.collect_env.labels import ANCHORS
from driftboard.core.collect_env.scan import FIELD, scan
from driftboard.core.errors import ReportParseError
from driftboard.core.redact import redact_text

__all__ = ["MAX_CHARS", "ParsedReport", "parse_report"]

# A report is a few kB; a whole issue body with logs a few hundred.
MAX_CHARS = 2_000_000


@dataclass(frozen=True)
class ParsedReport:
    fingerprint: dict[str, Any]
    unknown_lines: tuple[str, ...]  # report lines not understood, kept (also collect_env.unmapped)
    missing: tuple[str, ...]  # lines the report's own layout prints that this paste lacks
    mapped_lines: int  # report lines that fed at least one registered fingerprint key
    total_lines: int  # non-blank report lines (text around the report not counted)

    @property
    def mapped_share(self) -> float:
        return self.mapped_lines / self.total_lines if self.total_lines else 0.0


def parse_report(text: str | bytes) -> ParsedReport:
    """Parse ``collect_env`` output, alone or inside a pasted issue body.

    Raises ``ReportParseError`` when the text holds no line that only a
    collect_env report carries ("PyTorch version:", "Is CUDA available:", ...).
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"parse_report expects text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ReportParseError(f"text is too long for a collect_env report ({len(text)} > {MAX_CHARS} characters)")
    # An issue body pasted whole may hold tokens (a pip URL, an exported HF_TOKEN):
    # nothing derived from the text, nor the text kept, may carry them.
    text = redact_text(text)
    normalized = _normalize(text)
    if not normalized.strip():
        raise ReportParseError("empty text: paste the output of python -m torch.utils.collect_env")
    report = scan(normalized)
    if not any(line.kind == FIELD and line.key in ANCHORS for line in report.lines):
        raise ReportParseError("not a collect_env report: no 'PyTorch version:' or other collect_env line found")
    built = build(report, text)  # the fingerprint keeps the text exactly as pasted
    return ParsedReport(built.fingerprint, built.unknown, built.missing, built.mapped, built.total)


def _normalize(text: str) -> str:
    """LF line ends (CRLF, and wmic's CR CR LF), no BOM, no zero-width spaces.

    No-break spaces stay: ``str.strip`` already drops them around labels and
    values, and inside a value they may be the cp866 "а" that ``values.repair_cp866`` needs.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.lstrip("\ufeff").replace("\u200b", "")
