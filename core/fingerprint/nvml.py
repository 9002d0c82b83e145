"""NVML, read in a child process: a broken driver library must not kill or hang a capture.

``libnvidia-ml.so.1`` is native code running inside whichever process calls
it. One that segfaults in ``nvmlInit`` takes the capture with it (exit 139,
nothing printed); one whose init never returns hangs it; one reporting
2**31-1 devices turns the device loop into one that never ends. So the parent
starts ``python -P`` on ``main()`` below, which prints ``nvml_facts()`` as one
JSON line, waits at most ``DRIFTBOARD_NVML_TIMEOUT`` seconds (default 10:
``nvmlInit`` on a multi-GPU node without the persistence daemon takes seconds)
and records a crash, a timeout or an implausible answer as the collector's
``{"error": ...}``. ``nvml_facts`` itself takes any pynvml-like module, so
tests read fake drivers in-process.

Where no NVML library is installed (laptops, CPU servers, macOS) nothing is
started: the loader's directories and ``/etc/ld.so.cache`` are looked at first,
which costs far less than a Python start-up.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from driftboard.core.fingerprint._probe import error, guarded, is_error
from driftboard.core.processes import python_command

NVML_ERROR_NOT_SUPPORTED = 3  # pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_ENABLED = 1  # NVML_FEATURE_ENABLED / NVML_DEVICE_MIG_ENABLE
# The largest NVLink domains put 8 to 16 GPUs in one node; a driver answering
# more than this is broken, and believing it would loop for hours.
MAX_DEVICES = 64
TIMEOUT_S = 10.0
TIMEOUT_ENV = "DRIFTBOARD_NVML_TIMEOUT"

LIBRARY = "libnvidia-ml.so.1"  # the name pynvml's _LoadNvmlLibrary opens on Linux
# pynvml's own message, so a machine without NVML records what it recorded before.
LIBRARY_NOT_FOUND = "NVMLError_LibraryNotFound: NVML Shared Library Not Found"
# The loader's trusted directories and where drivers install NVML (WSL's under /usr/lib/wsl).
LOADER_DIRS = (
    "/lib", "/usr/lib", "/lib64", "/usr/lib64", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib/wsl/lib",
)
LD_CACHE = "/etc/ld.so.cache"
_CHILD = "from driftboard.core.fingerprint.nvml import main; main()"


class NVMLProbeError(Exception):
    """NVML answered nonsense, crashed or hung."""


# --- reading NVML (in the child, or in-process with a fake)


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _not_supported(exc: BaseException) -> bool:
    return getattr(exc, "value", None) == NVML_ERROR_NOT_SUPPORTED or type(exc).__name__.endswith("NotSupported")


def _nvml_field(fn: Callable[[], Any], unsupported: Any = None) -> Any:
    """One NVML query; ``unsupported`` when the device does not have the feature, an error otherwise."""
    try:
        return fn()
    except Exception as exc:  # one field fails, the device and the others stay
        return unsupported if _not_supported(exc) else error(exc)


def nvml_facts(nvml: Any = None) -> dict[str, Any]:
    """Driver, CUDA driver and devices from a pynvml-like module (default: ``import pynvml``), in this process."""
    if nvml is None:
        import pynvml as nvml
    nvml.nvmlInit()
    try:
        count = device_count(nvml.nvmlDeviceGetCount())
        return {
            "version": _nvml_field(lambda: _text(nvml.nvmlSystemGetNVMLVersion())),
            "driver": _nvml_field(lambda: _text(nvml.nvmlSystemGetDriverVersion())),
            "cuda_driver": _nvml_field(lambda: cuda_version(nvml.nvmlSystemGetCudaDriverVersion())),
            "devices": [_nvml_device(nvml, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)],
        }
    finally:
        guarded(nvml.nvmlShutdown)


def device_count(count: Any) -> int:
    if not isinstance(count, int) or not 0 <= count <= MAX_DEVICES:
        raise NVMLProbeError(f"NVML reports {count!r} devices; more than {MAX_DEVICES} is not a real machine")
    return count


def _nvml_device(nvml: Any, handle: Any) -> dict[str, Any]:
    return {
        "name": _nvml_field(lambda: _text(nvml.nvmlDeviceGetName(handle))),
        "compute_capability": _nvml_field(lambda: "{}.{}".format(*nvml.nvmlDeviceGetCudaComputeCapability(handle))),
        "memory_mb": _nvml_field(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // 2**20),
        "uuid": _nvml_field(lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
        "multiprocessors": None,  # NVML has no SM count for a whole GPU; torch.cuda fills it in
        "mig": _nvml_field(lambda: nvml.nvmlDeviceGetMigMode(handle)[0] == NVML_ENABLED, unsupported=False),
        "ecc": _nvml_field(lambda: nvml.nvmlDeviceGetEccMode(handle)[0] == NVML_ENABLED),
    }


def cuda_version(value: int) -> str:
    """NVML's and the CUDA API's integer version (12040) as "12.4"."""
    return f"{value // 1000}.{value % 1000 // 10}"


def main() -> None:
    """The child: one JSON line, the facts or ``{"error": ...}``."""
    print(json.dumps(guarded(nvml_facts)), flush=True)


# --- the parent

_ANSWERS: dict[tuple[str, str | None], dict[str, Any]] = {}


def nvml_facts_once() -> dict[str, Any]:
    """``isolated_nvml_facts()`` asked once per process and environment.

    The driver and its GPUs do not change while a process runs; repeated
    fingerprints (a benchmark, a notebook) pay the child's start-up, or a hung
    driver's timeout, once.
    """
    key = (os.environ.get("LD_LIBRARY_PATH", ""), os.environ.get(TIMEOUT_ENV))
    if key not in _ANSWERS:
        _ANSWERS[key] = isolated_nvml_facts()
    return copy.deepcopy(_ANSWERS[key])


def isolated_nvml_facts(
    environ: Mapping[str, str] | None = None, runner: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run
) -> dict[str, Any]:
    """``nvml_facts()`` from a child process, or ``{"error": ...}``; no child when there is no NVML to read.

    ``environ`` (default ``os.environ``) is the environment the child and its
    loader see; of it only ``LD_LIBRARY_PATH`` (which library the loader
    opens) and ``DRIFTBOARD_NVML_TIMEOUT`` are read here, and nothing is stored.
    """
    environ = os.environ if environ is None else environ
    if importlib.util.find_spec("pynvml") is None:
        return error(ModuleNotFoundError("No module named 'pynvml'"))
    if not library_present(environ.get("LD_LIBRARY_PATH", "")):
        return {"error": LIBRARY_NOT_FOUND}
    try:
        timeout = _timeout(environ)
    except NVMLProbeError as exc:
        return error(exc)
    try:
        done = runner(python_command("-c", _CHILD), capture_output=True, text=True, timeout=timeout,
                      stdin=subprocess.DEVNULL, env=dict(environ))
    except subprocess.TimeoutExpired:  # run() has killed the child
        return error(NVMLProbeError(f"NVML did not answer within {timeout:g} s (a hung driver library?)"))
    except OSError as exc:
        return error(exc)
    return guarded(_child_result, done)


def _timeout(environ: Mapping[str, str]) -> float:
    raw = environ.get(TIMEOUT_ENV)
    if raw is None:
        return TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise NVMLProbeError(f"{TIMEOUT_ENV} must be a number of seconds between 0 and 600, not {raw[:40]!r}")
    return value


def _child_result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        raise NVMLProbeError(f"the NVML probe was killed by {name}: {LIBRARY} crashed")
    lines = [line for line in (done.stdout or "").splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        last = ([line.strip() for line in (done.stderr or "").splitlines() if line.strip()] or ["no output"])[-1]
        raise NVMLProbeError(f"the NVML probe exited with status {done.returncode}: {last[:200]}")
    result = json.loads(lines[-1])
    if is_error(result):
        return {"error": str(result["error"])}
    return _checked(result)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _checked(result: Any) -> dict[str, Any]:
    """The child's facts, refused unless they have the shape ``nvml_facts`` returns."""
    keys = {"version", "driver", "cuda_driver", "devices"}
    if not isinstance(result, dict) or set(result) != keys or not isinstance(result["devices"], list):
        raise NVMLProbeError("the NVML probe printed something other than NVML facts")
    device_count(len(result["devices"]))
    if not all(isinstance(device, dict) for device in result["devices"]):
        raise NVMLProbeError("the NVML probe printed a device that is not an object")
    return result


# --- is there an NVML to read?


def library_present(ld_library_path: str = "", dirs: Sequence[str] = LOADER_DIRS, cache: str = LD_CACHE) -> bool:
    """Whether the loader could open ``libnvidia-ml.so.1`` (Windows: pynvml's two nvml.dll places).

    A file check, never a dlopen: loading the library is what may crash.
    """
    if sys.platform == "win32":
        return any(Path(p).is_file() for p in _windows_paths())
    search = [d for d in ld_library_path.split(os.pathsep) if d] + list(dirs)
    if any(Path(d, LIBRARY).exists() for d in search):
        return True
    try:
        return LIBRARY.encode() in Path(cache).read_bytes()
    except OSError:
        return False


def _windows_paths() -> list[str]:
    # Where pynvml's _LoadNvmlLibrary looks (DCH drivers in System32, older ones under NVSMI);
    # Windows reads environment names case-insensitively.
    return [
        os.path.join(os.getenv("WINDIR", "C:/Windows"), "System32/nvml.dll"),
        os.path.join(os.getenv("PROGRAMFILES", "C:/Program Files"), "NVIDIA Corporation/NVSMI/nvml.dll"),
    ]
