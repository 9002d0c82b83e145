"""The GPU collector against faked NVML and torch.cuda: a 2xA100 node, MIG, no driver, ROCm, failures."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from driftboard.core import fields
from driftboard.core.fingerprint.gpu import collect_gpu, system_cuda, system_cudnn
from driftboard.core.fingerprint.nvml import cuda_version
from driftboard.core.fingerprint.versions import cudnn_version

torch = pytest.importorskip("torch")

GiB = 2**30
A100_UUIDS = ("GPU-1b2c3d4e-0000-1111-2222-333344445555", "GPU-9f8e7d6c-6666-7777-8888-999900001111")
NO_SYSTEM = lambda: (None, None)  # noqa: E731 - never run nvcc in these tests


class FakeNVMLError(Exception):
    def __init__(self, value: int, message: str) -> None:
        super().__init__(message)
        self.value = value


class FakeNVML:
    """Answers like pynvml on a node with the given devices (dicts of what NVML reports)."""

    def __init__(self, devices: list[dict[str, Any]], driver: str = "550.54.15", cuda: int = 12040) -> None:
        self.devices, self.driver, self.cuda = devices, driver, cuda
        self.shutdown = False

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        self.shutdown = True

    def nvmlSystemGetNVMLVersion(self) -> str:
        return "12." + self.driver

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return self.driver.encode()  # older pynvml returns bytes

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return self.cuda

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.devices[index]

    def _answer(self, handle: dict[str, Any], key: str) -> Any:
        value = handle[key]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> str:
        return self._answer(handle, "name")

    def nvmlDeviceGetCudaComputeCapability(self, handle: dict[str, Any]) -> tuple[int, int]:
        return self._answer(handle, "cc")

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(total=self._answer(handle, "memory"), free=0, used=0)

    def nvmlDeviceGetUUID(self, handle: dict[str, Any]) -> str:
        return self._answer(handle, "uuid")

    def nvmlDeviceGetMigMode(self, handle: dict[str, Any]) -> list[int]:
        return self._answer(handle, "mig")

    def nvmlDeviceGetEccMode(self, handle: dict[str, Any]) -> list[int]:
        return self._answer(handle, "ecc")


class NoDriverNVML:
    def nvmlInit(self) -> None:
        raise FakeNVMLError(12, "NVML Shared Library Not Found")


def a100(uuid: str, **overrides: Any) -> dict[str, Any]:
    device = {
        "name": "NVIDIA A100-SXM4-80GB",
        "cc": (8, 0),
        "memory": 80 * GiB,
        "uuid": uuid,
        "mig": [0, 0],
        "ecc": [1, 1],
    }
    return {**device, **overrides}


def fake_cuda(props: list[SimpleNamespace], available: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        is_available=lambda: available,
        device_count=lambda: len(props),
        get_device_properties=lambda i: props[i],
        nccl=SimpleNamespace(version=lambda: (2, 21, 5)),
    )


def a100_props(uuid: str, sms: int = 108, name: str = "NVIDIA A100-SXM4-80GB") -> SimpleNamespace:
    # torch prints the UUID without NVML's "GPU-" prefix.
    return SimpleNamespace(
        name=name, major=8, minor=0, total_memory=80 * GiB, multi_processor_count=sms, uuid=uuid.removeprefix("GPU-")
    )


def fake_torch(
    cuda: Any, cuda_version: str | None = "12.4", hip: str | None = None, cudnn: int | None = 90100, mps: bool = False
) -> SimpleNamespace:
    return SimpleNamespace(
        version=SimpleNamespace(cuda=cuda_version, hip=hip),
        backends=SimpleNamespace(
            cudnn=SimpleNamespace(version=lambda: cudnn), mps=SimpleNamespace(is_available=lambda: mps)
        ),
        cuda=cuda,
        xpu=None,
    )


def test_two_a100_node() -> None:
    nvml = FakeNVML([a100(A100_UUIDS[0]), a100(A100_UUIDS[1])])
    cuda = fake_cuda([a100_props(A100_UUIDS[0]), a100_props(A100_UUIDS[1])])
    gpu = collect_gpu(nvml=nvml, torch=fake_torch(cuda), system=lambda: ("12.4", "9.1.0"))
    assert gpu["source"] == "nvml" and gpu["count"] == 2 and nvml.shutdown
    assert gpu["driver"] == "550.54.15" and gpu["cuda_driver"] == "12.4" and gpu["nvml"] == "12.550.54.15"
    assert gpu["cuda_available"] is True and gpu["cuda_runtime"] == "12.4"
    assert gpu["cudnn"] == 90100 and gpu["nccl"] == "2.21.5" and gpu["rocm"] is None  # torch's integer form
    assert gpu["mps"] is False and gpu["xpu"] is False
    assert gpu["system_mismatch"] is False
    for device, uuid in zip(gpu["devices"], A100_UUIDS, strict=True):
        assert device == {
            "name": "NVIDIA A100-SXM4-80GB",
            "compute_capability": "8.0",
            "memory_mb": 81920,
            "uuid": uuid,
            "multiprocessors": 108,
            "mig": False,
            "ecc": True,
        }
    assert all(fields.field_for(key) for key in fields.flatten({"gpu": gpu}))


def test_multiprocessors_are_matched_by_uuid_not_position() -> None:
    h100_uuid = "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    nvml = FakeNVML([a100(A100_UUIDS[0]), a100(h100_uuid, name="NVIDIA H100 80GB HBM3", cc=(9, 0))])
    # CUDA_DEVICE_ORDER=FASTEST_FIRST: torch lists the H100 first.
    cuda = fake_cuda([a100_props(h100_uuid, sms=132, name="NVIDIA H100 80GB HBM3"), a100_props(A100_UUIDS[0])])
    gpu = collect_gpu(nvml=nvml, torch=fake_torch(cuda), system=NO_SYSTEM)
    assert [(d["name"], d["compute_capability"], d["multiprocessors"]) for d in gpu["devices"]] == [
        ("NVIDIA A100-SXM4-80GB", "8.0", 108),
        ("NVIDIA H100 80GB HBM3", "9.0", 132),
    ]


def test_mig_enabled_and_ecc_unsupported() -> None:
    not_supported = FakeNVMLError(3, "Not Supported")
    nvml = FakeNVML([a100(A100_UUIDS[0], mig=[1, 1], ecc=not_supported), a100(A100_UUIDS[1], mig=not_supported)])
    # torch sees one MIG slice (its UUID is the slice's) with 14 SMs; two NVML devices, one torch device.
    cuda = fake_cuda([a100_props("MIG-0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", sms=14)])
    gpu = collect_gpu(nvml=nvml, torch=fake_torch(cuda), system=NO_SYSTEM)
    first, second = gpu["devices"]
    assert first["mig"] is True and first["ecc"] is None
    assert second["mig"] is False and second["ecc"] is True
    assert first["multiprocessors"] is None  # no UUID match and counts differ: unknown, not guessed


def test_one_nvml_field_failing_keeps_the_device() -> None:
    nvml = FakeNVML([{**a100(A100_UUIDS[0]), "uuid": FakeNVMLError(999, "Unknown Error")}])
    gpu = collect_gpu(nvml=nvml, torch=fake_torch(fake_cuda([a100_props(A100_UUIDS[0])])), system=NO_SYSTEM)
    device = gpu["devices"][0]
    assert device["uuid"] == {"error": "FakeNVMLError: Unknown Error"}
    assert device["name"] == "NVIDIA A100-SXM4-80GB" and device["multiprocessors"] == 108  # matched by position


def test_no_driver_nvml_raises_torch_cuda_fallback() -> None:
    cuda = fake_cuda([a100_props(A100_UUIDS[0])])
    gpu = collect_gpu(nvml=NoDriverNVML(), torch=fake_torch(cuda), system=NO_SYSTEM)
    assert gpu["nvml"] == {"error": "FakeNVMLError: NVML Shared Library Not Found"}
    assert gpu["source"] == "torch.cuda" and gpu["count"] == 1
    assert gpu["devices"][0] == {
        "name": "NVIDIA A100-SXM4-80GB",
        "compute_capability": "8.0",
        "memory_mb": 81920,
        "uuid": A100_UUIDS[0],
        "multiprocessors": 108,
        "mig": None,
        "ecc": None,
    }
    assert gpu["driver"] is None and gpu["cuda_runtime"] == "12.4"


def test_absurd_device_count_is_refused_not_looped_over() -> None:
    class HugeNVML(FakeNVML):
        def nvmlDeviceGetCount(self) -> int:
            return 2**31 - 1

    nvml = HugeNVML([a100(A100_UUIDS[0])])
    gpu = collect_gpu(nvml=nvml, torch=fake_torch(fake_cuda([a100_props(A100_UUIDS[0])])), system=NO_SYSTEM)
    assert "2147483647 devices" in gpu["nvml"]["error"] and nvml.shutdown
    assert gpu["source"] == "torch.cuda" and gpu["count"] == 1


def test_no_driver_and_torch_cuda_raising() -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA driver initialization failed")

    cuda = SimpleNamespace(is_available=broken)
    gpu = collect_gpu(nvml=NoDriverNVML(), torch=fake_torch(cuda), system=NO_SYSTEM)
    assert gpu["source"] == "none" and gpu["count"] == 0 and gpu["devices"] == []
    assert gpu["cuda_available"] == {"error": "RuntimeError: CUDA driver initialization failed"}
    assert gpu["nvml"]["error"].startswith("FakeNVMLError")
    assert gpu["cuda_runtime"] is None and gpu["nccl"] is None
    assert gpu["cudnn"] == 90100  # what torch loaded still answers
    assert gpu["mps"] is False


def test_nvml_works_but_torch_cuda_raises() -> None:
    def broken() -> bool:
        raise RuntimeError("CUDA error: no kernel image")

    gpu = collect_gpu(
        nvml=FakeNVML([a100(A100_UUIDS[0])]), torch=fake_torch(SimpleNamespace(is_available=broken)), system=NO_SYSTEM
    )
    assert gpu["source"] == "nvml" and gpu["devices"][0]["name"] == "NVIDIA A100-SXM4-80GB"
    assert gpu["devices"][0]["multiprocessors"] is None
    assert gpu["cuda_available"] == {"error": "RuntimeError: CUDA error: no kernel image"}


def test_cpu_torch_on_a_gpu_node_flags_the_system_cuda() -> None:
    cuda = fake_cuda([], available=False)
    gpu = collect_gpu(
        nvml=FakeNVML([a100(A100_UUIDS[0])]),
        torch=fake_torch(cuda, cuda_version=None, cudnn=None),
        system=lambda: ("12.4", "9.1.0"),
    )
    assert gpu["source"] == "nvml" and gpu["count"] == 1 and gpu["cuda_available"] is False
    assert gpu["cuda_runtime"] is None and gpu["cudnn"] is None
    assert gpu["system_cuda"] == "12.4" and gpu["system_mismatch"] is True


@pytest.mark.parametrize(
    ("system", "mismatch"),
    [(("11.8", None), True), (("12.4", "8.9.7"), True), (("12.4", "9.1.2"), False), ((None, None), False)],
)
def test_system_cuda_and_cudnn_against_what_torch_loaded(system: tuple, mismatch: bool) -> None:
    cuda = fake_cuda([a100_props(A100_UUIDS[0])])
    gpu = collect_gpu(nvml=FakeNVML([a100(A100_UUIDS[0])]), torch=fake_torch(cuda), system=lambda: system)
    assert gpu["cuda_runtime"] == "12.4" and gpu["cudnn"] == 90100
    assert gpu["system_mismatch"] is mismatch


def test_rocm() -> None:
    props = SimpleNamespace(
        name="AMD Instinct MI250X",
        major=9,
        minor=0,
        total_memory=64 * GiB,
        multi_processor_count=110,
        uuid="GPU-5a5a5a5a-0000-0000-0000-000000000000",
    )
    gpu = collect_gpu(
        nvml=NoDriverNVML(), torch=fake_torch(fake_cuda([props]), cuda_version=None, hip="6.2.41133"), system=NO_SYSTEM
    )
    assert gpu["source"] == "torch.cuda" and gpu["rocm"] == "6.2.41133" and gpu["cuda_runtime"] is None
    assert gpu["devices"][0]["multiprocessors"] == 110


def test_this_machine() -> None:
    gpu = collect_gpu()
    assert gpu["cuda_available"] == torch.cuda.is_available()
    assert gpu["mps"] == torch.backends.mps.is_available()
    if not torch.cuda.is_available():
        assert gpu["cuda_runtime"] is None
    assert gpu["count"] == len(gpu["devices"])


def test_versions() -> None:
    assert cuda_version(12040) == "12.4" and cuda_version(11080) == "11.8" and cuda_version(13000) == "13.0"
    assert cudnn_version(90100) == "9.1.0" and cudnn_version(8902) == "8.9.2" and cudnn_version(91002) == "9.10.2"


def test_system_cuda_reads_nvcc_with_a_timeout() -> None:
    nvcc_out = "Cuda compilation tools, release 12.4, V12.4.131\nBuild cuda_12.4.r12.4/compiler.34097967_0\n"
    assert system_cuda(which=lambda name: None) is None
    assert system_cuda(which=lambda name: "/usr/bin/nvcc", runner=lambda argv: nvcc_out) == "12.4"

    def hangs(argv: list[str]) -> str:
        raise subprocess.TimeoutExpired(argv, 2.0)

    with pytest.raises(subprocess.TimeoutExpired):
        system_cuda(which=lambda name: "/usr/bin/nvcc", runner=hangs)


def test_system_cudnn_from_library_names(tmp_path: Path) -> None:
    for name in ("libcudnn.so.8", "libcudnn.so.8.9.7", "libcudnn.so.9.1.0", "libcudnn_ops.so.9.1.0"):
        (tmp_path / name).touch()
    assert system_cudnn([str(tmp_path)]) == "9.1.0"
    assert system_cudnn([str(tmp_path / "missing")]) is None
