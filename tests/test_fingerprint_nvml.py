"""NVML is read in a child process: real broken ``libnvidia-ml.so.1`` builds cannot crash or hang a capture.

The fakes are compiled from ``data/fake_nvml.c`` with gcc and put first on
``LD_LIBRARY_PATH``, where pynvml's ``CDLL("libnvidia-ml.so.1")`` finds them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from driftboard.core.fingerprint import nvml
from driftboard.core.fingerprint.nvml import LIBRARY_NOT_FOUND, isolated_nvml_facts, library_present
from driftboard.core.processes import driftboard_command

SOURCE = Path(__file__).parent / "data" / "fake_nvml.c"
TIMEOUT_S = 2  # DRIFTBOARD_NVML_TIMEOUT in these tests
BOUND_S = 45  # a whole `driftboard fingerprint` on a loaded 2-core machine, with the timeout inside


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """mode -> a directory holding that mode's libnvidia-ml.so.1."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the fake NVML libraries")
    root = tmp_path_factory.mktemp("nvml")
    dirs = {}
    for mode in ("segv", "hang", "huge", "good"):
        directory = root / mode
        directory.mkdir()
        subprocess.run(["gcc", "-shared", "-fPIC", "-O0", f"-DMODE_{mode.upper()}", "-o",
                        str(directory / "libnvidia-ml.so.1"), str(SOURCE)], check=True, capture_output=True)
        dirs[mode] = directory
    return dirs


def _env(library_dir: Path) -> dict[str, str]:
    import os

    return {**os.environ, "LD_LIBRARY_PATH": str(library_dir), "DRIFTBOARD_NVML_TIMEOUT": str(TIMEOUT_S)}


def _fingerprint_with(library_dir: Path) -> tuple[dict, float]:
    start = time.monotonic()
    done = subprocess.run([*driftboard_command(), "fingerprint", "--json"], env=_env(library_dir),
                          capture_output=True, text=True, timeout=BOUND_S)
    elapsed = time.monotonic() - start
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    return json.loads(done.stdout), elapsed


def _one_line_error(gpu: dict) -> str:
    assert set(gpu["nvml"]) == {"error"}, gpu["nvml"]
    text = gpu["nvml"]["error"]
    assert "\n" not in text and len(text) <= 300
    return text


def test_nvml_that_segfaults_in_init_is_a_recorded_error(fake_nvml: dict[str, Path]) -> None:
    fp, _ = _fingerprint_with(fake_nvml["segv"])
    error = _one_line_error(fp["gpu"])
    assert "SIGSEGV" in error and "libnvidia-ml.so.1" in error
    assert fp["gpu"]["source"] in ("none", "torch.cuda") and fp["torch"]["version"]  # the rest was collected


def test_nvml_whose_init_never_returns_times_out(fake_nvml: dict[str, Path]) -> None:
    fp, elapsed = _fingerprint_with(fake_nvml["hang"])
    assert f"did not answer within {TIMEOUT_S} s" in _one_line_error(fp["gpu"])
    assert elapsed >= TIMEOUT_S and fp["identity"]["machine_id"]


def test_nvml_reporting_two_billion_devices_is_refused(fake_nvml: dict[str, Path]) -> None:
    fp, _ = _fingerprint_with(fake_nvml["huge"])
    assert "2147483647 devices" in _one_line_error(fp["gpu"])
    assert fp["gpu"]["count"] == len(fp["gpu"]["devices"]) <= nvml.MAX_DEVICES


def test_a_working_nvml_is_read_through_the_child(fake_nvml: dict[str, Path]) -> None:
    fp, _ = _fingerprint_with(fake_nvml["good"])
    gpu = fp["gpu"]
    assert gpu["source"] == "nvml" and gpu["count"] == 1
    assert (gpu["driver"], gpu["cuda_driver"], gpu["nvml"]) == ("999.01", "12.8", "12.999.01")
    device = gpu["devices"][0]
    assert (device["name"], device["compute_capability"], device["memory_mb"]) == ("Fake GPU 9000", "9.0", 24576)
    assert device["uuid"] == "GPU-00000000-1111-2222-3333-444444444444" and device["ecc"] is True


def test_capture_survives_a_segfaulting_nvml(fake_nvml: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from driftboard.core.bundle import read_bundle

    out = tmp_path / "run.driftboard"
    done = subprocess.run([*driftboard_command(), "capture", "-q", "--repeats", "1", "--case", "linear_10_5",
                           "-o", str(out)], env=_env(fake_nvml["segv"]), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-500:]}"
    run = read_bundle(out).run
    assert "SIGSEGV" in _one_line_error(run.fingerprint["gpu"]) and run.cases


