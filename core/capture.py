"""Run the reference suite (and the team's own models) on this machine and build a run.

Each case runs on every available device and dtype, several times in one
process; whether those repeats were bitwise identical is recorded, since
run-to-run nondeterminism on one machine is a different finding from drift
between machines. Settings variants (one thread, oneDNN off, deterministic
algorithms, TF32 on GPU) change torch's numerics knobs so a single machine can
show which of its knobs change its numbers. The team's own models (a cases
file, ``--model``) run after the suite, through ``core/own_cases.py``, which is
the only place user code is imported.

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch

from driftboard.core import inputs, own_cases, suite, suite_training, training_run, truth_pass
from driftboard.core.case_spec import CaseSpec
from driftboard.core.compare.learned import repeat_spread
from driftboard.core.errors import DriftboardError
from driftboard.core.redact import redact_text
from driftboard.core.run import ArrayRef, CaseResult, MemoryArrays, Run
from driftboard.core.variants import CAPABILITY_ORDER, CPU_CAPABILITY_PREFIX, CUDA_KNOBS, parse_variant
from driftboard.core.version import __version__

# Variants applied inside this process, after torch is imported (any atom of core/variants.py, joined by +).
IN_PROCESS_VARIANTS = ("default", "threads-1", "onednn-off", "deterministic", "tf32-on", "tf32-off")
# ATEN_CPU_CAPABILITY is read when torch is imported: cpu-<capability> needs a fresh process.
_CAPABILITY_ORDER = CAPABILITY_ORDER

# A recorded layer output above this many elements keeps only its final state.
_LAYER_ELEMENTS = 4096

SUITES = ("all", "reference", "own")  # --suite: the reference suite, the team's own models, or both
LAYERS_CAP = 64 * 2**20  # --layers full keeps module outputs whole up to this many bytes per run
_BUNDLE_ROOM = 56 * 2**20  # raw array bytes a bundle can hold and stay under the reader's 64 MiB file limit


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
    suite: str = "all"  # all, reference or own
    models: tuple[str, ...] = ()  # --model path/to/file.py:factory or package.module:factory
    cases_file: str | None = None  # None: found by itself (own_cases.find_cases_file) unless discover is off
    discover_cases: bool = True
    own_specs: tuple[CaseSpec, ...] = ()  # cases given as objects (driftboard.capture_model)
    layers: str = "statistics"  # statistics, full or none
    layers_cap: int = LAYERS_CAP
    case_timeout: float | None = own_cases.DEFAULT_TIMEOUT
    truth: bool = True  # also run each float32/16/bf16 case in float64 on the CPU (core/truth_pass.py)
    steps: int = suite_training.DEFAULT_STEPS  # optimizer steps of each training case
    seed: int | None = training_run.DEFAULT_SEED  # seeds random, numpy, torch, CUDA before training; None: no seeding


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
    """Set torch's numerics knobs for a variant (atoms joined by ``+``, ``core/variants.py``); return the settings in force."""
    atoms = parse_variant(variant)
    for atom in atoms:
        if atom.knob == "cpu_capability":
            wanted = str(atom.value)
            if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() != wanted or cpu_capability() != wanted:
                raise DriftboardError(
                    f"variant {variant} needs ATEN_CPU_CAPABILITY={wanted} set before torch starts "
                    f"(this process runs {cpu_capability()}); use `driftboard capture --sweep`"
                )
        if atom.knob in CUDA_KNOBS and not torch.cuda.is_available():
            raise DriftboardError(f"variant {atom.text} needs a CUDA device")
    if deterministic:
        _apply_atom("deterministic", True)
    for atom in atoms:  # in order: a later atom overrides what "deterministic" set
        _apply_atom(atom.knob, atom.value)
    return settings_in_force(variant)


def _apply_atom(knob: str, value: Any) -> None:
    if knob == "deterministic":
        # cuBLAS needs a fixed workspace for deterministic results (PyTorch randomness notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif knob == "threads":
        torch.set_num_threads(int(value))
    elif knob == "onednn":
        torch.backends.mkldnn.enabled = bool(value)
    elif knob == "deterministic_algorithms":
        if value:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(bool(value))
    elif knob == "cudnn_deterministic":
        torch.backends.cudnn.deterministic = bool(value)
    elif knob == "cudnn_benchmark":
        torch.backends.cudnn.benchmark = bool(value)
    elif knob == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = bool(value)
        torch.backends.cudnn.allow_tf32 = bool(value)
    elif knob == "matmul_precision":
        torch.set_float32_matmul_precision(str(value))


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


