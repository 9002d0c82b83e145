"""Small parsers for the values of a collect_env report, one fact each."""

from __future__ import annotations

import re
from dataclasses import dataclass

# What collect_env prints for "unknown": None becomes "Could not collect",
# a missing CUDA stack "No CUDA", a torch-less run "N/A".
_UNKNOWN = frozenset({"", "n/a", "na", "none", "null", "could not collect", "no cuda", "not available"})


def text(value: str | None) -> str | None:
    """The value, or None for the report's ways of saying "unknown"."""
    if value is None:
        return None
    value = value.strip()
    return None if value.lower() in _UNKNOWN else value


def flag(value: str | None) -> bool | None:
    """True/False as 1.x ("Yes"/"No") and 2.x ("True"/"False") reports print them."""
    v = (value or "").strip().lower()
    if v in ("true", "yes"):
        return True
    if v in ("false", "no"):
        return False
    return None


def integer(value: str | None) -> int | None:
    v = (value or "").strip()
    return int(v) if v.isdigit() else None


def cuda_release(value: str | None) -> str | None:
    """nvcc's ``V11.1.105`` as capture records the system CUDA: its release, ``11.1``."""
    v = text(value)
    return major_minor(v) or v if v else None


def major_minor(version: str | None) -> str | None:
    m = re.match(r"(\d+)\.(\d+)", version or "")
    return f"{m.group(1)}.{m.group(2)}" if m else None


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


_TORCH = re.compile(r"^(\d+)\.(\d+)")
_PRERELEASE = re.compile(r"a\d|b\d|dev")


def torch_release(version: str | None) -> tuple[int, int] | None:
    """The last torch release a version's collect_env certainly matches.

    A nightly or source build ``X.Y.0.dev``/``X.Y.0a0`` predates release X.Y,
    so its report format is at least that of the release before it.
    """
    m = _TORCH.match(version or "")
    if not m:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    if _PRERELEASE.search(version.split("+")[0]):
        return (major, minor - 1) if minor else (major - 1, 99)
    return (major, minor)


# --- OS, Python and platform lines

_ARCHES = ("x86_64", "aarch64", "arm64", "ppc64le", "s390x", "armv7l", "armv8l", "i686", "i386", "riscv64", "AMD64")
_ARCH_SUFFIX = re.compile(r"^(.*?)\s*\((" + "|".join(_ARCHES) + r")\)$")
_WINDOWS_SUFFIX = re.compile(r"^(.*?)\s*\((\d+\.\d+\.\d+)\s+(?:32|64)-bit\)$")


@dataclass(frozen=True)
class OsLine:
    system: str | None
    distro: str | None
    machine: str | None = None
    version: str | None = None


def os_line(value: str | None) -> OsLine:
    """``Ubuntu 18.04.6 LTS (x86_64)``, ``macOS 13.0 (arm64)``, ``Mac OSX 10.15.5 (x86_64)``,
    ``Microsoft Windows 10 Home``, ``Microsoft Windows 11 Pro (10.0.22631 64-bit)``."""
    distro = text(value)
    if distro is None:
        return OsLine(None, None)
    distro = repair_cp866(distro)
    machine = version = None
    m = _ARCH_SUFFIX.match(distro)
    if m:
        distro, machine = m.group(1), m.group(2)
    m = _WINDOWS_SUFFIX.match(distro)
    if m:
        distro, version = m.group(1), m.group(2)
    if distro.startswith("Mac OSX "):
        distro = "macOS " + distro[len("Mac OSX ") :]
    if distro.startswith("macOS"):
        system = "Darwin"
    elif "Windows" in distro:
        system = "Windows"
    else:
        system = "Linux"  # lsb_release / os-release text, or collect_env's "linux (x86_64)"
    if distro.lower() == "linux":
        distro = None
    return OsLine(system, distro, machine, version)


@dataclass(frozen=True)
class PlatformLine:
    system: str | None
    release: str | None = None
    machine: str | None = None
    version: str | None = None


_LINUX = re.compile(r"^Linux-(.+?)-(" + "|".join(_ARCHES) + r")(?:-with-.*)?$")
_MAC = re.compile(r"^macOS-([\d.]+)-(" + "|".join(_ARCHES) + r")(?:-.*)?$")
_DARWIN = re.compile(r"^Darwin-([^-]+)-(" + "|".join(_ARCHES) + r")(?:-.*)?$")
_WINDOWS = re.compile(r"^Windows-([^-]+)-([^-]+)(?:-.*)?$")


