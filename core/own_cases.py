"""The team's own models in a capture: finding their cases, importing them, running each one.

User code is imported here and only here, in the capture, after driftboard's
own modules and torch. A cases file that cannot be imported is a one-line
``CasesFileError`` naming the file and line. Once cases run, a factory that
raises, hangs past the per-case timeout, returns something that is not a
module or an output that is not tensors is that case's recorded error, and
the capture goes on.

Each factory is called after ``torch.manual_seed(0)``, so a model built with
torch's default init is the same on every call of one machine. Whether its
weights (or inputs) come from that random stream is recorded, because the
stream itself differs between CPU capabilities and torch releases (a
comparison then says "weights differ" and why): when the factory draws from
it, it is called once more after ``torch.manual_seed(1)`` and the digests of
the two builds are compared.
The model runs in eval mode under ``torch.no_grad()``.

This module imports torch: it is the capture path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import signal
import statistics
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from driftboard.core import truth_pass
from driftboard.core.case_spec import Case, CaseSpec, Training, make_spec, take_registered
from driftboard.core.errors import CaseError, CasesFileError
from driftboard.core.module_records import (
    OUTPUT_SAMPLE,
    Budget,
    ModuleHooks,
    OutputTypeError,
    TensorKeeper,
    dense,
    dtype_name,
    leaves,
    stored_array,
)
from driftboard.core.run import LAYER_MODES, CaseResult, MemoryArrays, OwnResult, TensorRecord

__all__ = ["CASES_FILE", "DEFAULT_TIMEOUT", "LAYER_MODES", "Budget", "OwnOptions", "check_names", "find_cases_file",
           "load_cases_file", "load_model", "run_case"]

CASES_FILE = "driftboard_cases.py"
DEFAULT_TIMEOUT = 300.0
WHOLE_OUTPUT_ELEMENTS = 16_384  # statistics mode keeps an output tensor whole up to this many elements
_TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                 "float64": torch.float64}
_UNBOUNDED = 1 << 62  # repeats keep digests only: nothing to bound
_NOTHING = hashlib.sha256(b"").hexdigest()  # the digests of a case that failed before it had weights or inputs


# ---------------------------------------------------------------- finding the cases


def find_cases_file(start: Path | None = None) -> Path | None:
    """The cases file a capture picks up by itself, or None.

    In the current directory, then at the repository root (the nearest parent
    holding ``.git`` or ``pyproject.toml``): the file ``pyproject.toml`` names
    under ``[tool.driftboard] cases``, else ``driftboard_cases.py``.
    """
    here = (start or Path.cwd()).resolve()
    for folder in dict.fromkeys([here, repository_root(here) or here]):
        named = _pyproject_cases(folder)
        if named is not None:
            return named
        if (folder / CASES_FILE).is_file():
            return folder / CASES_FILE
    return None


def repository_root(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").is_file():
            return folder
    return None


def _pyproject_cases(folder: Path) -> Path | None:
    path = folder / "pyproject.toml"
    if not path.is_file():
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # not ours to judge: a broken pyproject.toml names no cases file
    named = config.get("tool", {}).get("driftboard", {}).get("cases")
    if named is None:
        return None
    if not isinstance(named, str) or not named:
        raise CasesFileError(f"{path}: [tool.driftboard] cases must be a file name, got {named!r}")
    target = folder / named
    if not target.is_file():
        raise CasesFileError(f"{path}: [tool.driftboard] cases names {named}, which does not exist")
    return target


_LOADED: dict[Path, list[CaseSpec]] = {}


def load_cases_file(path: str | Path) -> list[CaseSpec]:
    """Import a cases file and return the cases it registered with ``@driftboard.case``."""
    path = Path(path)
    if not path.is_file():
        raise CasesFileError(f"no cases file {path}")
    resolved = path.resolve()
    if resolved not in _LOADED:  # imported once per process: a second capture reuses its cases
        take_registered()  # anything registered before is not this file's
        _import_file(path)
        _LOADED[resolved] = take_registered()
    found = _LOADED[resolved]
    if not found:
        raise CasesFileError(f"cases file {path} registers no case (decorate factories with @driftboard.case)")
    return found


def load_model(text: str) -> CaseSpec:
    """The case ``--model path/to/file.py:factory`` or ``--model package.module:factory`` names."""
    where, sep, attribute = text.rpartition(":")
    if not sep or not where or not attribute:
        raise CasesFileError(f"--model {text!r}: expected path/to/file.py:factory or package.module:factory")
    looks_like_path = where.endswith(".py") or "/" in where or os.sep in where
    if looks_like_path:
        path = Path(where)
        if not path.is_file():
            raise CasesFileError(f"--model {text}: no such file {where}")
        module = _import_file(path)
    else:
        module = _import_module(where)
    take_registered()  # --model runs the factory it names, not every case the file declares
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise CasesFileError(f"--model {text}: {where} has no {attribute!r}")
        target = getattr(target, part)
    declared = getattr(target, "__driftboard_case__", None)
    if isinstance(declared, CaseSpec):
        return replace(declared, source=text[:512])
    try:
        return make_spec(target, source=text[:512])
    except CaseError as exc:
        raise CasesFileError(f"--model {text}: {exc}") from None


def check_names(specs: list[CaseSpec], suite_ids: set[str]) -> None:
    """Two cases of one name, or a name of the reference suite, are refused: comparisons match cases by name."""
    seen: dict[str, CaseSpec] = {}
    for spec in specs:
        if spec.name in suite_ids:
            raise CaseError(f"case {spec.name!r} ({spec.source}) has the name of a reference-suite case: rename it")
        if spec.name in seen:
            raise CaseError(f"two cases are named {spec.name!r} ({seen[spec.name].source} and {spec.source}): "
                            "rename one")
        seen[spec.name] = spec


# ---------------------------------------------------------------- importing user code


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    name = "driftboard_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CasesFileError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    _on_path(path.parent)  # the cases file imports its own repository's modules
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise CasesFileError(f"cannot import {path}: {exc.filename or path}, line {exc.lineno}: "
                             f"{exc.msg}") from None
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise CasesFileError(f"cannot import {path}: {_where(exc, path.parent)}") from None
    return module


def _import_module(name: str) -> ModuleType:
    _on_path(Path.cwd())
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise CasesFileError(f"cannot import {name}: {exc.filename}, line {exc.lineno}: {exc.msg}") from None
    except (Exception, SystemExit) as exc:
        raise CasesFileError(f"cannot import {name}: {_where(exc, Path.cwd())}") from None


def _on_path(folder: Path) -> None:
    # After driftboard and torch are imported, a repository's own packages may come first.
    text = str(folder)
    if text not in sys.path:
        sys.path.insert(0, text)


def _where(exc: BaseException, home: Path) -> str:
    """``Error: message (file, line N)``, at the innermost frame in the user's own files when there is one."""
    frames = traceback.extract_tb(exc.__traceback__)
    home_text = str(home.resolve())
    own = [f for f in frames if f.filename.startswith(home_text) and "site-packages" not in f.filename]
    frame = (own or frames or [None])[-1]
    place = f" ({frame.filename}, line {frame.lineno})" if frame is not None else ""
    return f"{describe_error(exc)}{place}"