def run_case(case: suite.Case, device: str, dtype: str, repeats: int, arrays: MemoryArrays,
             truth: bool = True) -> CaseResult:
    """Run one case ``repeats`` times; keep the first outputs and whether all repeats agreed; with ``truth``,
    its error against the same case in float64 on the CPU."""
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
    spread = repeat_spread(first_out, [out for out, _ in results[1:]], store_dtype) if repeats > 1 else None
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
        repeat_spread=spread,
        truth=truth_pass.suite_truth(prepared.model, prepared.inputs, first_out, dtype) if truth else None,
    )


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def plan(options: CaptureOptions, own: Sequence[CaseSpec] = ()) -> list[tuple[suite.Case, str, str]]:
    """(case, device, dtype) triples of the reference suite the capture will run, in suite order."""
    available = suite.devices()
    devices = list(options.devices or available)
    missing = [d for d in devices if d not in available]
    if missing:
        raise DriftboardError(f"device {missing[0]} is not available here (available: {', '.join(available)})")
    if options.suite not in SUITES:
        raise DriftboardError(f"unknown suite {options.suite!r}; expected one of {', '.join(SUITES)}")
    cases: tuple[Any, ...] = (*suite.CASES, *suite_training.TRAINING_CASES) if options.suite != "own" else ()
    if options.case_ids:
        known = [c.case_id for c in cases] + [spec.name for spec in own]
        unknown = [c for c in options.case_ids if c not in known]
        if unknown:
            raise DriftboardError(f"unknown case {unknown[0]!r}; known: {', '.join(known) or 'none'}")
        cases = tuple(c for c in cases if c.case_id in options.case_ids)
    return [(case, device, dtype) for device in devices for case in cases
            for dtype in (suite.dtypes_for(case, device) if isinstance(case, suite.Case)
                          else suite_training.dtypes_for(device))]


def own_specs(options: CaptureOptions) -> list[CaseSpec]:
    """The team's own cases this capture runs: imports the cases file and ``--model`` factories (user code)."""
    if options.layers not in own_cases.LAYER_MODES:
        raise DriftboardError(f"unknown layers mode {options.layers!r}; expected one of {', '.join(own_cases.LAYER_MODES)}")
    if options.suite == "reference":
        return []
    specs = list(options.own_specs)
    path = options.cases_file or (own_cases.find_cases_file() if options.discover_cases else None)
    if path is not None:
        specs += own_cases.load_cases_file(path)
    specs += [own_cases.load_model(text) for text in options.models]
    own_cases.check_names(specs, {case.case_id for case in (*suite.CASES, *suite_training.TRAINING_CASES)})
    if options.suite == "own" and not specs:
        raise DriftboardError(f"--suite own, but there is no {own_cases.CASES_FILE} here or at the repository root "
                              "and no --model: declare a case first (see examples/driftboard_cases.py)")
    return specs


def _stored_bytes(arrays: MemoryArrays) -> int:
    return sum(len(blob) for blob in arrays.blobs.values())


def capture(options: CaptureOptions = CaptureOptions(),
            progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None) -> tuple[Run, MemoryArrays]:
    """Capture this machine: settings, fingerprint, then every planned case."""
    from driftboard.core.fingerprint import collect_fingerprint, fingerprint_digest

    if options.repeats < 1:
        raise DriftboardError(f"repeats must be at least 1, got {options.repeats}")
    settings = apply_variant(options.variant, options.deterministic)
    settings["repeats"] = options.repeats
    if not 1 <= options.steps <= suite_training.MAX_STEPS:
        raise DriftboardError(f"steps must be between 1 and {suite_training.MAX_STEPS}, got {options.steps}")
    settings["seeding"] = training_run.recipe_in_force(options.seed)  # core/seeding.py says what it lacks
    own = own_specs(options)  # user code is imported here, after driftboard's own modules and torch
    suite_todo = plan(options, own)
    own = [spec for spec in own if not options.case_ids or spec.name in options.case_ids]
    todo: list[Any] = [*suite_todo, *((spec, "own", options.layers) for spec in own)]
    arrays = MemoryArrays()
    steps: Iterable[Any] = progress(todo, len(todo)) if progress else todo
    results: list[CaseResult] = []
    budget = None
    for item, device, dtype in steps:
        if isinstance(item, CaseSpec):
            budget = budget or own_cases.Budget(options.layers_cap, room_left=max(0, _BUNDLE_ROOM - _stored_bytes(arrays)))
            run_options = own_cases.OwnOptions(options.layers, options.repeats, options.case_timeout, options.devices,
                                               truth=options.truth, steps=options.steps, seed=options.seed)
            results += own_cases.run_case(item, run_options, arrays, budget, suite.devices())
        elif isinstance(item, suite_training.TrainingCase):
            results.append(training_run.run_case(item, device, dtype, options.steps, options.repeats, options.layers,
                                                 options.seed, arrays))
        else:
            results.append(run_case(item, device, dtype, options.repeats, arrays, truth=options.truth))
    cases = tuple(results)
    if any(case.training is not None for case in cases):
        settings["training"] = {"steps": options.steps, "intra_op_threads": training_run.TRAINING_THREADS}
    if own:
        settings["layers"] = {"mode": options.layers, "cap_bytes": options.layers_cap,
                              "cap_hit": bool(budget and budget.hit)}
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
        label=redact_text(options.label),  # the fingerprint's copies are redacted by collect_fingerprint
        tags=tuple(redact_text(tag) for tag in options.tags),
        note=redact_text(options.note),
        tool_version=__version__,
    )
    return run, arrays
