"""The collect_env importer on real reports from public bug reports and on synthetic layouts.

The real reports live in ``../shared/fixtures/collect_env/`` (beside the
checkout); ``EXPECTED`` holds, per file, the facts a person reads off it,
written by hand from the file, never from the parser's output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftboard.core import fields as registry
from driftboard.core.collect_env import ParsedReport, parse_report
from driftboard.core.compare.envdiff import diff_environments
from driftboard.core.errors import ReportParseError

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "collect_env"
DATA = Path(__file__).resolve().parent / "data" / "collect_env"
ABSENT = "<absent>"  # the report does not carry the fact at all (no line for it)

needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real collect_env reports not found at {FIXTURES} (../shared beside the checkout)"
)


def fixture_names() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.txt")) if FIXTURES.is_dir() else []


def parse_fixture(name: str) -> ParsedReport:
    return parse_report((FIXTURES / name).read_text(encoding="utf-8"))


def parse_data(name: str) -> ParsedReport:
    return parse_report((DATA / name).read_text(encoding="utf-8"))


def flat(report: ParsedReport) -> dict[str, Any]:
    return registry.flatten(report.fingerprint)


@dataclass(frozen=True)
class Expect:
    """What a person reads off a report. ``None``: the report says it could not tell; ``ABSENT``: no line for it."""

    torch: str | None
    system: str | None  # os.system
    distro: str | None  # the OS line without its "(x86_64)"
    python: str | None
    cuda: str | None  # "CUDA used to build PyTorch"
    system_cuda: str | None  # "CUDA runtime version" (nvcc), as its release x.y
    runtime: Any  # the CUDA torch runs: its build's when "Is CUDA available" says yes, else None
    gpus: Any  # GPU names, in order; ABSENT when the report could not collect them
    count: int | None
    driver: str | None
    cudnn: Any  # the newest cuDNN the report lists (collect_env's own, the system's)
    cpu: Any  # CPU model name


A5000, V100S, P100 = "NVIDIA RTX A5000", "Tesla V100-SXM2-32GB", "Tesla P100-PCIE-16GB"

EXPECTED: dict[str, Expect] = {
    "001.txt": Expect(
        "2.0.0.dev20230228+cpu-cxx11-abi", "Linux", "CentOS Stream 8", "3.9.16", None, None, None,
        (), 0, None, None, "Genuine Intel(R) CPU 0000%@",
    ),
    "003.txt": Expect(
        "1.14.0.dev20221104", "Darwin", "macOS 13.0", "3.10.8", None, None, None, (), 0, None, None, ABSENT
    ),
    "005.txt": Expect(
        "1.11.0+cu115", "Linux", "Ubuntu 18.04.6 LTS", "3.7.13", "11.5", "11.1", "11.5",
        (A5000,) * 8, 8, "510.73.08", "8.4.0", ABSENT,
    ),
    "007.txt": Expect("1.12.1", "Darwin", "macOS 12.5", "3.9.13", None, None, None, (), 0, None, None, ABSENT),
    "009.txt": Expect(
        "1.11.0", "Linux", "Fedora release 34 (Thirty Four)", "3.8.12", None, None, None, (), 0, None, None, ABSENT
    ),
    "011.txt": Expect(
        "1.12.0a0+gitec8d677", "Linux", "Arch Linux", "3.10.2", "11.6", "11.6", "11.6",
        ("NVIDIA GeForce RTX 3090", "NVIDIA GeForce RTX 2080 Ti"), 2, "510.54", "8.3.1", ABSENT,
    ),
    "013.txt": Expect(
        "1.9.0a0+gitd69c22d", "Linux", "Debian GNU/Linux 10 (buster)", "3.8.11", "11.0", "11.0", "11.0",
        (V100S,) * 4, 4, "450.51.06", None, ABSENT,
    ),
    # nvidia-smi failed and CUDA is not available: no GPU torch or nvidia-smi can see, as capture would count.
    "015.txt": Expect(
        "1.9.0+cu111", "Linux", "CentOS Linux 7 (Core)", "3.6", "11.1", "11.1", None,
        (), 0, None, None, ABSENT,
    ),
    "017.txt": Expect(
        "1.7.0+cu101", "Linux", "Ubuntu 20.04.1 LTS", "3.7", "10.1", None, "10.1",
        ("Quadro RTX 6000",), 1, "455.32.00", None, ABSENT,
    ),
    "019.txt": Expect(
        "1.6.0", "Linux", "Ubuntu 18.04.4 LTS", "3.7", "10.2", None, "10.2",
        ("GeForce RTX 2080",), 1, "450.51.05", "7.6.5", ABSENT,
    ),
    "021.txt": Expect(
        "1.4.0+cpu", "Windows", "Microsoft Windows 10 Home", "3.7", None, None, None, (), 0, None, None, ABSENT
    ),
    # The Russian caption arrives as cp866 bytes read as cp1251; "Майкрософт" is what was typed.
    "023.txt": Expect(
        "1.3.0a0+de394b6", "Windows", "Майкрософт Windows 10 Pro", "3.6", "10.0", "10.0", "10.0",
        ("GeForce GTX 1080 Ti",), 1, "411.31", "7", ABSENT,
    ),
    "025.txt": Expect(
        "1.2.0.dev20190605", "Linux", "CentOS Linux release 7.5.1804 (Core)", "3.7", "9.0.176", "9.2", "9.0.176",
        (P100,) * 2, 2, "396.26", None, ABSENT,
    ),
    "027.txt": Expect(
        "1.0.1.post2", "Linux", "Ubuntu 18.04.1 LTS", "3.7", "10.0.130", "10.0", "10.0.130",
        ("GeForce RTX 2080",), 1, "410.48", "7.4.1", ABSENT,
    ),
    "029.txt": Expect(
        "1.0.0", "Linux", "Debian GNU/Linux 9 (stretch)", "2.7", None, None, None, (), 0, None, None, ABSENT
    ),
    "031.txt": Expect(
        "1.0.0", "Linux", "Ubuntu 16.04.4 LTS", "2.7", "9.0.176", "9.0", "9.0.176",
        ("GeForce GTX 1080 Ti",) * 3, 3, "390.48", "7.0.5", ABSENT,
    ),
    "033.txt": Expect(
        "0.5.0a0+152762a", "Linux", "Fedora release 28 (Twenty Eight)", "3.6", "9.2.148", "9.2", "9.2.148",
        ("GeForce GTX 1080",), 1, "396.45", "7.2.1", ABSENT,
    ),
    "035.txt": Expect(
        "2.7.0+cu126", "Linux", "SUSE Linux Enterprise Server 15 SP5", "3.12.9", "12.6", "12.4", "12.6",
        ("NVIDIA A100-SXM4-80GB",) * 4, 4, "550.127.08", None, "AMD EPYC 7763 64-Core Processor",
    ),
    "037.txt": Expect(
        "2.10.0.dev20251008", "Darwin", "macOS 13.7.4", "3.11.9", None, None, None, (), 0, None, None, "Apple M2 Max"
    ),
    "039.txt": Expect(
        "1.5.0+cu101", None, None, "3.7", "10.1", "10.1", "10.1", ("Quadro P1000",), 1, "426.25", None, ABSENT
    ),
    # PyTorch not installed: every torch fact is N/A, so what torch would run is not even asked.
    "041.txt": Expect(
        None, "Windows", "Microsoft Windows Server 2019 Datacenter", "3.7", None, None, ABSENT,
        ABSENT, None, None, None, ABSENT,
    ),
    "043.txt": Expect(
        "1.6.0", "Linux", "Red Hat Enterprise Linux Server 7.6 (Maipo)", "3.7", "10.2", None, None,
        ("Tesla V100-PCIE-16GB",) * 2, 2, "418.67", None, ABSENT,
    ),
    # ROCm prints torch.cuda.get_device_name() of the current device only: the GPU count is unknown.
    "045.txt": Expect(
        "2.4.0+rocm6.3.4.git7cecbf6d", "Linux", "Ubuntu 22.04.5 LTS", "3.10.12", None, None, None,
        ("AMD Radeon(TM) Graphics",), None, None, None, "AMD Ryzen 5 5600G with Radeon Graphics",
    ),
    "047.txt": Expect(
        "2.10.0.dev20251208+cu126", "Linux", "Ubuntu 22.04.4 LTS", "3.10.12", "12.6", None, "12.6",
        ("NVIDIA A10G",), 1, "580.105.08", "9.3.0", "AMD EPYC 7R32",
    ),
    "049.txt": Expect(
        "1.4.0", "Linux", "Ubuntu 18.04.5 LTS", "3.7", "10.1", "10.2", "10.1",
        ("GeForce GTX 980",), 1, "460.32.03", None, ABSENT,
    ),
    "051.txt": Expect(
        "0.4.0a0", "Linux", "Ubuntu 16.04.4 LTS", "3.6", "9.0.176", "9.0", "9.0.176",
        ("Tesla M60",) * 2, 2, "384.111", "7.1.2", ABSENT,
    ),
    "053.txt": Expect(
        "1.5.0a0+c63c82e", "Linux", "Fedora release 30 (Thirty)", "3.7", None, None, None, (), 0, None, None, ABSENT
    ),
    "055.txt": Expect(
        "1.1.0a0+7e73783", "Linux", "CentOS Linux release 7.5.1804 (Core)", "3.7", "9.2.88", "9.2", "9.2.88",
        (P100,) * 2, 2, "396.26", None, ABSENT,
    ),
    "057.txt": Expect(
        "1.0.0a0+db5d313", "Linux", "Ubuntu 18.04.1 LTS", "3.7", "10.0.130", "10.0", "10.0.130",
        ("GeForce RTX 2080",), 1, "410.48", "7.4.1", ABSENT,
    ),
    # Abridged by its reporter: no cuDNN line, no CPU block.
    "059.txt": Expect(
        "2.14.0.dev20260623+cu130", "Linux", "Ubuntu 24.04.4 LTS", "3.12.3", "13.0", "13.0", "13.0",
        ("NVIDIA GeForce RTX 3090",), 1, "580.119.02", ABSENT, ABSENT,
    ),
}  # fmt: skip

KEYS = {
    "torch": "torch.version",
    "system": "os.system",
    "distro": "os.distro",
    "python": "python.version",
    "cuda": "torch.cuda",
    "system_cuda": "gpu.system_cuda",
    "runtime": "gpu.cuda_runtime",
    "count": "gpu.count",
    "driver": "gpu.driver",
    "cudnn": "gpu.system_cudnn",
    "cpu": "cpu.model",
}


def read_off(report: ParsedReport) -> Expect:
    """The same facts, as the parser's fingerprint holds them."""
    got = flat(report)
    devices = report.fingerprint["gpu"].get("devices")
    gpus: Any = ABSENT if devices is None else tuple(d["name"] for d in devices)
    return Expect(gpus=gpus, **{attr: got.get(key, ABSENT) for attr, key in KEYS.items()})


