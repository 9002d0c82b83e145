"""driftboard: do your machines compute the same numbers?

The public Python API, for notebooks, tests and scripts::

    import driftboard

    laptop = driftboard.capture(label="laptop", output="laptop.driftboard")
    result = driftboard.compare("golden.driftboard", laptop, policy="ulp:4")
    print(result.worst, result.counts())

    with driftboard.Store() as store:        # the default SQLite file, or Store("postgresql://...")
        store.ingest("laptop.driftboard")

Your own models (the README's "Your own models"): ``@driftboard.case`` in a
cases file, or from a notebook or a test::

    driftboard.capture_model(model, x, name="encoder", output="encoder.driftboard")
    driftboard.assert_same_numbers(model, x, name="encoder", golden="encoder.driftboard", policy="ulp:4")

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
    "Case",
    "DriftboardError",
    "NumbersDifferError",
    "Policy",
    "RunComparison",
    "Store",
    "Training",
    "Verdict",
    "__version__",
    "assert_same_numbers",
    "capture",
    "capture_model",
    "case",
    "compare",
    "parse_policy",
    "read_bundle",
]

if TYPE_CHECKING:
    from driftboard.core.bundle import Bundle
    from driftboard.core.case_spec import Case, Training, case
    from driftboard.core.compare import Policy, RunComparison, Verdict
    from driftboard.core.compare.same_numbers import NumbersDifferError
    from driftboard.core.errors import DriftboardError
    from driftboard.db.store import Store

# name -> module that defines it; imported on first use so ``import driftboard`` stays light.
_LAZY = {
    "case": "driftboard.core.case_spec",
    "Case": "driftboard.core.case_spec",
    "Training": "driftboard.core.case_spec",
    "NumbersDifferError": "driftboard.core.compare.same_numbers",
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
            note: str = "", anonymize: bool = False, output: str | Path | None = None, suite: str = "all") -> Bundle:
    """Capture this machine (fingerprint, reference suite, own cases) as a validated bundle; write it to ``output``.

    Runs in this process with the torch already imported here: it is this
    environment that is fingerprinted. ``variant`` changes numerics settings
    for the rest of the process, as ``driftboard capture --variant`` does.
    ``suite``: ``all`` also runs the cases file found as the CLI finds it
    (``driftboard_cases.py``), ``reference`` the suite alone, ``own`` the cases alone.
    """
    from driftboard.core.bundle import bundle_bytes, read_bundle, write_bundle
    from driftboard.core.capture import CaptureOptions
    from driftboard.core.capture import capture as run_capture

    options = CaptureOptions(variant=variant, repeats=repeats, deterministic=deterministic, devices=devices,
                             case_ids=cases, label=label, tags=tuple(tags), note=note, anonymize=anonymize,
                             suite=suite)
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


def capture_model(model: Any, inputs: Any = (), *, name: str = "model", layers: str = "statistics", repeats: int = 3,
                  dtypes: tuple[str, ...] | None = None, devices: tuple[str, ...] | None = None,
                  autocast: str | None = None, tolerance: str | None = None, label: str = "",
                  output: str | Path | None = None, timeout: float | None = None) -> Bundle:
    """Capture one model of yours on these inputs as a validated bundle (with this machine's fingerprint).

    ``inputs``: a tensor, a tuple or list of tensors, or a dict passed as keyword
    arguments. The model runs in eval mode under ``torch.no_grad()`` and is left
    as it was (training flag, device, dtype; torch's random state too). ``layers``:
    ``statistics`` per module call (default), ``full`` tensors too, ``none``.
    Writes the bundle to ``output`` when given.
    """
    import copy

    import torch

    from driftboard.core.bundle import bundle_bytes, read_bundle, write_bundle
    from driftboard.core.capture import CaptureOptions
    from driftboard.core.capture import capture as run_capture
    from driftboard.core.case_spec import make_spec

    moved = dtypes is not None or devices is not None

    def factory() -> tuple[Any, Any]:
        return (copy.deepcopy(model) if moved else model), inputs

    spec = make_spec(factory, name=name, dtypes=dtypes, devices=devices, autocast=autocast, tolerance=tolerance,
                     source=f"capture_model({name})")
    options = CaptureOptions(repeats=repeats, label=label, suite="own", own_specs=(spec,), discover_cases=False,
                             layers=layers, case_timeout=timeout)
    training = getattr(model, "training", None)
    try:
        with torch.random.fork_rng(devices=[]):
            run, arrays = run_capture(options)
    finally:
        if training is not None:
            model.train(training)
    if output is not None:
        write_bundle(output, run, arrays)
    return read_bundle(bundle_bytes(run, arrays))


def assert_same_numbers(model: Any, inputs: Any = (), *, golden: Bundle | str | Path, name: str = "model",
                        policy: Policy | str | None = None, update: bool = False, db: str | None = None,
                        **options: Any) -> RunComparison:
    """Fail (``NumbersDifferError``, an AssertionError) unless ``model`` computes the golden's numbers here.

    ``golden``: a bundle file, a stored run id (in ``db``, default the local
    database) or a ``Bundle``; only its cases named ``name`` are compared. A
    golden file that does not exist yet is written from this run and the check
    fails once, saying so; ``update=True`` rewrites it. The message is the report
    ``driftboard compare --case`` prints. Other keywords go to ``capture_model``.
    """
    from driftboard.core.bundle import Bundle, read_bundle
    from driftboard.core.compare import parse_policy
    from driftboard.core.compare.same_numbers import NumbersDifferError, check_same_numbers

    looks_like_file = isinstance(golden, Path) or (isinstance(golden, str) and ("/" in golden or "\\" in golden
                                                                               or golden.endswith(".driftboard")))
    if looks_like_file and (update or not Path(golden).exists()):  # type: ignore[arg-type]
        written = capture_model(model, inputs, name=name, output=golden, **options)  # type: ignore[arg-type]
        if update:
            return compare(written, written, policy)
        raise NumbersDifferError(f"no golden at {golden}: this run was written there; run again to compare with it")
    if isinstance(golden, Bundle):
        golden_run, golden_arrays = golden.run, golden.arrays
    elif looks_like_file or Path(golden).is_file():
        loaded = read_bundle(golden)
        golden_run, golden_arrays = loaded.run, loaded.arrays
    else:
        from driftboard.db.store import load_stored_run

        golden_run, golden_arrays = load_stored_run(str(golden), db)
    fresh = capture_model(model, inputs, name=name, **options)
    chosen = parse_policy(policy) if isinstance(policy, str) else policy
    result = check_same_numbers(golden_run, golden_arrays, fresh.run, fresh.arrays, chosen, f"golden {golden}"
                                if not isinstance(golden, Bundle) else "the golden")
    if not result.ok:
        raise NumbersDifferError(result.message, result.comparison)
    return result.comparison
