"""Synthetic runs for comparison tests and benchmarks: small arrays, no torch.

``make_run`` builds a ``Run`` over a ``MemoryArrays``; ``default_suite`` builds
cases shaped like the reference suite (LSTM sequences, linear layers including
a 64x1024 output, RNG probes) in several dtypes; ``fingerprint`` builds a
realistic nested fingerprint with dotted-key overrides; ``bump_ulps`` moves
stored values by whole ULPs, so drift in tests is exact and known.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from driftboard.core.run import ArrayRef, CaseResult, MemoryArrays, Run

FAMILY_IDS = (
    "lstm_seq_regression",
    "lstm_batch_first",
    "lstm_2layer",
    "lstm_cell_loop",
    "linear_10_5",
    "mlp_kaiming",
    "linear_1024",
    "numpy_f64_input",
    "rng_manual_seed_init",
    "rng_randn",
)
STORAGE = {"float16": np.float16, "bfloat16": np.uint16, "float32": np.float32, "float64": np.float64}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def store(values: np.ndarray, dtype: str) -> np.ndarray:
    """Float values as stored for ``dtype`` (bfloat16: the high 16 bits of float32, truncated)."""
    if dtype == "bfloat16":
        return (np.asarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return np.asarray(values, dtype=STORAGE[dtype])


def bump_ulps(stored: np.ndarray, dtype: str, ulps: int | np.ndarray, where: Any = slice(None)) -> np.ndarray:
    """A copy of ``stored`` with ``where`` moved ``ulps`` away from zero.

    Sign-magnitude: adding to the bits grows the magnitude whatever the sign.
    """
    width = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}[dtype]
    out = np.array(stored, copy=True)
    bits = out.view(width)
    bits[where] = bits[where] + np.asarray(ulps).astype(width)
    return out


def make_case(
    arrays: MemoryArrays,
    case_id: str,
    output: np.ndarray | None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    inputs: str = "inputs-v1",
    weights: str = "weights-v1",
    layers: Iterable[tuple[str, np.ndarray]] = (),
    time_axis: int | None = None,
    repeat_identical: bool = True,
    error: str | None = None,
    output_dtype: str | None = None,
) -> CaseResult:
    """A case whose output (already in storage form) is added to ``arrays``."""
    ref: ArrayRef | None = None
    if output is not None:
        ref = arrays.add(output, output_dtype or dtype)
    return CaseResult(
        case_id=case_id,
        device=device,
        dtype=dtype,
        input_digest=digest(f"{inputs}/{case_id}/{dtype}"),
        weight_digest=digest(f"{weights}/{case_id}/{dtype}"),
        output=ref,
        layers=tuple((name, arrays.add(a, dtype)) for name, a in layers),
        time_axis=time_axis,
        repeats=3,
        repeat_identical=repeat_identical,
        seconds=0.01,
        error=error,
    )


def make_run(
    cases: Iterable[CaseResult],
    *,
    run_id: str = "baseline",
    fingerprint_overrides: dict[str, Any] | None = None,
    suite_version: int = 1,
    label: str = "",
) -> Run:
    fp = fingerprint(**(fingerprint_overrides or {}))
    return Run(
        run_id=run_id,
        created_at="2025-01-30T12:00:00+00:00",
        suite_id="default",
        suite_version=suite_version,
        variant="default",
        fingerprint=fp,
        fingerprint_digest=digest(repr(sorted(fp.items()))),
        cases=tuple(cases),
        label=label,
        tool_version="0.1.0",
    )


_FINGERPRINT: dict[str, Any] = {
    "torch": {
        "version": "2.5.1+cpu",
        "git_version": "a8d6afb511a69687bbb2b7e88a3cf67917e1697e",
        "debug": False,
        "cuda": None,
        "cpu_capability": "AVX512",
        "blas": "mkl",
        "mkldnn": "3.5.3",
        "openmp": "a",
        "build_settings": {"USE_MKLDNN": "ON", "USE_CUDA": "OFF"},
    },
    "cpu": {
        "vendor": "AuthenticAMD",
        "model": "AMD EPYC",
        "arch": "x86_64",
        "isa": {"avx2": True, "avx512f": True, "fma": True},
        "cores": 2,
        "threads": 2,
    },
    "gpu": {"count": 0, "devices": [], "driver": None, "cudnn": None, "source": "none"},
    "numerics": {
        "intra_op_threads": 2,
        "inter_op_threads": 2,
        "deterministic_algorithms": False,
        "mkldnn_enabled": True,
        "cudnn_allow_tf32": True,
        "matmul_allow_tf32": False,
        "float32_matmul_precision": "highest",
        "default_dtype": "torch.float32",
    },
    "env": {"OMP_NUM_THREADS": None},
    "numpy": {"version": "2.4.6"},
    "python": {"version": "3.11.7", "implementation": "CPython", "executable": "/usr/bin/python3"},
    "os": {"system": "Linux", "release": "6.1.0", "libc": "glibc 2.36"},
    "identity": {"hostname": "box-a", "user": "alice", "label": ""},
}


def fingerprint(**overrides: Any) -> dict[str, Any]:
    """The stock fingerprint with dotted keys overridden (``numerics__mkldnn_enabled`` or a dict)."""
    fp = copy.deepcopy(_FINGERPRINT)
    for dotted, value in overrides.items():
        set_key(fp, dotted.replace("__", "."), value)
    return fp


def set_key(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    if value is _DELETE:
        tree.pop(leaf, None)
    else:
        tree[leaf] = value


_DELETE = object()
DELETE = _DELETE  # pass as an override value to remove a key


def suite_outputs(seed: int = 0) -> dict[tuple[str, str], tuple[np.ndarray, int | None]]:
    """(case id, dtype) -> (float64 values, time axis), shaped like the default suite's outputs."""
    rng = np.random.RandomState(seed)
    shapes = {
        "lstm_seq_regression": ((4, 12, 8), 1),
        "lstm_batch_first": ((4, 12, 8), 1),
        "lstm_2layer": ((12, 4, 16), 0),
        "lstm_cell_loop": ((12, 4, 16), 0),
        "linear_10_5": ((8, 5), None),
        "mlp_kaiming": ((16, 10), None),
        "linear_1024": ((64, 1024), None),
        "numpy_f64_input": ((8, 5), None),
        "rng_manual_seed_init": ((5, 10), None),
        "rng_randn": ((32, 32), None),
    }
    out = {}
    for case_id, (shape, axis) in shapes.items():
        for dtype in ("float32", "float64", "bfloat16"):
            out[(case_id, dtype)] = (np.tanh(rng.standard_normal(shape)), axis)
    return out