# --- every real report


@needs_fixtures
def test_every_fixture_has_hand_written_expectations() -> None:
    assert sorted(EXPECTED) == fixture_names()


@needs_fixtures
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_facts_match_what_a_person_reads(name: str) -> None:
    assert read_off(parse_fixture(name)) == EXPECTED[name]


# Lines of the report region the parser could not place; everything else is understood.
UNKNOWN_LINES = {
    "045.txt": (
        "/home/ana/.local/lib/python3.10/site-packages/torch/cuda/__init__.py:645: UserWarning: "
        "Can't initialize amdsmi - Error code: 34",
        '  warnings.warn(f"Can\'t initialize amdsmi - Error code: {e.err_code}")',
    ),
}


@needs_fixtures
@pytest.mark.parametrize("name", fixture_names())
def test_fixture_lines_are_understood_or_kept(name: str) -> None:
    report = parse_fixture(name)
    assert report.unknown_lines == UNKNOWN_LINES.get(name, ())
    kept = report.fingerprint["collect_env"]
    assert kept["unmapped"] == list(report.unknown_lines)
    assert kept["text"] == (FIXTURES / name).read_text(encoding="utf-8")  # nothing pasted is lost
    assert 0 < report.mapped_lines <= report.total_lines
    json.dumps(report.fingerprint)  # JSON-ready, as bundles and the database store it


