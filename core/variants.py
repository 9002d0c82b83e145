"""Settings variants: the names of torch's numerics knobs a capture can run under.

A variant is one atom (``onednn-off``) or several joined by ``+``
(``onednn-off+cpu-avx2``), each atom setting one knob. ``driftboard capture
--variant`` applies them (``core/capture.py``), ``--sweep`` runs one per
process, and ``driftboard explain`` composes them to test which knob reproduces
another machine. This module only parses names: it never imports torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from driftboard.core.errors import DriftboardError

CPU_CAPABILITY_PREFIX = "cpu-"
CAPABILITY_ORDER = ("default", "avx2", "avx512")  # x86 ATen kernels, lowest first
MATMUL_PRECISIONS = ("highest", "high", "medium")

# atom -> (knob, value); threads-N, matmul-precision-P and cpu-C are patterns below.
_FIXED: dict[str, tuple[str, object]] = {
    "default": ("default", None),
    "onednn-off": ("onednn", False),
    "onednn-on": ("onednn", True),
    "deterministic": ("deterministic", True),  # use_deterministic_algorithms + cuDNN deterministic, no benchmark
    "deterministic-algorithms-on": ("deterministic_algorithms", True),
    "deterministic-algorithms-off": ("deterministic_algorithms", False),
    "cudnn-deterministic-on": ("cudnn_deterministic", True),
    "cudnn-deterministic-off": ("cudnn_deterministic", False),
    "cudnn-benchmark-on": ("cudnn_benchmark", True),
    "cudnn-benchmark-off": ("cudnn_benchmark", False),
    "tf32-on": ("tf32", True),
    "tf32-off": ("tf32", False),
}
_THREADS = re.compile(r"threads-([1-9][0-9]{0,3})")
_MATMUL = re.compile(r"matmul-precision-(highest|high|medium)")
_CPU = re.compile(r"cpu-([a-z0-9_]{1,16})")
CUDA_KNOBS = frozenset({"tf32", "cudnn_deterministic", "cudnn_benchmark"})
EXPECTED = ("default, threads-N, onednn-off|on, deterministic, deterministic-algorithms-on|off, "
            "cudnn-deterministic-on|off, cudnn-benchmark-on|off, tf32-on|off, matmul-precision-highest|high|medium, "
            "cpu-<capability>, or several joined by +")


@dataclass(frozen=True)
class Atom:
    """One knob set to one value."""

    text: str
    knob: str
    value: object


def parse_variant(variant: str) -> tuple[Atom, ...]:
    """The atoms of ``variant``; a ``DriftboardError`` naming the bad part otherwise."""
    atoms: list[Atom] = []
    for text in str(variant).split("+"):
        atom = _atom(text)
        if atom is None:
            raise DriftboardError(f"unknown variant {text!r}; expected {EXPECTED}")
        if any(a.knob == atom.knob and a.knob != "default" for a in atoms):
            raise DriftboardError(f"variant {variant!r} sets {atom.knob} twice")
        atoms.append(atom)
    return tuple(atoms)


def _atom(text: str) -> Atom | None:
    if text in _FIXED:
        knob, value = _FIXED[text]
        return Atom(text, knob, value)
    for pattern, knob, convert in ((_THREADS, "threads", int), (_MATMUL, "matmul_precision", str),
                                   (_CPU, "cpu_capability", str)):
        match = pattern.fullmatch(text)
        if match:
            return Atom(text, knob, convert(match.group(1)))
    return None


def capability_of(variant: str) -> str | None:
    """The ``ATEN_CPU_CAPABILITY`` a variant needs set before torch starts, if any."""
    return next((str(a.value) for a in parse_variant(variant) if a.knob == "cpu_capability"), None)