def platform_line(value: str | None) -> PlatformLine:
    """``platform.platform()``: ``Linux-<release>-<machine>-with-glibc2.35``,
    ``macOS-13.0-arm64-arm-64bit``, ``Darwin-19.6.0-x86_64-i386-64bit``, ``Windows-10-10.0.19041-SP0``."""
    v = text(value) or ""
    m = _LINUX.match(v)
    if m:
        return PlatformLine("Linux", m.group(1), m.group(2))
    m = _MAC.match(v)
    if m:
        return PlatformLine("Darwin", None, m.group(2))
    m = _DARWIN.match(v)
    if m:
        return PlatformLine("Darwin", m.group(1), m.group(2))
    m = _WINDOWS.match(v)
    if m:
        return PlatformLine("Windows", m.group(1), None, m.group(2))
    return PlatformLine(None)


@dataclass(frozen=True)
class PythonLine:
    version: str | None
    compiler: str | None = None
    implementation: str | None = None


def python_line(value: str | None) -> PythonLine:
    """``3.9.16 (main, Mar  1 2023, 18:22:10)  [GCC 11.2.0] (64-bit runtime)`` or ``3.7 (64-bit runtime)``."""
    v = text(value)
    if v is None or not v[0].isdigit():
        return PythonLine(None)
    compilers = re.findall(r"\[([^\]]+)\]", v)
    compiler = compilers[-1].strip() if compilers else None
    # torch ships for CPython only; sys.version names PyPy when it is PyPy.
    implementation = "PyPy" if "PyPy" in v else "CPython"
    return PythonLine(v.split()[0], compiler, implementation)


# --- cuDNN

_CUDNN_FILE = (
    re.compile(r"^libcudnn(?:_\w+?)?\.so\.(\d+(?:\.\d+)*)$"),  # Linux (ldconfig)
    re.compile(r"^libcudnn(?:_\w+?)?\.(\d+(?:\.\d+)*)\.dylib$"),  # macOS
    re.compile(r"^cudnn(?:_\w+?)?64_(\d+)\.dll$", re.IGNORECASE),  # Windows (major only)
)


def cudnn_version(entry: str) -> str | None:
    """The version a cuDNN path (or bare version) names; static archives name none."""
    entry = entry.strip()
    if re.fullmatch(r"\d+(?:\.\d+)*", entry):
        return entry
    name = re.split(r"[\\/]", entry)[-1]
    for pattern in _CUDNN_FILE:
        m = pattern.match(name)
        if m:
            return m.group(1)
    return None


def cudnn_versions(entries: list[str]) -> list[str]:
    """Distinct versions, lowest first; a bare major that a full version extends is dropped."""
    found = {v for v in (cudnn_version(e) for e in entries) if v}
    kept = [v for v in found if not any(o != v and o.startswith(v + ".") for o in found)]
    return sorted(kept, key=version_key)


def cudnn_as_torch(version: str | None) -> int | None:
    """cuDNN ``major.minor.patch[.build]`` in ``torch.backends.cudnn.version()``'s integer form, as capture records it.

    cuDNN 9 encodes ``major*10000 + minor*100 + patch`` (9.5.1 -> 90501);
    earlier releases ``major*1000 + minor*100 + patch`` (8.9.7 -> 8907).
    """
    parts = version_key(version or "")
    if len(parts) < 3:
        return None
    major, minor, patch = parts[:3]
    return major * (10000 if major >= 9 else 1000) + minor * 100 + patch


# --- text damaged on the way

_CP1251_UPPER = r"[\u0400-\u04ff\u00a0-\u00bf\u2010-\u2122]+"  # what cp1251's bytes 0x80-0xFF decode to
_CP1251_MOJIBAKE = re.compile(_CP1251_UPPER + "(?: " + _CP1251_UPPER + ")*")
_CYRILLIC_WORD = re.compile(r"^[\u0410-\u044f\u0401\u0451 ]+$")


def repair_cp866(value: str) -> str:
    """Undo Windows console text (cp866) read as cp1251: ``Њ ©Єа®б®дв`` -> ``Майкрософт``.

    collect_env decodes ``wmic`` output with the ANSI code page, so a Russian
    Windows caption arrives garbled (fixture 023). cp866's ``а`` is 0xA0, a
    no-break space in cp1251, which pastes turn into a plain space; a space
    between two garbled characters is read back as 0xA0. Text that is already
    clean Cyrillic is left alone.
    """

    def fix(m: re.Match[str]) -> str:
        run = m.group(0)
        if _CYRILLIC_WORD.match(run):
            return run  # real Cyrillic, not mojibake
        try:
            fixed = run.replace(" ", "\u00a0").encode("cp1251").decode("cp866")
        except UnicodeError:
            return run
        return fixed if _CYRILLIC_WORD.match(fixed) else run

    return _CP1251_MOJIBAKE.sub(fix, value) if not value.isascii() else value