@needs_fixtures
@pytest.mark.parametrize("name", fixture_names())
def test_fixture_fingerprint_uses_registered_keys(name: str) -> None:
    assert unregistered_keys(parse_fixture(name)) == []


def unregistered_keys(report: ParsedReport) -> list[str]:
    """Keys outside the registry, leaving out the importer's own sections and the sections a report never fills."""
    own = ("collect_env", "source")
    return [
        key
        for key, value in flat(report).items()
        if not key.startswith(own) and value != {} and registry.field_for(key) is None
    ]


@needs_fixtures
def test_mapped_line_share_over_the_fixture_set(capsys: pytest.CaptureFixture[str]) -> None:
    reports = [parse_fixture(name) for name in fixture_names()]
    mapped = sum(r.mapped_lines for r in reports)
    total = sum(r.total_lines for r in reports)
    with capsys.disabled():
        print(f"\ncollect_env fixtures: {mapped}/{total} report lines mapped to fingerprint keys ({mapped / total:.1%})")
    # lscpu's cache, NUMA and vulnerability lines are kept but map to no key; the rest nearly all do.
    assert mapped / total > 0.55


# --- the quirks SOURCES.md lists, one by one


@needs_fixtures
def test_debug_build_flags_in_both_spellings() -> None:
    assert parse_fixture("011.txt").fingerprint["torch"]["debug"] is True  # "True"
    assert parse_fixture("053.txt").fingerprint["torch"]["debug"] is True  # "Yes"
    assert parse_fixture("019.txt").fingerprint["torch"]["debug"] is False  # "No"


