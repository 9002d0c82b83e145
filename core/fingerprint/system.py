"""Operating system, Python and identity collectors (standard library only)."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from driftboard.core.fingerprint._probe import guarded, read_text, run

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
# Hashing with an application-specific prefix (systemd's advice for machine-id)
# so the value cannot be joined with other tools' plain hashes of the same id.
_MACHINE_ID_SALT = b"driftboard-machine-id:"


# --- os


def collect_os(environ: Mapping[str, str], root: Path = Path("/")) -> dict[str, Any]:
    uname = platform.uname()
    return {
        "system": uname.system,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
        "distro": guarded(_distro, uname.system),
        "libc": guarded(_libc, uname.system),
        "container": _container(environ, root),
        "wsl": _wsl(uname.release, root),
    }


def _distro(system: str) -> str | None:
    if system == "Darwin":
        release = platform.mac_ver()[0]
        return f"macOS {release}" if release else "macOS"
    if system == "Windows":
        release, version, _, _ = platform.win32_ver()
        return f"Windows {release} ({version})"
    try:
        info = platform.freedesktop_os_release()
    except OSError:
        return None
    return info.get("PRETTY_NAME") or " ".join(filter(None, (info.get("NAME"), info.get("VERSION_ID")))) or None


def _libc(system: str) -> str | None:
    if system != "Linux":
        return None  # macOS and Windows ship their C library with the OS version
    name, version = platform.libc_ver()  # glibc answers from confstr, no file scan
    # "glibc-2.35", the form collect_env prints, so imported reports compare equal.
    return "-".join(part for part in (name, version) if part) or None


def _container(environ: Mapping[str, str], root: Path) -> str:
    # Presence only: the value of KUBERNETES_SERVICE_HOST is never read.
    if "KUBERNETES_SERVICE_HOST" in environ:
        return "kubernetes"
    if (root / "run/.containerenv").exists():
        return "podman"
    if (root / ".dockerenv").exists():
        return "docker"
    cgroup = read_text(root / "proc/1/cgroup") or ""
    for marker, kind in _CGROUP_MARKERS:
        if marker in cgroup:
            return kind
    return "none"


_CGROUP_MARKERS = (("kubepods", "kubernetes"), ("docker", "docker"), ("containerd", "containerd"), ("lxc", "lxc"))


def _wsl(release: str, root: Path) -> bool:
    return "microsoft" in release.lower() or (root / "proc/sys/fs/binfmt_misc/WSLInterop").exists()


# --- python


def collect_python() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "compiler": platform.python_compiler(),
        "executable": sys.executable,
    }


# --- identity


def collect_identity(
    *,
    label: str = "",
    tags: Sequence[str] = (),
    note: str = "",
    anonymize: bool = False,
    hostname: Callable[[], str] = socket.gethostname,
    user: Callable[[], str] | None = None,
    machine_id_files: Sequence[str | Path] = MACHINE_ID_FILES,
) -> dict[str, Any]:
    host = guarded(hostname)
    who = guarded(user or _user)
    if anonymize:
        host = _anon("host", host) if isinstance(host, str) else host
        who = _anon("user", who) if isinstance(who, str) else who
    return {
        "hostname": host,
        "machine_id": guarded(machine_id, machine_id_files),
        "user": who,
        "label": label,
        "tags": list(tags),
        "note": note,
        "anonymized": anonymize,
    }


def anonymized_names(
    hostname: Callable[[], str] = socket.gethostname, user: Callable[[], str] | None = None
) -> dict[str, str]:
    """The host and user names ``--anonymize`` hides, each mapped to the hash ``collect_identity`` records."""
    names: dict[str, str] = {}
    host = guarded(hostname)
    if isinstance(host, str) and host:
        names[host] = names[host.split(".")[0]] = _anon("host", host)  # paths may hold the short name
    who = guarded(user or _user)
    if isinstance(who, str) and who:
        names[who] = _anon("user", who)
    return names


def _anon(kind: str, value: str) -> str:
    return f"{kind}-{hashlib.sha256(f'driftboard-{kind}:{value}'.encode()).hexdigest()[:12]}"


def _user() -> str:
    # From the password database, not $USER: no variable outside the allowlist is read.
    try:
        import pwd
    except ImportError:  # Windows
        return os.getlogin()
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a container user without a passwd entry
        return f"uid-{os.getuid()}"


def machine_id(files: Sequence[str | Path] = MACHINE_ID_FILES) -> str:
    """sha256 (salted) of the OS machine id; never the raw id."""
    raw = _raw_machine_id(files)
    return hashlib.sha256(_MACHINE_ID_SALT + raw.encode()).hexdigest()


def _raw_machine_id(files: Sequence[str | Path]) -> str:
    for path in files:
        text = (read_text(path) or "").strip()
        if text:
            return text
    if sys.platform == "darwin":
        for line in run(["ioreg", "-rd1", "-c", "IOPlatformExpertDevice"]).splitlines():
            if "IOPlatformUUID" in line:
                return line.split("=", 1)[1].strip().strip('"')
    if sys.platform == "win32":
        import winreg

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:
            return str(winreg.QueryValueEx(key, "MachineGuid")[0])
    # Last resort: the hostname and a hardware address, stable enough to tell machines apart.
    import uuid

    return f"fallback:{socket.gethostname()}:{uuid.getnode():012x}"