def default_suite(
    arrays: MemoryArrays,
    seed: int = 0,
    change: Callable[[str, str, np.ndarray], np.ndarray] | None = None,
    **case_kwargs: Any,
) -> list[CaseResult]:
    """~30 cases like the default suite; ``change(case_id, dtype, stored)`` may alter an output."""
    cases = []
    for (case_id, dtype), (values, axis) in suite_outputs(seed).items():
        stored = store(values, dtype)
        if change is not None:
            stored = change(case_id, dtype, stored)
        cases.append(make_case(arrays, case_id, stored, dtype=dtype, time_axis=axis, **case_kwargs))
    return cases


class NeverLoad:
    """An ArraySource that fails the test if anything is decoded."""

    def load(self, ref: ArrayRef) -> np.ndarray:
        raise AssertionError(f"array {ref.sha256[:12]} was loaded")


EVERY_VERDICT_POLICY = "ulp:3"


def every_verdict(arrays: MemoryArrays) -> tuple[Run, Run]:
    """(baseline, candidate) whose comparison under ``EVERY_VERDICT_POLICY`` reaches every verdict once:
    the case ids name them (``c_identical``, ``c_drift``, ...)."""
    out = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 12) + np.float32(0.1)
    broken = out.copy()
    broken[1, 5] = np.nan
    pairs: dict[str, tuple[np.ndarray | None, np.ndarray | None, dict[str, Any]]] = {
        "c_identical": (out, out.copy(), {}),
        "c_within_tolerance": (out, bump_ulps(out, "float32", 2, where=(0, slice(0, 3))), {}),
        "c_missing_in_baseline": (None, out, {}),
        "c_inputs_differ": (out, out + 1, {"weights": "weights-v2"}),
        "c_missing_in_candidate": (out, None, {}),
        "c_drift": (out, bump_ulps(out, "float32", 4, where=(0, slice(0, 3))), {}),
        "c_nonfinite_mismatch": (out, broken, {}),
        "c_dtype_mismatch": (out, out.astype(np.float64), {"output_dtype": "float64"}),
        "c_shape_mismatch": (out, out.reshape(12, 2), {}),
        "c_error": (out, None, {"error": "RuntimeError: boom"}),
    }
    old = [make_case(arrays, case_id, a) for case_id, (a, _, _) in pairs.items() if a is not None]
    new = [make_case(arrays, case_id, b, **kw) for case_id, (_, b, kw) in pairs.items()
           if b is not None or "error" in kw]
    return make_run(old), make_run(new, run_id="candidate", fingerprint_overrides={"numerics.mkldnn_enabled": False})