@needs_fixtures
def test_pip_wins_and_conda_disagreement_is_kept() -> None:
    report = parse_fixture("003.txt")
    assert report.fingerprint["packages"]["torch"] == "1.14.0.dev20221104"
    assert report.fingerprint["numpy"]["version"] == "1.23.2"
    conflicts = report.fingerprint["collect_env"]["package_conflicts"]
    assert conflicts["torch"] == {"pip": "1.14.0.dev20221104", "conda": "1.13.0.dev20220826"}
    assert conflicts["numpy"] == {"pip": "1.23.2", "conda": "1.21.5"}


@needs_fixtures
def test_stale_pip_torch_is_kept_beside_the_header_version() -> None:
    report = parse_fixture("013.txt")
    assert report.fingerprint["torch"]["version"] == "1.9.0a0+gitd69c22d"
    assert report.fingerprint["packages"]["torch"] == "1.10.0a0+gitf69cf3c"
    two_dists = parse_fixture("007.txt").fingerprint  # pip lists torch and a "pytorch" dist
    assert two_dists["packages"]["torch"] == "1.12.0"
    assert two_dists["collect_env"]["pip"]["pytorch"] == "1.12.0a0+git3230a4d"


@needs_fixtures
def test_conda_lines_without_channel_collapsed_or_from_pip() -> None:
    collapsed = parse_fixture("027.txt").fingerprint["collect_env"]["conda"]
    assert {"name": "mkl", "version": "2019.1", "build": "144", "channel": None} in collapsed
    old = parse_fixture("023.txt").fingerprint["collect_env"]["conda"]
    assert {"name": "torch", "version": "1.3.0a0+de394b6", "build": None, "channel": "<pip>"} in old
    develop = parse_fixture("055.txt").fingerprint["collect_env"]["conda"]
    assert {"name": "torch", "version": "1.1.0a0+7e73783", "build": "dev_0", "channel": "<develop>"} in develop


@needs_fixtures
def test_legacy_pip_listing_and_pip_that_could_not_collect() -> None:
    assert parse_fixture("031.txt").fingerprint["packages"]["numpy"] == "1.14.5"  # "[pip] numpy (1.14.5)"
    assert parse_fixture("051.txt").fingerprint["packages"]["torch"] == "0.4.0a0"
    no_pip = parse_fixture("057.txt")
    assert no_pip.fingerprint["collect_env"]["pip_status"] == "could not collect"
    assert no_pip.fingerprint["packages"]["torch"] == "1.0.0a0+db5d313"  # from conda's "<pip>" line
    assert no_pip.missing == ()


