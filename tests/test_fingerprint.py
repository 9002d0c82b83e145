"""The environment fingerprint: each collector on this machine, with failures injected, digest and CLI.

GPU collectors with faked NVML / torch.cuda are in test_fingerprint_gpu.py, redaction with planted
secrets in test_fingerprint_env.py.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from driftboard.cli import cli
from driftboard.core import fields
from driftboard.core.fingerprint import collect as collect_mod
from driftboard.core.fingerprint import collect_fingerprint, facts, fingerprint_digest
from driftboard.core.fingerprint.cpu import ISA_FLAGS, collect_cpu, parse_cpuinfo, parse_sysctl
from driftboard.core.fingerprint.digest import is_error_key
from driftboard.core.fingerprint.packages import collect_packages, is_relevant
from driftboard.core.fingerprint.system import _container, collect_identity, machine_id
from driftboard.core.fingerprint.torch_info import collect_numerics, collect_torch, parse_config

torch = pytest.importorskip("torch")

ENVIRON = {"OMP_NUM_THREADS": "2", "HOME": "/root"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def fp() -> dict:
    """One real fingerprint of this machine, shared by the read-only tests."""
    return collect_fingerprint(label="lab", tags=("t1", "t2"), note="a note", environ=ENVIRON)


def _proc_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    line = next(line for line in text.splitlines() if line.startswith(("flags", "Features")))
    return set(line.split(":", 1)[1].split())


# --- the whole fingerprint


def test_sections_and_version(fp: dict) -> None:
    assert list(fp) == [
        "fingerprint_version",
        "os",
        "python",
        "torch",
        "numpy",
        "packages",
        "cpu",
        "gpu",
        "numerics",
        "env",
        "identity",
    ]
    assert fp["fingerprint_version"] == fields.FINGERPRINT_VERSION
    json.dumps(fp, allow_nan=False)  # JSON-ready, no NaN


def test_every_key_is_registered(fp: dict) -> None:
    flat = fields.flatten(fp)
    unregistered = [key for key in flat if fields.field_for(key) is None and not is_error_key(key)]
    assert unregistered == []


def test_no_collector_failed_on_this_machine(fp: dict) -> None:
    # The only error expected on a machine without an NVIDIA driver is NVML's.
    errors = [key for key in fields.flatten(fp) if is_error_key(key)]
    assert errors in ([], ["gpu.nvml.error"])
    assert facts.errors(fp) == []


def test_importing_the_package_never_loads_torch() -> None:
    code = (
        "import sys, json\n"
        "import driftboard.core.fingerprint as f\n"
        "f.fingerprint_digest({'fingerprint_version': 1, 'torch': {'version': '2'}})\n"
        "f.redact_environment({'OMP_NUM_THREADS': '1'})\n"
        "print(json.dumps(['torch' in sys.modules, 'numpy' in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert json.loads(done.stdout) == [False, False]


def test_a_failing_collector_leaves_an_error_and_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("odd /proc\nsecond line")

    monkeypatch.setattr(collect_mod, "collect_cpu", boom)
    monkeypatch.setattr(collect_mod, "collect_packages", boom)
    got = collect_fingerprint(environ=ENVIRON)
    assert got["cpu"] == {"error": "RuntimeError: odd /proc second line"}
    assert got["packages"] == {"error": "RuntimeError: odd /proc second line"}
    assert got["torch"]["version"] == torch.__version__
    assert got["numerics"]["intra_op_threads"] == torch.get_num_threads()
    assert HEX64.match(fingerprint_digest(got))


# --- torch


def test_torch_section_matches_torch(fp: dict) -> None:
    t = fp["torch"]
    assert t["version"] == torch.__version__
    assert t["git_version"] == torch.version.git_version
    assert t["debug"] == bool(torch.version.debug)
    assert t["cuda"] == torch.version.cuda
    assert t["hip"] == torch.version.hip
    assert t["cxx11_abi"] == bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    assert t["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert t["config"] == torch.__config__.show()
    assert t["parallel_info"] == torch.__config__.parallel_info()
    assert f"ATen parallel backend: {t['parallel_backend']}" in t["parallel_info"]
    settings = t["build_settings"]
    assert settings["TORCH_VERSION"] == torch.__version__.split("+")[0]
    assert t["blas"] == settings["BLAS_INFO"] and t["lapack"] == settings.get("LAPACK_INFO", t["lapack"])
    if "MKL-DNN" in t["config"]:
        assert t["mkldnn"].split()[0] in t["config"]
    if sys.platform.startswith("linux"):
        assert isinstance(t["libraries"], list)


def test_parse_config_of_an_older_torch() -> None:
    text = (
        "PyTorch built with:\n  - GCC 9.3\n  - C++ Version: 201703\n"
        "  - Intel(R) Math Kernel Library Version 2020.0.0 Product Build 20191122 for Intel(R) 64 architecture"
        " applications\n  - Intel(R) MKL-DNN v2.7.3 (Git Hash 6dbeffbae1f23cbbeae17adb7b5b13f1f37c080e)\n"
        "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n  - LAPACK is enabled (usually provided by MKL)\n"
        "  - CPU capability usage: AVX2\n"
        "  - CUDA Runtime 11.8\n"
        "  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, CUDA_VERSION=11.8, CXX_FLAGS= -O2 -fPIC, "
        "TORCH_VERSION=2.0.1, USE_CUDA=ON, USE_CUDNN=ON, \n"
    )
    parsed = parse_config(text)
    assert parsed["blas"] == "mkl" and parsed["lapack"] == "enabled"
    assert parsed["mkl"] == "2020.0.0 (build 20191122)"
    assert parsed["mkldnn"] == "2.7.3 (git 6dbeffbae1f2)"
    assert parsed["openmp"] == "4.5 (201511)"
    assert parsed["cpu_capability"] == "AVX2"
    assert parsed["build_settings"] == {
        "BLAS_INFO": "mkl",
        "BUILD_TYPE": "Release",
        "CUDA_VERSION": "11.8",
        "CXX_FLAGS": "-O2 -fPIC",
        "TORCH_VERSION": "2.0.1",
        "USE_CUDA": "ON",
        "USE_CUDNN": "ON",
    }


def test_torch_config_failure_is_recorded_per_field(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise RuntimeError("no config")

    monkeypatch.setattr(torch.__config__, "show", broken)
    got = collect_torch()
    assert got["config"] == {"error": "RuntimeError: no config"}
    assert got["blas"] == got["build_settings"] == {"error": "RuntimeError: no config"}
    assert got["version"] == torch.__version__
    assert got["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert got["parallel_backend"]


def test_config_without_build_settings_records_an_error() -> None:
    parsed = parse_config("PyTorch built with:\n  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n")
    assert "error" in parsed["build_settings"]
    assert parsed["openmp"] == "4.5 (201511)" and parsed["blas"] is None


# --- numerics


def test_numerics_match_the_settings_in_force(fp: dict) -> None:
    n = fp["numerics"]
    assert n["intra_op_threads"] == torch.get_num_threads()
    assert n["inter_op_threads"] == torch.get_num_interop_threads()
    assert n["deterministic_algorithms"] == torch.are_deterministic_algorithms_enabled()
    assert n["mkldnn_enabled"] == torch.backends.mkldnn.enabled
    assert n["cudnn_allow_tf32"] == torch.backends.cudnn.allow_tf32
    assert n["matmul_allow_tf32"] == torch.backends.cuda.matmul.allow_tf32
    assert n["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert n["default_dtype"] == "float32"
    assert n["flush_denormal"] is False
    expected = {"cudnn_rnn": torch.backends.cudnn.rnn, "mkldnn": torch.backends.mkldnn}
    for name, owner in expected.items():
        if hasattr(owner, "fp32_precision"):
            assert n["fp32_precision"][name] == owner.fp32_precision


def test_numerics_follow_changes() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        torch.backends.cudnn.deterministic = True
        torch.set_flush_denormal(True)
        torch.set_default_dtype(torch.float64)
        got = collect_numerics()
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.deterministic = False
        torch.set_flush_denormal(False)
        torch.set_default_dtype(torch.float32)
    assert got["intra_op_threads"] == 1 and got["cudnn_deterministic"] is True
    assert got["default_dtype"] == "float64"
    if torch.set_flush_denormal(False):  # supported on this CPU
        assert got["flush_denormal"] is True


def test_numerics_of_an_older_torch_without_new_flags() -> None:
    class Raising:
        @property
        def allow_tf32(self) -> bool:
            raise RuntimeError("cuBLAS not loaded")

    old = SimpleNamespace(
        get_num_threads=lambda: 4,
        get_num_interop_threads=lambda: 4,
        are_deterministic_algorithms_enabled=lambda: False,
        get_default_dtype=lambda: "torch.float32",
        tensor=torch.tensor,
        float32=torch.float32,
        backends=SimpleNamespace(
            mkldnn=SimpleNamespace(enabled=True),
            cudnn=SimpleNamespace(enabled=True, deterministic=False, benchmark=False, allow_tf32=True),
            cuda=SimpleNamespace(matmul=Raising()),
        ),
    )
    got = collect_numerics(old)
    assert got["intra_op_threads"] == 4 and got["cudnn_allow_tf32"] is True
    assert got["matmul_allow_tf32"] == {"error": "RuntimeError: cuBLAS not loaded"}
    assert got["fp32_precision"] == {}
    assert got["deterministic_warn_only"] is None and got["float32_matmul_precision"] is None
    assert got["default_dtype"] == "float32"


# --- numpy and packages


def test_numpy_and_packages(fp: dict) -> None:
    import numpy

    assert fp["numpy"]["version"] == numpy.__version__
    assert isinstance(fp["numpy"]["blas"], str)
    assert fp["packages"]["torch"] == importlib.metadata.version("torch")
    assert fp["packages"]["numpy"] == importlib.metadata.version("numpy")
    assert all(is_relevant(name) for name in fp["packages"])
    assert "click" not in fp["packages"] and "pytest" not in fp["packages"]


def test_packages_read_dist_info_names_first_on_path_wins(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for directory, version in ((first, "2.5.1"), (second, "1.0")):
        (directory / f"torch-{version}.dist-info").mkdir(parents=True)
    (first / "nvidia_cudnn_cu12-9.1.0.70.dist-info").mkdir()
    (first / "requests-2.0.dist-info").mkdir()
    egg = first / "triton.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: triton\nVersion: 3.1.0\n")
    got = collect_packages([str(first), str(second), str(tmp_path / "missing")])
    assert got == {"nvidia-cudnn-cu12": "9.1.0.70", "torch": "2.5.1", "triton": "3.1.0"}


# --- CPU

X86_INFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
stepping\t: 8
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu sse4_1 sse4_2 avx avx2 fma f16c avx512f avx512dq avx512bw avx512vl avx512_vnni \
avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
physical id\t: 0
core id\t\t: 0
flags\t\t: fpu

processor\t: 2
physical id\t: 0
core id\t\t: 1
"""

