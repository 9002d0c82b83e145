"""driftboard: do your machines compute the same numbers?

The public Python API, for notebooks, tests and scripts::

    import driftboard

    laptop = driftboard.capture(label="laptop", output="laptop.driftboard")
    result = driftboard.compare("golden.driftboard", laptop, policy="ulp:4")
    print(result.worst, result.counts())

    with driftboard.Store() as store:        # the default SQLite file, or Store("postgresql://...")
        store.ingest("laptop.driftboard")

Importing ``driftboard`` loads nothing heavy: ``capture`` imports torch when it
runs, ``compare`` only numpy, ``Store`` SQLAlchemy on first use.

The installed package is this one namespace; its layers, top to bottom:
``driftboard.cli`` (the command line) and ``driftboard.dashboard`` (Streamlit
pages, charts, HTML reports), then ``driftboard.db`` (the store), then
``driftboard.core`` (fingerprint, suite, capture, bundle, comparison, audit).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftboard.core.version import __version__

__all__ = [
    "Bundle",
    "DriftboardError",
    "Policy",
    "RunComparison",
    "Store",
    "Verdict",
    "__version__",
    "capture",
    "compare",
    "parse_policy",
    "read_bundle",
]

if TYPE_CHECKING:
    from driftboard.core.bundle import Bundle
    from driftboard.core.compare import Policy, RunComparison, Verdict
    from driftboard.core.errors import DriftboardError
    from driftboard.db.store import Store

# name -> module that defines it; imported on first use so ``import driftboard`` stays light.
_LAZY = {
    "Bundle": "driftboard.core.bundle",
    "read_bundle": "driftboard.core.bundle",
    "DriftboardError": "driftboard.core.errors",
    "Policy": "driftboard.core.compare",
    "RunComparison": "driftboard.core.compare",
    "Verdict": "driftboard.core.compare",
    "parse_policy": "driftboard.core.compare",
    "Store": "driftboard.db.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'driftboard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def capture(*, cases: tuple[str, ...] | None = None, devices: tuple[str, ...] | None = None, repeats: int = 3,
            variant: str = "default", deterministic: bool = False, label: str = "", tags: tuple[str, ...] = (),
            note: str = "", anonymize: bool = False, output: str | Path | None = None) -> Bundle:
    """Capture this machine (fingerprint and reference suite) as a validated bundle; write it to ``output`` if given.

    Runs in this process with the torch already imported here: it is this
    environment that is fingerprinted. ``variant`` changes numerics settings
    for the rest of the process, as ``driftboard capture --variant`` does.
    """
    from driftboard.core.bundle import bundle_bytes, read_bundle, write_bundle
    from driftboard.core.capture import CaptureOptions
    from driftboard.core.capture import capture as run_capture

    options = CaptureOptions(variant=variant, repeats=repeats, deterministic=deterministic, devices=devices,
                             case_ids=cases, label=label, tags=tuple(tags), note=note, anonymize=anonymize)
    run, arrays = run_capture(options)
    if output is not None:
        write_bundle(output, run, arrays)
    return read_bundle(bundle_bytes(run, arrays))


def compare(baseline: Bundle | str | Path, candidate: Bundle | str | Path,
            policy: Policy | str | None = None) -> RunComparison:
    """Compare two runs, each a :class:`Bundle` or a bundle file's path, under ``policy`` (default tolerances)."""
    from driftboard.core.bundle import Bundle, read_bundle
    from driftboard.core.compare import compare_runs, parse_policy

    old = baseline if isinstance(baseline, Bundle) else read_bundle(baseline)
    new = candidate if isinstance(candidate, Bundle) else read_bundle(candidate)
    chosen = parse_policy(policy) if isinstance(policy, str) else policy
    return compare_runs(old.run, old.arrays, new.run, new.arrays, chosen)