@needs_fixtures
def test_system_cuda_and_cudnn_stay_apart_from_what_torch_loads() -> None:
    gpu = parse_fixture("047.txt").fingerprint["gpu"]
    # ldconfig finds cuDNN 9.3.0; the torch wheel loads the nvidia-cudnn-cu12 9.10.2.21 wheel.
    assert (gpu["system_cudnn"], gpu["cudnn"], gpu["nccl"]) == ("9.3.0", 91002, "2.27.5")  # torch's int form
    assert gpu["system_mismatch"] is True
    conda = parse_fixture("019.txt").fingerprint["gpu"]  # conda pytorch py3.7_cuda10.2.89_cudnn7.6.5_0
    assert (conda["cuda_runtime"], conda["cudnn"], conda["system_mismatch"]) == ("10.2", 7605, False)
    other_torch = parse_fixture("027.txt").fingerprint["gpu"]  # conda pytorch 1.0.1 is not the torch in use
    assert "cudnn" not in other_torch


@needs_fixtures
def test_gpus_listed_but_cuda_unavailable() -> None:
    gpu = parse_fixture("043.txt").fingerprint["gpu"]
    assert (gpu["count"], gpu["cuda_available"], gpu["cuda_runtime"], gpu["nccl"]) == (2, False, None, None)


@needs_fixtures
def test_lscpu_block_old_and_new_layouts() -> None:
    old = parse_fixture("001.txt").fingerprint["cpu"]
    assert (old["vendor"], old["family"], old["model_number"], old["stepping"]) == ("GenuineIntel", 6, 143, 3)
    assert (old["threads"], old["cores"]) == (224, 112)
    assert old["isa"]["amx_tile"] and old["isa"]["avx512_fp16"] and not old["isa"]["sve"]
    amd = parse_fixture("035.txt").fingerprint["cpu"]
    assert amd["isa"]["avx2"] and not amd["isa"]["avx512f"]
    assert parse_fixture("035.txt").fingerprint["collect_env"]["cpu"]["L3 cache"] == "256 MiB (8 instances)"


@needs_fixtures
def test_rocm_report() -> None:
    report = parse_fixture("045.txt")
    gpu, torch = report.fingerprint["gpu"], report.fingerprint["torch"]
    assert (torch["hip"], torch["cuda"]) == ("6.3.42134-a9a80e791", None)
    assert gpu["devices"] == [{"arch": "gfx1100", "compute_capability": "11.0", "name": "AMD Radeon(TM) Graphics"}]
    assert (gpu["rocm"], gpu["miopen"], gpu["cuda_runtime"]) == ("6.3.42134-a9a80e791", "3.3.0", None)
    assert report.fingerprint["os"]["wsl"] is True


@needs_fixtures
def test_text_around_the_report_is_not_counted() -> None:
    report = parse_fixture("035.txt")  # a curl progress meter precedes the report
    assert report.unknown_lines == ()
    assert "% Total" in report.fingerprint["collect_env"]["text"]


@needs_fixtures
def test_old_layouts_are_not_partial_and_abridged_ones_are() -> None:
    assert parse_fixture("029.txt").missing == ()  # torch 1.0 printed no Clang/Libc/CPU lines
    assert parse_fixture("033.txt").missing == ("pip packages", "conda packages")  # paste ends after cuDNN
    assert parse_fixture("059.txt").missing == (
        "Clang version",
        "CMake version",
        "Libc version",
        "CUDA_MODULE_LOADING set to",
        "cuDNN version",
        "Is XPU available",
        "HIP runtime version",
        "MIOpen runtime version",
        "Is XNNPACK available",
        "CPU",
        "conda packages",
    )


@needs_fixtures
def test_environment_diff_of_one_machine_before_and_after_works_unchanged() -> None:
    before, after = parse_fixture("055.txt"), parse_fixture("025.txt")  # same user, 2x P100, two months apart
    diff = diff_environments(before.fingerprint, after.fingerprint)
    changed = {c.key: (c.baseline, c.candidate) for c in diff.numerics}
    assert changed["torch.version"] == ("1.1.0a0+7e73783", "1.2.0.dev20190605")
    assert changed["torch.cuda"] == ("9.2.88", "9.0.176")
    assert not any(key.startswith("gpu.devices") for key in changed)


