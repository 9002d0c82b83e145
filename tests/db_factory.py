"""Synthetic runs and bundles shaped like the real reference suite, without torch.

The database tests and ``benchmarks/bench_store.py`` need many realistic
bundles fast: the cases, shapes, dtypes, time axes and layers of
``core/suite.py`` (ten cases; float32 and float64 on CPU, four dtypes more on
CUDA; ``linear_1024`` gives the 64×1024 output), a fingerprint of realistic
size and content, and arrays from a fixed numpy generator. Machines that agree
produce byte-identical arrays; ``drift`` names the cases whose outputs move by
one ULP in a few elements, as real drift does.

``push_worker`` is the body of the concurrent writers (forked, so they start
without paying for imports again); run as a script,
``python tests/db_factory.py hang URL MARKER BUNDLE`` is the writer that gets
killed in the middle of its transaction.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from driftboard.core.bundle import bundle_bytes, manifest_of
from driftboard.core.run import DTYPES, ArrayRef, CaseResult, MemoryArrays, Run, encode_array

SUITE_ID = "driftboard-reference"
SUITE_VERSION = 1
BASE_TIME = datetime(2026, 1, 5, 9, 0, 0, tzinfo=UTC)

# case id -> (output shape, layers (name, shape), time axis, float dtypes)
SUITE: dict[str, tuple[tuple[int, ...], tuple[tuple[str, tuple[int, ...]], ...], int | None, bool]] = {
    "lstm_seq_regression": ((10, 1, 1), (("lstm", (10, 1, 10)),), 0, True),
    "linear_10_5": ((1, 5), (), None, True),
    "lstm_batch_first": ((64, 30, 5), (("lstm", (64, 20)),), 1, True),
    "lstm_2layer": ((64, 30, 5), (("lstm", (64, 20)),), 1, True),
    "lstm_cell_loop": ((64, 30, 5), (), 1, True),
    "mlp_kaiming": ((64, 5), (("fc1", (64, 64)), ("fc2", (64, 64)), ("out", (64, 5))), None, True),
    "linear_1024": ((64, 1024), (), None, True),
    "numpy_f64_input": ((10, 1, 1), (("lstm", (10, 1, 10)),), 0, True),
    "rng_manual_seed_init": ((691,), (), None, False),
    "rng_randn": ((4146,), (), None, False),
}
DEVICE_DTYPES = {"cpu": ("float32", "float64"), "cuda": ("float32", "float64", "float16", "bfloat16")}

_CONFIG = (
    "PyTorch built with:\n  - GCC 13.3\n  - C++ Version: 202002\n"
    "  - Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture\n"
    "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)\n"
    "  - OpenMP 201511 (a.k.a. OpenMP 4.5)\n  - LAPACK is enabled (usually provided by MKL)\n"
    "  - NNPACK is enabled\n  - CPU capability usage: AVX512\n  - Build settings: "
)
_BUILD = {
    "BLAS_INFO": "mkl", "BUILD_TYPE": "Release", "COMMIT_SHA": "cf30153c4c131c8164ee7798e5022d810682e2cb",
    "CUDA_FLAGS": "-DLIBCUDACXX_ENABLE_SIMPLIFIED_COMPLEX_OPERATIONS -Xfatbin -compress-all -Wno-deprecated-gpu-targets "
    "--expt-extended-lambda -DCUB_WRAPPED_NAMESPACE=at_cuda_detail -DCUDA_HAS_FP16=1 -D__CUDA_NO_HALF_OPERATORS__",
    "CXX_COMPILER": "/opt/rh/gcc-toolset-13/root/usr/bin/c++",
    "CXX_FLAGS": "-fvisibility-inlines-hidden -DUSE_PTHREADPOOL -DNDEBUG -DUSE_KINETO -DUSE_FBGEMM "
    "-DUSE_PYTORCH_QNNPACK -O2 -fPIC -Wall -Wextra -Werror=return-type -Werror=non-virtual-dtor "
    "-Werror=range-loop-construct -Werror=bool-operation -Wnarrowing -Wno-missing-field-initializers "
    "-Wno-unknown-pragmas -Wno-unused-parameter -Wno-strict-overflow -Wno-strict-aliasing -fno-math-errno",
    "LAPACK_INFO": "mkl", "PERF_WITH_AVX": "1", "PERF_WITH_AVX2": "1", "USE_CUDNN": "OFF", "USE_GLOO": "ON",
    "USE_MKL": "ON", "USE_MKLDNN": "ON", "USE_MPI": "OFF", "USE_NCCL": "OFF", "USE_NNPACK": "ON",
    "USE_OPENMP": "ON", "USE_ROCM": "OFF", "USE_XPU": "OFF",
}
_PARALLEL = (
    "ATen/Parallel:\n\tat::get_num_threads() : {threads}\n\tat::get_num_interop_threads() : {threads}\n"
    "OpenMP 201511 (a.k.a. OpenMP 4.5)\n\tomp_get_max_threads() : {threads}\n"
    "Intel(R) oneAPI Math Kernel Library Version 2024.2-Product Build 20240605 for Intel(R) 64 architecture\n"
    "\tmkl_get_max_threads() : {threads}\nIntel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd69a3df32adcccb623b12cd7baa22)\n"
    "std::thread::hardware_concurrency() : {threads}\nEnvironment variables:\n\tOMP_NUM_THREADS : [not set]\n"
    "\tMKL_NUM_THREADS : [not set]\nATen parallel backend: OpenMP\n"
)


def machine_key(machine: int) -> str:
    return hashlib.sha256(f"machine-{machine}".encode()).hexdigest()


def fingerprint(
    machine: int = 0,
    *,
    torch_version: str = "2.5.1",
    cuda: str | None = None,
    driver: str | None = None,
    gpu: str | None = None,
    cpu_model: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
    cpu_capability: str = "AVX512",
    threads: int = 16,
    kernel: str = "6.1.0-27-amd64",
) -> dict[str, Any]:
    """A fingerprint of the size and shape capture records (about 5 kB of JSON)."""
    devices = [] if gpu is None else [{
        "name": gpu, "compute_capability": "8.0", "multiprocessors": 108, "mig": False, "ecc": True,
        "memory_mb": 81920, "uuid": f"GPU-{machine_key(machine)[:8]}-0000-0000-0000-{machine:012d}",
    }]
    settings = " ".join(f"{k}={v}," for k, v in _BUILD.items())
    return {
        "fingerprint_version": 1,
        "torch": {
            "version": torch_version, "git_version": "cf30153c4c131c8164ee7798e5022d810682e2cb", "debug": False,
            "cuda": cuda, "hip": None, "cxx11_abi": True, "cpu_capability": cpu_capability, "blas": "mkl",
            "lapack": "mkl", "mkl": "2024.2", "mkldnn": "v3.12.0", "openmp": "201511",
            "parallel_backend": "OpenMP", "build_settings": dict(_BUILD, TORCH_VERSION=torch_version),
            "config": _CONFIG + settings + f" TORCH_VERSION={torch_version}, USE_CUDA={int(cuda is not None)},\n",
            "parallel_info": _PARALLEL.format(threads=threads),
        },
        "gpu": {
            "count": len(devices), "devices": devices, "driver": driver, "cuda_driver": cuda, "cuda_runtime": cuda,
            "cudnn": 90100 if cuda else None, "nccl": "2.21.5" if cuda else None, "rocm": None, "mps": False,
            "xpu": False, "system_cuda": None, "system_cudnn": None, "source": "nvml" if devices else "none",
        },
        "cpu": {
            "vendor": "GenuineIntel", "model": cpu_model, "family": 6, "model_number": 106, "stepping": 6,
            "isa": {"sse4_2": True, "avx": True, "avx2": True, "fma": True, "avx512f": True, "avx512_bf16": False,
                    "avx512_vnni": True, "amx_tile": False, "f16c": True},
            "arch": "x86_64", "cores": threads // 2, "threads": threads,
        },
        "numerics": {
            "intra_op_threads": threads, "inter_op_threads": threads, "deterministic_algorithms": False,
            "deterministic_warn_only": False, "mkldnn_enabled": True, "cudnn_enabled": True,
            "cudnn_deterministic": False, "cudnn_benchmark": False, "cudnn_allow_tf32": True,
            "matmul_allow_tf32": False, "matmul_fp16_reduced": True, "matmul_bf16_reduced": True,
            "float32_matmul_precision": "highest", "fp32_precision": {"generic": "ieee", "cuda.matmul": "ieee",
                                                                       "cudnn.conv": "tf32", "cudnn.rnn": "tf32"},
            "default_dtype": "torch.float32", "flush_denormal": False,
        },
        "env": {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None, "CUBLAS_WORKSPACE_CONFIG": None,
                "CUDA_VISIBLE_DEVICES": None, "NVIDIA_TF32_OVERRIDE": None},
        "numpy": {"version": "2.1.3", "blas": "scipy-openblas 0.3.27"},
        "packages": {"torch": torch_version, "numpy": "2.1.3", "triton": "3.1.0" if cuda else None,
                     "nvidia-cublas-cu12": "12.4.5.8" if cuda else None},
        "python": {"version": "3.11.7", "implementation": "CPython", "compiler": "GCC 12.2.0",
                   "executable": f"/home/user{machine}/venv/bin/python"},
        "os": {"system": "Linux", "libc": "glibc 2.36", "release": kernel, "distro": "Debian GNU/Linux 12 (bookworm)",
               "version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)", "machine": "x86_64",
               "container": "none", "wsl": False},
        "identity": {"hostname": f"host-{machine:04d}", "machine_id": machine_key(machine), "user": f"user{machine}",
                     "label": "", "tags": [], "note": "", "anonymized": False},
    }


def fingerprint_digest(fp: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@cache
def _values(case_id: str, name: str, shape: tuple[int, ...], dtype: str, drift: int) -> tuple[bytes, str]:
    """Raw bytes of one array: fixed values, with ``drift`` > 0 moving a few elements by one ULP."""
    seed = int.from_bytes(hashlib.sha256(f"{case_id}/{name}".encode()).digest()[:4], "little")
    values = np.random.RandomState(seed).standard_normal(shape) * 0.5
    array = values.astype(DTYPES[dtype])
    if dtype == "bfloat16":  # the top half of each float32: bfloat16's bits
        array = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    if drift and array.size and dtype in ("float16", "float32", "float64"):
        flat = array.reshape(-1).copy()
        for k in range(1 + drift % 5):
            i = (drift * 7919 + k * 104729) % flat.size
            flat[i] = np.nextafter(flat[i], np.inf, dtype=flat.dtype)
        array = flat.reshape(shape)
    ref, data = encode_array(array, dtype)
    return data, ref.sha256


def make_run(
    machine: int = 0,
    seq: int = 0,
    *,
    devices: tuple[str, ...] = ("cpu",),
    drift: dict[str, int] | None = None,
    label: str = "",
    tags: tuple[str, ...] = (),
    note: str = "",
    variant: str = "default",
    created_at: datetime | None = None,
    imported: bool = False,
    run_id: str | None = None,
    seconds: float | None = None,
    error_case: str | None = None,
    fp: dict[str, Any] | None = None,
    **fp_options: Any,
) -> tuple[Run, MemoryArrays]:
    """Run ``seq`` of machine ``machine``; ``drift`` maps case ids to a drift number (0: agrees)."""
    drift = drift or {}
    arrays = MemoryArrays()
    cases: list[CaseResult] = []
    if not imported:
        for device in devices:
            for case_id, (shape, layers, time_axis, float_dtypes) in SUITE.items():
                for dtype in DEVICE_DTYPES[device] if float_dtypes else ("float32",):
                    cases.append(_case(arrays, case_id, device, dtype, shape, layers, time_axis,
                                       drift.get(case_id, 0), machine, seq, seconds, error_case))
    if fp is None:
        fp = fingerprint(machine, **fp_options)
    when = created_at or BASE_TIME + timedelta(hours=seq, minutes=machine % 60)
    run = Run(
        run_id=run_id or f"m{machine:04d}-r{seq:05d}-{variant}",
        created_at=when.isoformat(),
        suite_id=SUITE_ID,
        suite_version=SUITE_VERSION,
        variant=variant,
        fingerprint=fp,
        fingerprint_digest=fingerprint_digest(fp),
        cases=tuple(cases),
        settings={"variant": variant, "repeats": 3, "deterministic": False},
        label=label,
        tags=tags,
        note=note,
        tool_version="0.1.0",
        imported=imported,
    )
    return run, arrays


def _case(arrays: MemoryArrays, case_id: str, device: str, dtype: str, shape: tuple[int, ...],
          layers: tuple[tuple[str, tuple[int, ...]], ...], time_axis: int | None, drift: int,
          machine: int, seq: int, seconds: float | None, error_case: str | None) -> CaseResult:
    key = f"{case_id}/{device}/{dtype}"
    if case_id == error_case:
        return CaseResult(case_id, device, dtype, _digest(key + "/in"), _digest(key + "/w"), None,
                          repeats=3, error="RuntimeError: not supported on this device")
    refs = []
    for name, layer_shape in (("output", shape), *layers):
        data, sha = _values(key, name, layer_shape, dtype, drift)
        arrays.blobs[sha] = data
        refs.append((name, ArrayRef(sha, dtype, tuple(layer_shape))))
    return CaseResult(
        case_id=case_id, device=device, dtype=dtype,
        input_digest=_digest(key + "/input"), weight_digest=_digest(key + "/weights"),
        output=refs[0][1], layers=tuple(refs[1:]), time_axis=time_axis, repeats=3,
        repeat_identical=True,
        seconds=seconds if seconds is not None else round(0.001 + ((machine * 31 + seq * 17) % 97) / 1e4, 6),
    )


def make_bundle(*args: Any, **kwargs: Any) -> bytes:
    run, arrays = make_run(*args, **kwargs)
    return bundle_bytes(run, arrays)


def write_bundle_file(directory: Path, *args: Any, **kwargs: Any) -> Path:
    run, arrays = make_run(*args, **kwargs)
    path = Path(directory) / f"{run.run_id}.driftboard"
    path.write_bytes(bundle_bytes(run, arrays))
    return path


def manifest_digest(run: Run) -> str:
    """The bundle digest ``read_bundle`` would report for ``run``."""
    text = json.dumps(manifest_of(run), sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- worker processes


def push_worker(url: str, files: list[str], ready: Any, go: Any, results: Any) -> None:
    """A forked process: open the store, say ready, wait for ``go``, push every file, report, exit."""
    import os

    from driftboard.db.store import Store

    code = 0
    try:
        store = Store(url)
        ready.put(os.getpid())
        go.wait(60)
        for name in files:
            result = store.ingest(Path(name))
            results.put((result.run_id, result.created))
        store.close()
    except BaseException as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        code = 1
    finally:
        for queue in (ready, results):  # flush the queues' feeder threads before leaving
            queue.close()
            queue.join_thread()
        os._exit(code)  # never run the parent's (pytest's) exit handlers


def _worker(argv: list[str]) -> int:
    import time

    from driftboard.db.store import Store

    command, url, flag, *files = argv
    store = Store(url)
    if command == "hang":  # stop for good inside the ingest transaction, after writing rows
        import driftboard.db.store.ingest as store_module

        original = store_module._insert_case_results

        def hang(*args: Any, **kwargs: Any) -> None:
            original(*args, **kwargs)
            Path(flag).write_text("inside")
            time.sleep(600)

        store_module._insert_case_results = hang
        store.ingest(Path(files[0]))
        return 1
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))


def copy_sqlite(source: Path, directory: Path) -> str:
    """A private copy of a seeded SQLite database, with its WAL files; returns its URL."""
    import shutil

    copy = Path(directory) / "driftboard.sqlite"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
    return f"sqlite:///{copy}"
