"""Declaring the team's own models as cases: ``@driftboard.case`` and ``driftboard.Case``.

A case is a factory: a function of no arguments that builds a model and its
inputs and returns ``(model, inputs)`` (inputs a tensor, a tuple or list of
tensors, or a dict of tensors passed as keyword arguments), or a ``Case`` when
it wants to set options itself. A cases file registers its factories with the
decorator; ``driftboard capture`` imports it and runs each one.

Importing this module loads neither torch nor numpy: a cases file may import
``driftboard`` before anything else. Every option is checked when the case is
declared, so a mistake is a one-line error naming the cases file's line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftboard.core.errors import CaseError

# What a case id may be in a bundle (core/bundle.py checks the same pattern when reading).
CASE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+-]{0,127}")
CASE_DTYPES = ("float16", "bfloat16", "float32", "float64")
AUTOCAST_DTYPES = ("float16", "bfloat16")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu)(:[0-9]{1,3})?")


@dataclass(frozen=True)
class Training:
    """A training step to record besides the forward: ``step(model, batch) -> loss``, an optimizer, fixed batches.

    ``optimizer`` is called with ``model.parameters()`` and returns a
    ``torch.optim.Optimizer``; ``batches`` (tensors, or tuples, lists or dicts
    of tensors) are used in turn, one per step, and moved to the case's device
    and dtype like its inputs. ``steps`` overrides ``--steps``. Capture seeds
    random, numpy and torch first (``--seed``) and records the trace as it does
    for the suite's training cases: loss, gradient norm, distance from the
    start and a parameter digest per step, the final parameters at the end.
    """

    step: Any
    optimizer: Any
    batches: Any
    steps: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.step):
            raise CaseError(f"Training(step=...) must be a function (model, batch) -> loss, got {type(self.step).__name__}")
        if not callable(self.optimizer):
            raise CaseError("Training(optimizer=...) must be a function of the model's parameters returning an "
                            f"optimizer, e.g. lambda p: torch.optim.SGD(p, lr=0.1); got {type(self.optimizer).__name__}")
        if isinstance(self.batches, (str, bytes)) or not hasattr(self.batches, "__len__") or not len(self.batches):
            raise CaseError("Training(batches=...) must be a non-empty list of batches")
        if self.steps is not None and (not isinstance(self.steps, int) or isinstance(self.steps, bool)
                                       or not 1 <= self.steps <= 10_000):
            raise CaseError(f"Training(steps=...) must be an integer from 1 to 10000, got {self.steps!r}")


@dataclass(frozen=True)
class Case:
    """What a factory may return instead of ``(model, inputs)``: the two, with options for this case.

    ``autocast`` (``"bfloat16"`` or ``"float16"``) runs the forward under
    ``torch.autocast``; ``tolerance`` is the policy this case is judged under
    (``"ulp:4"``, ``"rtol=1e-4,atol=1e-5"``), whatever policy a comparison uses
    for the rest. Both override what the decorator said. ``training`` (a
    ``Training``) also records training steps, as the case ``<name>/train``.
    """

    model: Any
    inputs: Any = ()
    autocast: str | None = None
    tolerance: str | None = None
    title: str = ""
    training: Training | None = None

    def __post_init__(self) -> None:
        if self.training is not None and not isinstance(self.training, Training):
            raise CaseError(f"Case(training=...) must be a driftboard.Training, got {type(self.training).__name__}")
        object.__setattr__(self, "autocast", check_autocast(self.autocast))
        object.__setattr__(self, "tolerance", check_tolerance(self.tolerance))


@dataclass(frozen=True)
class CaseSpec:
    """A declared case: its name, its factory, where that lives, and the options it runs under.

    ``dtypes`` and ``devices`` None: the model runs as the factory built it.
    Otherwise the model and its floating inputs are moved to each device and
    dtype listed, each its own case (its key: name, device, dtype).
    """

    name: str
    factory: Callable[[], Any]
    source: str
    dtypes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    autocast: str | None = None
    tolerance: str | None = None
    title: str = ""

    @property
    def case_id(self) -> str:  # what the capture progress bar shows
        return self.name


# Factories registered by ``@case`` while a cases file is imported; the loader takes them (own_cases.py).
_REGISTERED: list[CaseSpec] = []


def case(name: str | Callable[[], Any] | None = None, *, dtypes: Iterable[str] | None = None,
         devices: Iterable[str] | None = None, autocast: str | None = None, tolerance: Any = None,
         title: str = "") -> Any:
    """Register the decorated factory as a case of the team's own models (also usable bare: ``@driftboard.case``).

    ``name`` defaults to the function's name. ``dtypes`` (``float32``,
    ``float64``, ``float16``, ``bfloat16``) and ``devices`` (``cpu``,
    ``cuda``, …) say where to run it (default: as built); ``autocast`` and
    ``tolerance`` as for ``Case``.
    """
    if callable(name):  # @driftboard.case without parentheses
        return case()(name)

    def register(factory: Callable[[], Any]) -> Callable[[], Any]:
        spec = make_spec(factory, name=name, dtypes=dtypes, devices=devices, autocast=autocast,
                         tolerance=tolerance, title=title)
        _REGISTERED.append(spec)
        factory.__driftboard_case__ = spec  # type: ignore[attr-defined]  # found again by --model file.py:factory
        return factory

    return register


def make_spec(factory: Callable[[], Any], *, name: str | None = None, dtypes: Iterable[str] | None = None,
              devices: Iterable[str] | None = None, autocast: str | None = None, tolerance: Any = None,
              title: str = "", source: str | None = None) -> CaseSpec:
    if not callable(factory):
        raise CaseError(f"a case factory must be a function, got {type(factory).__name__}")
    chosen = name if name is not None else getattr(factory, "__name__", "model")
    return CaseSpec(
        name=check_name(chosen),
        factory=factory,
        source=source or source_of(factory),
        dtypes=_choices(dtypes, CASE_DTYPES, "dtype"),
        devices=_devices(devices),
        autocast=check_autocast(autocast),
        tolerance=check_tolerance(tolerance),
        title=str(title)[:200],
    )


def source_of(factory: Callable[[], Any]) -> str:
    """``file.py:function`` for people: where to look for the case."""
    code = getattr(factory, "__code__", None)
    where = Path(code.co_filename).name if code is not None else getattr(factory, "__module__", "?")
    return f"{where}:{getattr(factory, '__qualname__', getattr(factory, '__name__', '?'))}"[:512]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not CASE_NAME.fullmatch(name):
        raise CaseError(f"case name {str(name)[:80]!r} is not usable: letters, digits and . _ : / + - "
                        "(starting with a letter or digit), at most 128 characters")
    return name


def check_autocast(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).removeprefix("torch.")
    if text not in AUTOCAST_DTYPES:
        raise CaseError(f"autocast {str(value)[:40]!r} is not one of {', '.join(AUTOCAST_DTYPES)}")
    return text


def check_tolerance(value: Any) -> str | None:
    """A tolerance as ``--policy`` takes it (``ulp:4``, ``rtol=R,atol=A``, ``bitwise``, ``default``), or a Policy."""
    if value is None:
        return None
    from driftboard.core.compare.policy import parse_policy

    return str(parse_policy(str(value)))


def _choices(values: Iterable[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    found = tuple(str(v).removeprefix("torch.") for v in ([values] if isinstance(values, str) else values))
    for value in found:
        if value not in allowed:
            raise CaseError(f"{what} {value[:40]!r} is not one of {', '.join(allowed)}")
    if not found:
        raise CaseError(f"an empty list of {what}s: leave it out to run the model as built")
    return tuple(dict.fromkeys(found))


def _devices(values: Iterable[str] | None) -> tuple[str, ...] | None:
    if values is None:
        return None
    found = tuple(str(v) for v in ([values] if isinstance(values, str) else values))
    for value in found:
        if not _DEVICE.fullmatch(value):
            raise CaseError(f"device {value[:40]!r} is not a device name (cpu, cuda, cuda:1, mps, xpu)")
    if not found:
        raise CaseError("an empty list of devices: leave it out to run the model as built")
    return tuple(dict.fromkeys(found))


def take_registered() -> list[CaseSpec]:
    """The cases registered since the last call (the loader calls it around each import)."""
    found = list(_REGISTERED)
    _REGISTERED.clear()
    return found