@pytest.mark.slow
def test_report_of_this_machine_agrees_with_its_capture() -> None:
    """The import and capture write the same keys in the same formats: on one machine they agree."""
    pytest.importorskip("torch")
    from driftboard.core.fingerprint import collect_fingerprint

    result = subprocess.run(
        [sys.executable, "-m", "torch.utils.collect_env"], capture_output=True, text=True, timeout=300, check=True
    )
    imported = parse_report(result.stdout)
    diff = diff_environments(collect_fingerprint(), imported.fingerprint)
    changed = [c.text for c in diff.numerics if c.kind == "changed"]
    assert changed == [], f"capture and import of this machine disagree: {changed}"
    assert imported.unknown_lines == ()


# --- synthetic layouts (tests/data/collect_env/README.md says what each holds)


def test_issue_body_with_fences_and_details() -> None:
    report = parse_data("issue_body.md")
    fp = report.fingerprint
    assert fp["torch"]["version"] == "2.1.2+cu121"
    assert fp["gpu"]["devices"] == [{"name": "NVIDIA H100 80GB HBM3"}]
    assert (fp["gpu"]["system_cuda"], fp["gpu"]["cuda_runtime"], fp["gpu"]["cudnn"]) == ("11.8", "12.1", 8902)
    assert report.unknown_lines == () and report.missing == ()
    assert report.total_lines == 41  # the report's own lines: no prose, fence or <details> line


def test_crlf_and_blockquote_pastes_parse_like_the_original() -> None:
    text = (DATA / "mig.txt").read_text(encoding="utf-8")
    plain = parse_report(text)
    crlf = parse_report(text.replace("\n", "\r\n"))
    quoted = parse_report("".join(f"> {line}\n" for line in text.splitlines()))
    for other in (crlf, quoted):
        assert without_text(other.fingerprint) == without_text(plain.fingerprint)
        assert (other.mapped_lines, other.total_lines, other.unknown_lines) == (
            plain.mapped_lines,
            plain.total_lines,
            plain.unknown_lines,
        )


def without_text(fp: dict[str, Any]) -> dict[str, Any]:
    return {**fp, "collect_env": {k: v for k, v in fp["collect_env"].items() if k != "text"}}


def test_mig_devices() -> None:
    gpu = parse_data("mig.txt").fingerprint["gpu"]
    assert gpu["count"] == 2
    assert gpu["devices"][0] == {"name": "NVIDIA A100-SXM4-80GB", "mig": True, "mig_devices": ["3g.40gb", "2g.20gb", "1g.10gb"]}
    assert gpu["devices"][1] == {"name": "NVIDIA A100-SXM4-80GB"}
    assert (gpu["system_cudnn"], gpu["cudnn"], gpu["nccl"]) == ("8.9.7", 8902, "2.20.5")
    assert gpu["system_mismatch"] is True  # nvcc 12.2 beside torch's CUDA 12.1


def test_windows_powershell_report() -> None:
    report = parse_data("windows_powershell.txt")
    fp = report.fingerprint
    assert fp["os"] == {
        "system": "Windows",
        "distro": "Windows 10 (10.0.22631)",  # platform.win32_ver(), as capture writes it
        "release": "10",
        "version": "10.0.22631",
        "libc": None,
        "machine": "AMD64",
    }
    assert fp["collect_env"]["fields"]["os"] == "Microsoft Windows 11 Pro (10.0.22631 64-bit)"
    assert fp["python"] == {"version": "3.11.9", "compiler": "MSC v.1938 64 bit (AMD64)", "implementation": "CPython"}
    assert fp["cpu"] == {"model": "13th Gen Intel(R) Core(TM) i9-13900K", "vendor": "GenuineIntel", "arch": "AMD64"}
    assert fp["gpu"]["system_cudnn"] == "8"  # cudnn_ops_infer64_8.dll names its major only
    assert report.unknown_lines == () and report.missing == ()