# --- no child without a library; the parent's checks


def _no_child(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    raise AssertionError("a child process was started")


def test_no_child_process_when_no_library_is_installed(tmp_path: Path) -> None:
    if library_present():
        pytest.skip("this machine has an NVML library")
    got = isolated_nvml_facts(environ={"LD_LIBRARY_PATH": str(tmp_path)}, runner=_no_child)
    assert got == {"error": LIBRARY_NOT_FOUND}  # what pynvml itself said before the probe moved out


def test_library_present_reads_the_search_path_and_the_loader_cache(tmp_path: Path) -> None:
    empty, with_lib, cache = tmp_path / "empty", tmp_path / "lib", tmp_path / "ld.so.cache"
    empty.mkdir()
    with_lib.mkdir()
    (with_lib / "libnvidia-ml.so.1").touch()
    assert not library_present(str(empty), dirs=[], cache=str(cache))
    assert library_present(f"{empty}:{with_lib}", dirs=[], cache=str(cache))
    assert library_present("", dirs=[str(with_lib)], cache=str(cache))
    cache.write_bytes(b"ld.so-1.7.0\x00libcuda.so.1\x00libnvidia-ml.so.1\x00/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1")
    assert library_present("", dirs=[], cache=str(cache))


@pytest.mark.parametrize("value", ["soon", "0", "-1", "1e9"])
def test_a_bad_timeout_setting_is_a_one_line_error(value: str, fake_nvml: dict[str, Path]) -> None:
    got = isolated_nvml_facts(environ={"LD_LIBRARY_PATH": str(fake_nvml["good"]), "DRIFTBOARD_NVML_TIMEOUT": value},
                              runner=_no_child)
    assert got["error"].startswith("NVMLProbeError: DRIFTBOARD_NVML_TIMEOUT must be a number of seconds")


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "words"),
    [
        (-9, "", "", "killed by SIGKILL"),
        (1, "", "Traceback...\nImportError: libfoo.so: cannot open", "status 1: ImportError: libfoo.so"),
        (0, "", "", "status 0: no output"),
        (0, '{"version": "1"}\n', "", "something other than NVML facts"),
        (0, json.dumps({"version": "1", "driver": "1", "cuda_driver": "1", "devices": [{}] * 65}), "", "65 devices"),
        (0, '{"error": "NVMLError_DriverNotLoaded: Driver Not Loaded"}\n', "", "NVMLError_DriverNotLoaded"),
    ],
)
def test_the_childs_answer_is_checked(returncode: int, stdout: str, stderr: str, words: str,
                                      fake_nvml: dict[str, Path]) -> None:
    def runner(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert argv[1] == "-P"  # the current directory stays off the child's sys.path
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    got = isolated_nvml_facts(environ={"LD_LIBRARY_PATH": str(fake_nvml["good"])}, runner=runner)
    assert set(got) == {"error"} and words in got["error"], got


def test_the_child_is_asked_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def probe() -> dict:
        calls.append(1)
        return {"version": "1", "driver": "2", "cuda_driver": "3", "devices": [{"name": "x"}]}

    monkeypatch.setattr(nvml, "_ANSWERS", {})
    monkeypatch.setattr(nvml, "isolated_nvml_facts", probe)
    first = nvml.nvml_facts_once()
    first["devices"].clear()  # a caller's change does not reach the next answer
    assert nvml.nvml_facts_once()["devices"] == [{"name": "x"}] and len(calls) == 1


def test_a_whole_fingerprint_starts_no_python_child_without_nvml() -> None:
    if library_present():
        pytest.skip("this machine has an NVML library")
    pytest.importorskip("torch")
    from driftboard.core.processes import python_command

    script = (
        "import sys\nstarted = []\n"
        "sys.addaudithook(lambda event, args: started.append(args[1]) if event == 'subprocess.Popen' else None)\n"
        "from driftboard.core.fingerprint import collect_fingerprint\ncollect_fingerprint()\nprint(repr(started))\n"
    )
    done = subprocess.run(python_command("-c", script), capture_output=True, text=True, timeout=BOUND_S, check=True)
    assert "nvml" not in done.stdout.splitlines()[-1], done.stdout  # nvcc may run; no NVML probe does