def describe_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# ---------------------------------------------------------------- running one case


class CaseTimeout(BaseException):
    """A case ran past its time limit (a BaseException: a factory's ``except Exception`` cannot swallow it)."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` (SIGALRM: Unix, main thread); elsewhere the block runs unbounded."""
    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        raise CaseTimeout(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class OwnOptions:
    """How own cases run in one capture."""

    layers: str = "statistics"
    repeats: int = 3
    timeout: float | None = DEFAULT_TIMEOUT
    devices: tuple[str, ...] | None = None  # --device: only these of the devices a case declares
    truth: bool = True  # also run a float32/16/bf16 case in float64 on the CPU (core/truth_pass.py)
    steps: int = 50  # --steps: a declared training step's default number of steps (core/own_training.py)
    seed: int | None = 0  # --seed: seeds random, numpy and torch before training; None: no seeding


@dataclass
class _Built:
    model: torch.nn.Module
    inputs: Any
    autocast: str | None
    tolerance: str | None
    title: str
    weights_rng: bool = False  # the weights change with torch's seed
    inputs_rng: bool = False
    training: Training | None = None  # a declared training step (driftboard.Training)


def run_case(spec: CaseSpec, options: OwnOptions, arrays: MemoryArrays, budget: Budget,
             available: list[str]) -> list[CaseResult]:
    """Every device and dtype ``spec`` declares (that this machine has), each from a fresh call of the factory."""
    devices = [d for d in spec.devices if _available(d, available) and _wanted(d, options.devices)] \
        if spec.devices is not None else [None]
    results: list[CaseResult] = []
    for device in devices:
        for dtype in spec.dtypes or [None]:
            trained: list[CaseResult] = []  # a declared training step's record, after the forward's
            results += [run_one(spec, device, dtype, options, arrays, budget, trained), *trained]
    return results


def _available(device: str, available: list[str]) -> bool:
    return device.split(":")[0] in available


def _wanted(device: str, chosen: tuple[str, ...] | None) -> bool:
    return chosen is None or device in chosen or device.split(":")[0] in chosen


def run_one(spec: CaseSpec, device: str | None, dtype: str | None, options: OwnOptions, arrays: MemoryArrays,
            budget: Budget, trained: list[CaseResult] | None = None) -> CaseResult:
    """One (case, device, dtype): build, place, record a forward, then repeat it; a failure is the case's error."""
    key = (device or "cpu", dtype or "float32")
    own = OwnResult(source=spec.source, layers=options.layers, outputs=(), autocast=spec.autocast,
                    tolerance=spec.tolerance, title=spec.title)
    try:
        with time_limit(options.timeout):
            built = _build(spec)
            own = replace(own, autocast=built.autocast, tolerance=built.tolerance, title=built.title,
                          weights_rng=built.weights_rng, inputs_rng=built.inputs_rng)
            model, inputs = _place(built.model, built.inputs, device, dtype)
            key = _key(model, inputs, device, dtype)
            result = _record(spec.name, key, model, inputs, own, options, arrays, budget)
            if built.training is not None and trained is not None and result.error is None:
                trained.append(_train(spec, key, model, built.training, own, options, arrays, device, dtype))
            return result
    except CaseTimeout as exc:
        error = f"{exc} (raise --case-timeout, or look for a hang in {spec.source})"
    except Exception as exc:  # the user's code failing is this case's finding, not the capture's
        error = describe_error(exc)
    return CaseResult(spec.name, key[0], key[1], _NOTHING, _NOTHING, None, repeats=options.repeats, error=error,
                      own=own)


def _train(spec: CaseSpec, key: tuple[str, str], model: torch.nn.Module, training: Training, own: OwnResult,
           options: OwnOptions, arrays: MemoryArrays, device: str | None, dtype: str | None) -> CaseResult:
    """The declared training step, run on the model the forward was recorded from; a failure is that case's error."""
    from driftboard.core import own_training

    try:
        return own_training.train_case(spec.name, key, model, training, own, options.steps, options.seed,
                                       options.layers, arrays, lambda batch: _place(model, batch, device, dtype)[1],
                                       state_digest, inputs_digest)
    except CaseTimeout:
        raise
    except Exception as exc:  # the user's step or optimizer failing is the training case's finding
        return CaseResult(spec.name + own_training.SUFFIX, key[0], key[1], _NOTHING, _NOTHING, None, repeats=1,
                          error=describe_error(exc), own=own)


def _build(spec: CaseSpec) -> _Built:
    torch.manual_seed(0)
    before = _rng_state()
    built = _unpack(spec, spec.factory())
    if not all(torch.equal(a, b) for a, b in zip(before, _rng_state(), strict=True)):
        torch.manual_seed(1)  # it drew from torch's random stream: do its weights or inputs depend on it?
        other = _unpack(spec, spec.factory())
        built.weights_rng = state_digest(built.model) != state_digest(other.model)
        built.inputs_rng = inputs_digest(built.inputs) != inputs_digest(other.inputs)
    return built


def _unpack(spec: CaseSpec, made: Any) -> _Built:
    autocast, tolerance, title = spec.autocast, spec.tolerance, spec.title
    training = None
    if isinstance(made, Case):
        model, inputs, training = made.model, made.inputs, made.training
        autocast, tolerance, title = made.autocast or autocast, made.tolerance or tolerance, made.title or title
    elif isinstance(made, tuple) and len(made) == 2:
        model, inputs = made
    else:
        raise CaseError(f"the factory returned {type(made).__name__}: expected (model, inputs) or driftboard.Case")
    if not isinstance(model, torch.nn.Module):
        raise CaseError(f"the factory's model is {type(model).__name__}, not a torch.nn.Module")
    return _Built(model.eval(), inputs, autocast, tolerance, title, training=training)


def _rng_state() -> list[torch.Tensor]:
    states = [torch.random.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _place(model: torch.nn.Module, inputs: Any, device: str | None, dtype: str | None) -> tuple[torch.nn.Module, Any]:
    """The model and its inputs on ``device`` in ``dtype`` (floating tensors only); None leaves them as built."""
    if device is None and dtype is None:
        return model, inputs
    wanted = _TORCH_DTYPES[dtype] if dtype else None
    model = model.to(device=device, dtype=wanted)

    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device=device, dtype=wanted if wanted is not None and value.is_floating_point() else None)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(move(v) for v in value) if not hasattr(value, "_fields") else type(value)(*map(move, value))
        return value

    return model, move(inputs)


def _key(model: torch.nn.Module, inputs: Any, device: str | None, dtype: str | None) -> tuple[str, str]:
    """(device, dtype) of the case: as asked, else as built (the model's first tensor, else the inputs')."""
    tensors = [*model.parameters(), *model.buffers(), *(t for _, t in leaves(inputs))]
    if device is None:
        device = tensors[0].device.type if tensors else "cpu"
    if dtype is None:
        floating = [t for t in tensors if t.is_floating_point()]
        dtype = dtype_name(floating[0]) if floating else "float32"
    return device, dtype


def _call(model: torch.nn.Module, inputs: Any) -> Any:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _forward(model: torch.nn.Module, inputs: Any, device: str, autocast: str | None) -> Callable[[], Any]:
    def run() -> Any:
        cast = torch.autocast(device_type=device.split(":")[0], dtype=_TORCH_DTYPES[autocast]) if autocast else nullcontext()
        with torch.no_grad(), cast:
            out = _call(model, inputs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    return run


def _record(name: str, key: tuple[str, str], model: torch.nn.Module, inputs: Any, own: OwnResult,
            options: OwnOptions, arrays: MemoryArrays, budget: Budget) -> CaseResult:
    """Module calls from one forward with hooks; outputs and repeatability from plain forwards.

    Hooks can change what a model computes (``TransformerEncoderLayer`` leaves
    its fused path when a module has hooks), so the outputs are those of the
    model's own forward, and whether the hooked forward agreed is recorded.
    """
    forward = _forward(model, inputs, key[0], own.autocast)
    weight_digest, input_digest = state_digest(model), inputs_digest(inputs)
    keeper = TensorKeeper(arrays, budget)
    calls: list[Any] = []
    dropped = 0
    hooked: tuple[str, ...] | None = None
    truth = truth_pass.own_truth(model, inputs, _call, record_calls=options.layers != "none") \
        if options.truth and truth_pass.wanted(key[1]) else None
    if options.layers != "none":
        hooks = ModuleHooks(model, keeper, keep=options.layers == "full", truth=truth.calls if truth else None)
        with hooks:
            hooked = tuple(keeper.record(p, t, keep=False).stats.sha256 for p, t in leaves(forward()) if dense(t))
        calls, dropped = hooks.recording.calls, hooks.recording.dropped
        if truth is not None:
            truth.calls.clear()  # calls the hooked forward did not make (or dropped): their memory goes back
    outputs: list[TensorRecord] = []
    seconds = []
    identical = True
    error = None
    digests_only = TensorKeeper(MemoryArrays(), Budget(0, calls_left=_UNBOUNDED), digest_only=True)
    for i in range(options.repeats):
        start = time.perf_counter()
        out = forward()
        seconds.append(time.perf_counter() - start)
        if i == 0:
            outputs = _output_records(out, keeper, options.layers)
            error = truth.measure(out) if truth is not None else None
            truth = None  # the float64 tensors are not needed any more
        else:
            again = tuple(digests_only.record(p, t, keep=False).stats.sha256 for p, t in leaves(out) if dense(t))
            identical = identical and again == tuple(r.stats.sha256 for r in outputs)
            digests_only.forget()
    changed = hooked is not None and hooked != tuple(r.stats.sha256 for r in outputs)
    own = replace(own, outputs=tuple(outputs), modules=tuple(calls), modules_dropped=dropped, hooks_change_output=changed)
    return CaseResult(name, key[0], key[1], input_digest, weight_digest, outputs[0].array, repeats=options.repeats,
                      repeat_identical=identical, seconds=statistics.median(seconds), own=own, truth=error)


def _output_records(out: Any, keeper: TensorKeeper, layers: str) -> list[TensorRecord]:
    found = list(leaves(out, strict=True))
    if not found:
        raise OutputTypeError(f"the model returned {type(out).__name__} holding no tensor")
    if len(found) > 1024:
        raise OutputTypeError(f"the model returned {len(found)} tensors, more than 1024")
    records = []
    for path, tensor in found:
        if not dense(tensor):
            raise OutputTypeError(f"output {path or '(top)'} is a {tensor.layout} tensor: expected dense tensors")
        keep = layers != "statistics" or tensor.numel() <= WHOLE_OUTPUT_ELEMENTS
        records.append(keeper.record(path, tensor, keep=keep, sample=OUTPUT_SAMPLE, output=True))
    return records



# ---------------------------------------------------------------- digests of weights and inputs


def state_digest(model: torch.nn.Module) -> str:
    """sha256 over the state dict, names sorted: what the weights (and buffers) are, bit for bit."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        _feed(h, name, value)
    return h.hexdigest()


def inputs_digest(inputs: Any) -> str:
    h = hashlib.sha256()
    _feed(h, "", inputs)
    return h.hexdigest()


def _feed(h: Any, path: str, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        array = stored_array(value)
        h.update(f"{path}|{dtype_name(value)}|{tuple(value.shape)}|".encode())
        h.update(memoryview(array.reshape(-1)) if array is not None and array.size else b"")
    elif isinstance(value, dict):
        for key, item in value.items():
            _feed(h, f"{path}[{key!r}]", item)
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _feed(h, f"{path}[{i}]", item)
    elif value is None or isinstance(value, (bool, int, float, str)):
        h.update(f"{path}|{value!r}|".encode())
    else:  # an object's repr may hold its address: only its type is stable
        h.update(f"{path}|{type(value).__qualname__}|".encode())