def test_windows_wmic_two_sockets_with_console_line_ends() -> None:
    text = (DATA / "windows_wmic.txt").read_text(encoding="utf-8").replace("\n", "\r\r\n")  # wmic's own
    report = parse_report(text)
    cpu = report.fingerprint["cpu"]
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert (cpu["model_number"], cpu["stepping"]) == (106, 6)  # Revision 27142 = 0x6A06
    assert report.unknown_lines == ()
    assert report.fingerprint["gpu"]["count"] == 0


def test_rocm_multi_die_gpu() -> None:
    gpu = parse_data("rocm.txt").fingerprint["gpu"]
    assert gpu["devices"] == [
        {"arch": "gfx90a:sramecc+:xnack-", "compute_capability": "9.0", "name": "AMD Instinct MI250X"}
    ]
    assert (gpu["count"], gpu["rocm"], gpu["miopen"], gpu["source"]) == (None, "6.2.41133-dd7f95766", "3.2.0", "torch.cuda")


def test_xpu_report() -> None:
    report = parse_data("xpu.txt")
    fp = report.fingerprint
    assert (fp["gpu"]["xpu"], fp["torch"]["xpu"], fp["gpu"]["count"]) == (True, "20250101", 2)
    assert fp["gpu"]["devices"][1] == {"name": "Intel(R) Data Center GPU Max 1550", "memory_mb": 65536}
    assert fp["gpu"]["xpu_driver"] == {"intel_opencl_icd": "25.18.33578.15-1146~22.04", "libze1": "1.21.9.0-1136~22.04"}
    assert fp["collect_env"]["xpu_onboard"] == ["Intel(R) Data Center GPU Max 1550"] * 2
    assert report.unknown_lines == () and report.missing == ()


def test_arm_lscpu() -> None:
    cpu = parse_data("arm_lscpu.txt").fingerprint["cpu"]
    assert (cpu["vendor"], cpu["model"], cpu["arch"], cpu["stepping"], cpu["cores"]) == (
        "ARM",
        "Neoverse-V1",
        "aarch64",
        "r1p1",
        16,
    )
    assert cpu["isa"]["neon"] and cpu["isa"]["sve"] and not cpu["isa"]["sve2"] and not cpu["isa"]["avx"]


LSCPU_TREE = """\
PyTorch version: 2.2.0+cpu
Is CUDA available: False

CPU:
Architecture:            x86_64
  CPU op-mode(s):        32-bit, 64-bit
CPU(s):                  128
Vendor ID:               GenuineIntel
  Model name:            Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
    CPU family:          6
    Core(s) per socket:  32
    Socket(s):           2
    Flags:               fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush
                         sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc arch_perfmon rep_good nopl
                         pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand fma avx2 avx512f
Caches (sum of all):
  L1d:                   3 MiB (64 instances)
Thanks for looking: this started after the upgrade.
"""


def test_lscpu_tree_layout_with_wrapped_flags_and_prose_after_it() -> None:
    report = parse_report(LSCPU_TREE)
    cpu = report.fingerprint["cpu"]
    assert (cpu["family"], cpu["cores"], cpu["threads"]) == (6, 64, 128)
    assert cpu["isa"]["sse4_2"] and cpu["isa"]["avx512f"] and not cpu["isa"]["avx512_vnni"]
    assert report.fingerprint["collect_env"]["cpu"]["L1d"] == "3 MiB (64 instances)"
    assert "Thanks" not in str(report.fingerprint["collect_env"]["cpu"])  # unindented prose ends the block


def test_facts_absent_from_the_paste_stay_unknown() -> None:
    # nvidia-smi -L pasted raw (UUIDs, R450 MIG layout); no "CUDA used to build PyTorch" line.
    report = parse_report(
        "PyTorch version: 1.8.1+cu111\nIs CUDA available: True\nGPU models and configuration:\n"
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16)\n"
        "  MIG 1g.5gb Device 0: (UUID: MIG-GPU-7fdaf0a5-179b-f636-d15d-daf243e3ff16/7/0)\n"
    )
    gpu = report.fingerprint["gpu"]
    assert gpu["devices"] == [{"name": "NVIDIA A100-SXM4-40GB", "mig": True, "mig_devices": ["1g.5gb"]}]
    assert "cuda_runtime" not in gpu and "rocm" not in gpu and "cudnn" not in gpu


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.*") if p.name != "README.md"))
def test_synthetic_fingerprints_use_registered_keys(name: str) -> None:
    assert unregistered_keys(parse_data(name)) == []