ARM_INFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
Features\t: fp asimd
CPU implementer\t: 0x41
CPU part\t: 0xd0c
"""


def test_cpu_on_this_machine(fp: dict) -> None:
    cpu = fp["cpu"]
    assert cpu["threads"] == os.cpu_count()
    assert cpu["arch"] == platform.machine()
    assert set(cpu["isa"]) == set(ISA_FLAGS)
    assert all(isinstance(v, bool) for v in cpu["isa"].values())
    if not sys.platform.startswith("linux"):
        return
    flags = _proc_flags()
    for isa in ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile", "sve"):
        assert cpu["isa"][isa] == (isa in flags), isa
    assert cpu["isa"]["neon"] == bool({"asimd", "neon"} & flags)
    vendor = re.search(r"^vendor_id\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    if vendor:
        assert cpu["vendor"] == vendor.group(1).strip()
    assert 1 <= cpu["cores"] <= cpu["threads"]


def test_parse_x86_cpuinfo() -> None:
    got = parse_cpuinfo(X86_INFO)
    assert (got["vendor"], got["model"], got["family"], got["model_number"], got["stepping"]) == (
        "GenuineIntel",
        "Intel(R) Xeon(R) Platinum 8480+",
        6,
        143,
        8,
    )
    assert got["cores"] == 2  # (physical id, core id) pairs, not processors
    assert got["isa"]["amx_bf16"] and got["isa"]["avx512_fp16"] and not got["isa"]["neon"]


def test_parse_arm_cpuinfo() -> None:
    got = parse_cpuinfo(ARM_INFO)
    # Named as lscpu names them: revision as model number, r<variant>p<revision> as stepping.
    assert (got["vendor"], got["model"], got["family"], got["model_number"], got["stepping"]) == (
        "ARM",
        "Neoverse-N1",
        None,
        1,
        "r3p1",
    )
    assert got["isa"]["neon"] and not got["isa"]["sve"] and not got["isa"]["avx2"]


def test_parse_macos_sysctl() -> None:
    apple = parse_sysctl(
        "machdep.cpu.brand_string: Apple M2\nhw.optional.neon: 1\nhw.optional.arm.FEAT_BF16: 1\n"
        "hw.optional.arm.FEAT_SME: 0\nhw.physicalcpu: 8\nhw.logicalcpu: 8\n"
    )
    assert (apple["vendor"], apple["model"], apple["cores"]) == ("Apple", "Apple M2", 8)
    assert apple["isa"]["neon"] and not apple["isa"]["avx"]
    intel = parse_sysctl(
        "machdep.cpu.vendor: GenuineIntel\nmachdep.cpu.brand_string: Intel(R) Core(TM) i9-9880H\n"
        "machdep.cpu.family: 6\nmachdep.cpu.model: 158\nmachdep.cpu.stepping: 13\n"
        "machdep.cpu.features: FPU SSE4.1 SSE4.2 AVX1.0 FMA F16C\n"
        "machdep.cpu.leaf7_features: AVX2 BMI2\nhw.physicalcpu: 8\n"
    )
    assert (intel["family"], intel["model_number"], intel["stepping"]) == (6, 158, 13)
    assert intel["isa"]["avx"] and intel["isa"]["avx2"] and intel["isa"]["sse4_2"] and not intel["isa"]["avx512f"]


@pytest.mark.parametrize("text", ["", "garbage without colons\n", "Hardware\t: BCM2835\n"])
def test_odd_cpuinfo_records_an_error_and_keeps_threads(text: str) -> None:
    got = collect_cpu(cpuinfo_text=text, system="Linux")
    assert set(got) == {"error", "threads", "arch"}
    assert got["error"].startswith("ValueError")
    assert got["threads"] == os.cpu_count()


def test_cpuinfo_without_flags_keeps_the_model() -> None:
    got = collect_cpu(cpuinfo_text="processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: EPYC\n", system="Linux")
    assert got["vendor"] == "AuthenticAMD" and got["model"] == "EPYC"
    assert got["isa"] == {"error": "ValueError: /proc/cpuinfo has neither 'flags' nor 'Features'"}


def test_sysctl_timeout_records_an_error() -> None:
    def hangs() -> str:
        raise subprocess.TimeoutExpired(["sysctl"], 2.0)

    got = collect_cpu(system="Darwin", sysctl=hangs)
    assert got["error"].startswith("TimeoutExpired") and got["threads"] == os.cpu_count()


# --- OS, Python, identity


def test_os_and_python(fp: dict) -> None:
    assert fp["os"]["system"] == platform.system()
    assert fp["os"]["release"] == platform.release()
    assert fp["os"]["machine"] == platform.machine()
    assert isinstance(fp["os"]["wsl"], bool)
    if sys.platform.startswith("linux"):
        assert fp["os"]["libc"].startswith("glibc") or fp["os"]["libc"] is None
    assert fp["python"] == {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "compiler": platform.python_compiler(),
        "executable": sys.executable,
    }


def test_container_hints(tmp_path: Path) -> None:
    (tmp_path / "proc/1").mkdir(parents=True)
    assert _container({}, tmp_path) == "none"
    (tmp_path / ".dockerenv").touch()
    assert _container({}, tmp_path) == "docker"
    (tmp_path / "run").mkdir()
    (tmp_path / "run/.containerenv").touch()
    assert _container({}, tmp_path) == "podman"
    assert _container({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, tmp_path) == "kubernetes"


def test_identity(fp: dict, tmp_path: Path) -> None:
    ident = fp["identity"]
    assert ident["label"] == "lab" and ident["tags"] == ["t1", "t2"] and ident["note"] == "a note"
    assert ident["anonymized"] is False
    assert HEX64.match(ident["machine_id"])
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        if Path(path).exists():
            raw = Path(path).read_text().strip()
            assert raw not in json.dumps(fp) and hashlib.sha256(raw.encode()).hexdigest() not in json.dumps(fp)
    id_file = tmp_path / "machine-id"
    id_file.write_text("0123456789abcdef0123456789abcdef\n")
    assert machine_id([id_file]) == machine_id([tmp_path / "missing", id_file])
    assert "0123456789abcdef" not in machine_id([id_file])


def test_anonymize_replaces_hostname_and_user_with_stable_hashes() -> None:
    def ident() -> dict:
        return collect_identity(anonymize=True, hostname=lambda: "gpu-node-17.corp", user=lambda: "alice")

    first = ident()
    assert re.fullmatch(r"host-[0-9a-f]{12}", first["hostname"])
    assert re.fullmatch(r"user-[0-9a-f]{12}", first["user"])
    assert first == ident() and first["anonymized"] is True
    assert "gpu-node" not in json.dumps(first) and "alice" not in json.dumps(first)
    plain = collect_identity(hostname=lambda: "gpu-node-17.corp", user=lambda: "alice")
    assert (plain["hostname"], plain["user"]) == ("gpu-node-17.corp", "alice")


# --- digest


def test_digest_ignores_identity_and_groups_equal_environments(fp: dict) -> None:
    base = fingerprint_digest(fp)
    assert HEX64.match(base)
    other = copy.deepcopy(fp)
    other["identity"].update(hostname="elsewhere", label="x", tags=["y"], note="z", machine_id="0" * 64)
    other["gpu"]["system_cuda"] = "9.9"  # informational, not numerics
    other["python"]["executable"] = "/opt/other/python"
    assert fingerprint_digest(other) == base
    reordered = {key: fp[key] for key in reversed(list(fp))}
    assert fingerprint_digest(reordered) == base
    assert fingerprint_digest(collect_fingerprint(label="again", environ=ENVIRON)) == base


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f["numerics"].update(intra_op_threads=f["numerics"]["intra_op_threads"] + 1),
        lambda f: f["torch"].update(version="0.0.0"),
        lambda f: f["cpu"]["isa"].update(avx2=not f["cpu"]["isa"]["avx2"]),
        lambda f: f["env"].update(CUBLAS_WORKSPACE_CONFIG=":4096:8"),
        lambda f: f["numerics"]["fp32_precision"].update(cudnn_rnn="ieee"),
        lambda f: f.update(fingerprint_version=f["fingerprint_version"] + 1),
    ],
)
def test_digest_changes_with_a_numerics_field(fp: dict, change) -> None:
    other = copy.deepcopy(fp)
    change(other)
    assert fingerprint_digest(other) != fingerprint_digest(fp)


def test_digest_ignores_error_text(fp: dict) -> None:
    one, two = copy.deepcopy(fp), copy.deepcopy(fp)
    one["cpu"] = {"error": "OSError: /home/alice/x", "threads": 2, "arch": "x86_64"}
    two["cpu"] = {"error": "OSError: /home/bob/y", "threads": 2, "arch": "x86_64"}
    assert fingerprint_digest(one) == fingerprint_digest(two) != fingerprint_digest(fp)


# --- CLI


def test_cli_json() -> None:
    result = CliRunner().invoke(
        cli, ["fingerprint", "--json", "--label", "box", "--tag", "a", "--tag", "b", "--note", "n", "--anonymize"]
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert got["torch"]["version"] == torch.__version__
    assert got["identity"]["label"] == "box" and got["identity"]["tags"] == ["a", "b"]
    assert got["identity"]["anonymized"] is True and got["identity"]["hostname"].startswith("host-")


def test_cli_summary_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["fingerprint"])
    assert result.exit_code == 0, result.output
    for section in ("OS", "torch", "CPU", "GPU", "numerics", "identity", "digest"):
        assert section in result.output
    assert torch.__version__ in result.output

    def boom(*args: object, **kwargs: object) -> dict:
        raise OSError("no /proc/cpuinfo")

    monkeypatch.setattr(collect_mod, "collect_cpu", boom)
    result = CliRunner().invoke(cli, ["fingerprint"])
    assert result.exit_code == 0, result.output
    assert "collector failed" in result.output and "OSError: no /proc/cpuinfo" in result.output


def test_cli_help() -> None:
    result = CliRunner().invoke(cli, ["fingerprint", "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and "--anonymize" in result.output and "--json" in result.output
