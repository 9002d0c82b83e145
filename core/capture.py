"""Run the reference suite on this machine and build a run.

Each case runs on every available device and dtype, several times in one
process; whether those repeats were bitwise identical is recorded, since
run-to-run nondeterminism on one machine is a different finding from drift
between machines. Settings variants (one thread, oneDNN off, deterministic
algorithms, TF32 on GPU) change torch's numerics knobs so a single machine can
show which of its knobs change its numbers.

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from driftboard.core import inputs, suite
from driftboard.core.errors import DriftboardError
from driftboard.core.run import ArrayRef, CaseResult, MemoryArrays, Run
from driftboard.core.version import __version__

# Variants applied inside this process, after torch is imported.
IN_PROCESS_VARIANTS = ("default", "threads-1", "onednn-off", "deterministic", "tf32-on", "tf32-off")
# ATEN_CPU_CAPABILITY is read when torch is imported: these need a fresh process.
CPU_CAPABILITY_PREFIX = "cpu-"
_CAPABILITY_ORDER = ("default", "avx2", "avx512")

# A recorded layer output above this many elements keeps only its final state.
_LAYER_ELEMENTS = 4096


@dataclass(frozen=True)
class CaptureOptions:
    variant: str = "default"
    repeats: int = 3
    deterministic: bool = False
    devices: tuple[str, ...] | None = None  # None: every available device
    case_ids: tuple[str, ...] | None = None  # None: the whole suite
    label: str = ""
    tags: tuple[str, ...] = ()
    note: str = ""
    anonymize: bool = False


def cpu_capability() -> str:
    return str(torch.backends.cpu.get_cpu_capability()).lower()


def sweep_variants() -> list[str]:
    """The variants a sweep runs on this machine, default first."""
    variants = ["default", "threads-1", "onednn-off", "deterministic"]
    current = cpu_capability()
    if current in _CAPABILITY_ORDER:
        variants += [CPU_CAPABILITY_PREFIX + c for c in _CAPABILITY_ORDER[: _CAPABILITY_ORDER.index(current)]]
    if torch.cuda.is_available():
        variants += ["tf32-on", "tf32-off"]
    return variants


def apply_variant(variant: str, deterministic: bool) -> dict[str, Any]:
    """Set torch's numerics knobs for a variant; return the settings in force."""
    if variant.startswith(CPU_CAPABILITY_PREFIX):
        wanted = variant[len(CPU_CAPABILITY_PREFIX):]
        if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() != wanted or cpu_capability() != wanted:
            raise DriftboardError(
                f"variant {variant} needs ATEN_CPU_CAPABILITY={wanted} set before torch starts "
                f"(this process runs {cpu_capability()}); use `driftboard capture --sweep`"
            )
    elif variant not in IN_PROCESS_VARIANTS:
        raise DriftboardError(f"unknown variant {variant!r}; expected one of {', '.join(IN_PROCESS_VARIANTS)} or cpu-<capability>")
    if variant == "threads-1":
        torch.set_num_threads(1)
    if variant == "onednn-off":
        torch.backends.mkldnn.enabled = False
    if variant == "deterministic":
        deterministic = True
    if variant in ("tf32-on", "tf32-off"):
        if not torch.cuda.is_available():
            raise DriftboardError(f"variant {variant} needs a CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = variant == "tf32-on"
        torch.backends.cudnn.allow_tf32 = variant == "tf32-on"
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic results (PyTorch randomness notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    return settings_in_force(variant)


def settings_in_force(variant: str) -> dict[str, Any]:
    return {
        "variant": variant,
        "intra_op_threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "cpu_capability": cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }


# ------------------------------------------------------------- running one case


def to_numpy(tensor: torch.Tensor, dtype: str) -> np.ndarray:
    """Exact stored form of a tensor: bfloat16 as its uint16 bit pattern."""
    tensor = tensor.detach().to("cpu").contiguous()
    if dtype == "bfloat16":
        return tensor.view(torch.int16).numpy().view(np.uint16).copy()
    return tensor.numpy().copy()


def _layer_tensor(output: Any) -> torch.Tensor:
    """The part of a submodule's output worth keeping; an LSTM's large sequence keeps h_n."""
    if isinstance(output, tuple):
        sequence, (h_n, _c_n) = output
        return sequence if sequence.numel() <= _LAYER_ELEMENTS else h_n
    return output


def _forward_once(prepared: suite.Prepared, dtype: str) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    layers: list[tuple[str, np.ndarray]] = []
    handles = []
    if prepared.model is not None:
        modules = dict(prepared.model.named_modules())
        for name in prepared.hooks:
            def hook(_module: Any, _args: Any, output: Any, name: str = name) -> None:
                layers.append((name, to_numpy(_layer_tensor(output), dtype)))

            handles.append(modules[name].register_forward_hook(hook))
    try:
        with torch.no_grad():
            output = prepared.forward()
        if output.device.type == "cuda":
            torch.cuda.synchronize()
        return to_numpy(output, dtype), layers
    finally:
        for handle in handles:
            handle.remove()


def run_case(case: suite.Case, device: str, dtype: str, repeats: int, arrays: MemoryArrays) -> CaseResult:
    """Run one case ``repeats`` times; keep the first outputs and whether all repeats agreed."""
    try:
        prepared = case.prepare(torch.device(device), suite.TORCH_DTYPES[dtype])
        results = []
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            results.append(_forward_once(prepared, dtype))
            seconds.append(time.perf_counter() - start)
    except Exception as exc:  # a case that cannot run here is a finding, not a crash
        failed = inputs.digest([])
        return CaseResult(case.case_id, device, dtype, failed, failed, None, repeats=repeats,
                          error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    first_out, first_layers = results[0]
    identical = all(_same(first_out, out) and len(layers) == len(first_layers)
                    and all(_same(a, b) for (_, a), (_, b) in zip(first_layers, layers))
                    for out, layers in results[1:])
    store_dtype = dtype if first_out.dtype.kind == "f" or dtype == "bfloat16" else str(first_out.dtype)
    layer_refs: tuple[tuple[str, ArrayRef], ...] = tuple((name, arrays.add(a, store_dtype)) for name, a in first_layers)
    return CaseResult(
        case_id=case.case_id,
        device=device,
        dtype=dtype,
        input_digest=prepared.input_digest,
        weight_digest=prepared.weight_digest,
        output=arrays.add(first_out, store_dtype),
        layers=layer_refs,
        time_axis=case.time_axis,
        repeats=repeats,
        repeat_identical=identical,
        seconds=statistics.median(seconds),
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def plan(options: CaptureOptions) -> list[tuple[suite.Case, str, str]]:
    """(case, device, dtype) triples the capture will run, in suite order."""
    available = suite.devices()
    devices = list(options.devices or available)
    missing = [d for d in devices if d not in available]
    if missing:
        raise DriftboardError(f"device {missing[0]} is not available here (available: {', '.join(available)})")
    cases = suite.CASES
    if options.case_ids:
        unknown = [c for c in options.case_ids if c not in {case.case_id for case in suite.CASES}]
        if unknown:
            raise DriftboardError(f"unknown case {unknown[0]!r}; known: {', '.join(c.case_id for c in suite.CASES)}")
        cases = tuple(c for c in suite.CASES if c.case_id in options.case_ids)
    return [(case, device, dtype) for device in devices for case in cases for dtype in suite.dtypes_for(case, device)]


def capture(options: CaptureOptions = CaptureOptions(),
            progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None) -> tuple[Run, MemoryArrays]:
    """Capture this machine: settings, fingerprint, then every planned case."""
    from driftboard.core.fingerprint import collect_fingerprint, fingerprint_digest

    if options.repeats < 1:
        raise DriftboardError(f"repeats must be at least 1, got {options.repeats}")
    settings = apply_variant(options.variant, options.deterministic)
    settings["repeats"] = options.repeats
    todo = plan(options)
    arrays = MemoryArrays()
    steps: Iterable[Any] = progress(todo, len(todo)) if progress else todo
    cases = tuple(run_case(case, device, dtype, options.repeats, arrays) for case, device, dtype in steps)
    fingerprint = collect_fingerprint(label=options.label, tags=options.tags, note=options.note,
                                      anonymize=options.anonymize)
    now = datetime.now(UTC)
    run = Run(
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}",
        created_at=now.isoformat(timespec="seconds"),
        suite_id=suite.SUITE_ID,
        suite_version=suite.SUITE_VERSION,
        variant=options.variant,
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint_digest(fingerprint),
        cases=cases,
        settings=settings,
        label=options.label,
        tags=options.tags,
        note=options.note,
        tool_version=__version__,
    )
    return run, arrays