# --- bad and partial input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: CUDA error",
        "OS: Ubuntu 22.04\nPython version: 3.10.12\nGCC version: 11.4.0",  # generic lines, no torch line
        "# driftboard\n\nTells a team whether their machines compute the same PyTorch numbers.",
        "\x00\x01\x02 binary \xff junk",
    ],
)
def test_text_that_is_not_a_report_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(ReportParseError) as err:
        parse_report(text)
    assert "\n" not in str(err.value) and str(err.value)


def test_too_long_text_is_refused() -> None:
    with pytest.raises(ReportParseError, match="too long"):
        parse_report("PyTorch version: 2.0.0\n" + "x" * 2_000_001)


def test_partial_report_imports_what_it_has_and_lists_the_rest() -> None:
    report = parse_report(
        "PyTorch version: 2.3.0+cu121\nIs debug build: False\nCUDA used to build PyTorch: 12.1\n"
        "ROCM used to build PyTorch: N/A\n\nOS: Ubuntu 22.04.3 LTS (x86_64)\n"
    )
    fp = report.fingerprint
    assert (fp["torch"]["version"], fp["torch"]["cuda"], fp["os"]["distro"]) == ("2.3.0+cu121", "12.1", "Ubuntu 22.04.3 LTS")
    assert "gpu.cuda_runtime" not in flat(report)  # "Is CUDA available" is missing, so unknown
    assert report.missing[:4] == ("GCC version", "Clang version", "CMake version", "Libc version")
    assert {"Python version", "GPU models and configuration", "CPU", "pip packages", "conda packages"} <= set(
        report.missing
    )
    assert fp["collect_env"]["missing"] == list(report.missing)


def test_second_report_in_one_paste_is_left_out_with_a_note() -> None:
    one = (DATA / "rocm.txt").read_text(encoding="utf-8")
    two = one + "\nand after the upgrade:\n\n" + (DATA / "arm_lscpu.txt").read_text(encoding="utf-8")
    report = parse_report(two)
    assert report.fingerprint["torch"]["version"] == "2.5.1+rocm6.2"
    assert report.fingerprint["collect_env"]["notes"][0].startswith("a second report starts at line")
    assert report.unknown_lines == ()  # the text between the two is after the first report


def test_bytes_and_odd_characters_are_tolerated() -> None:
    text = (DATA / "mig.txt").read_text(encoding="utf-8")
    report = parse_report(("\ufeff" + text.replace("PyTorch version: ", "PyTorch version:\u00a0")).encode())
    assert report.fingerprint["torch"]["version"] == "2.3.1+cu121"


def test_importing_the_parser_does_not_load_torch() -> None:
    code = (
        "import sys; from driftboard.core.collect_env import parse_report; "
        "parse_report('PyTorch version: 2.0.0\\nIs CUDA available: False'); "
        "sys.exit('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert result.returncode == 0


# --- robustness


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_parses_or_is_refused(text: str) -> None:
    try:
        report = parse_report(text)
    except ReportParseError:
        return
    assert report.total_lines >= report.mapped_lines >= 0


@needs_fixtures
@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(sorted(EXPECTED) or ["001.txt"]),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8),
    noise=st.text(max_size=40),
)
def test_damaged_fixtures_never_crash(name: str, cuts: list[int], noise: str) -> None:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    for cut in cuts:
        if lines:
            lines.insert(cut % len(lines), noise) if cut % 2 else lines.pop(cut % len(lines))
    try:
        report = parse_report("\n".join(lines))
    except ReportParseError:
        return
    json.dumps(report.fingerprint)


def test_expect_fields_cover_the_facts_the_issue_names() -> None:
    # torch version, OS, Python, CUDA build and runtime, GPU models and count, driver, cuDNN, CPU model
    assert {f.name for f in fields(Expect)} == {
        "torch", "system", "distro", "python", "cuda", "system_cuda", "runtime",
        "gpus", "count", "driver", "cudnn", "cpu",
    }  # fmt: skip
