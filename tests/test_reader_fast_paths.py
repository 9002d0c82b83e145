"""The bundle reader's fast paths (plain manifests, statistics-mode module calls) accept, refuse and read
exactly what its full checks do: each input is read both ways and the results or error messages compared."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from own_factory import chain, own_case

from driftboard.core import bundle, bundle_own
from driftboard.core.bundle import DEFAULT_LIMITS, parse_manifest
from driftboard.core.bundle_own import own_from_json, own_json
from driftboard.core.errors import BundleError
from driftboard.core.run import MemoryArrays
from driftboard.core.text import json_text_is_inert

SHA = "ab" * 32


def both_ways(monkeypatch: pytest.MonkeyPatch, read: Any, *args: Any) -> tuple[Any, Any]:
    """(fast, full): ``read(*args)`` as it runs, then with every fast path turned off."""
    def outcome() -> Any:
        try:
            return read(*copy.deepcopy(args))
        except BundleError as exc:
            return ("error", type(exc).__name__, str(exc))

    fast = outcome()
    with monkeypatch.context() as m:
        m.setattr(bundle, "json_text_is_inert", lambda text: False)
        m.setattr(bundle, "_tree_ok", lambda value, limits: None)
        m.setattr(bundle_own, "_plain_stats_list", lambda objs: None)
        m.setattr(bundle_own, "_plain_modules", lambda objs: None)
        full = outcome()
    return fast, full


MANIFESTS = [
    '{"a": 1, "b": [1.5, "x", {"c": null}]}',
    '{"a": 1, "a": 2}',  # duplicate key
    '{"a": {"b": 1, "b": 1}}',
    '{"a": "esc \\u001b[31m red", "\\u001b": 1}',  # controls by escape: made inert
    '{"a": "del \x7f", "b": "c1 \x9b", "c": "nonchar \uffff"}',  # unsafe characters written as themselves
    '{"a": "lone \\ud800"}',
    '{"a": NaN}', '{"a": [1, Infinity]}', '{"a": {"b": [-Infinity]}}',
    '{"' + "k" * 257 + '": 1}', '{"a": "' + "s" * (DEFAULT_LIMITS.string_chars + 1) + '"}',
    '{"a": ' + "[" * (DEFAULT_LIMITS.json_depth + 1) + "]" * (DEFAULT_LIMITS.json_depth + 1) + "}",
    '{"a": ' + "[" * DEFAULT_LIMITS.json_depth + "]" * DEFAULT_LIMITS.json_depth + "}",
    '{"a": "caf\u00e9 \u00b7 ok"}', "[1, 2]", '{"a": 1,}',
    # duplicate keys, found by counting colons when the text is inert (keys and strings holding colons too)
    '{"t": "12:00:00", "k:1": ["a:b", {"c:": ":"}], "u": {"": ""}}', '{"a:b": 1, "a:b": 2}', '{"a": "x:y", "a": "z"}',
    '{"a": {"b": 1}, "a": {"b": 1}}', '{"a": [{"b": 1, "b": 1}], "c": "::"}', '{"x": {"a": 1, "a": 2}, bad}',
    '{"a": 1, "a": 2, "s": "\\u003a"}', '{"a": 1, "a": 2, "s": "\u003a"}', '{"a" : 1, "a": 2}', '{}',
]


@pytest.mark.parametrize("text", MANIFESTS, ids=range(len(MANIFESTS)))
def test_a_manifest_reads_the_same_either_way(monkeypatch, text):
    fast, full = both_ways(monkeypatch, parse_manifest, text.encode("utf-8", "surrogatepass"))
    assert fast == full


def test_only_plain_text_skips_making_strings_inert():
    assert json_text_is_inert('{"a": "b \\n", "c": [1.5]}')
    assert json_text_is_inert('{"a": "caf\u00e9"}')
    for unsafe in ('{"a": "\\u001b"}', '{"a": "\\u00e9"}', '{"a": "\x7f"}', '{"a": "\x85"}', '{"a": "\ufffe"}'):
        assert not json_text_is_inert(unsafe), unsafe


def stats(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"shape": [2, 3], "dtype": "float32", "sha256": SHA, "nonfinite": 0, "min": -1.0,
                           "max": 1.0, "mean": 0.25, "l1": 3.0, "l2": 2.0, "sample": [0.5, -0.5, 1.0]}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()
STATS = [
    stats(), stats(min=None, max=None, mean=None, l1=None, l2=None), stats(min=DROP, l2=DROP),
    stats(min=1, max=True), stats(sample=[1, 2.0]), stats(sample=["nan", "inf", "-inf"]), stats(sample=["x"]),
    stats(sample=[True]), stats(shape=[2, -3]), stats(shape=[2, True]), stats(shape=[1] * 9), stats(shape=(2, 3)),
    stats(nonfinite=7), stats(nonfinite=-1), stats(nonfinite=1.0), stats(nonfinite=False),
    stats(sample=[0.0] * 7), stats(shape=[0], sample=[], nonfinite=0), stats(dtype="float 32"), stats(dtype=3),
    stats(sha256=SHA.upper()), stats(sha256=DROP), stats(shape=DROP), stats(min=10**400), stats(extra="kept out"),
    [], None, "stats",
]


@pytest.mark.parametrize("obj", STATS, ids=range(len(STATS)))
def test_statistics_read_the_same_either_way(monkeypatch, obj):
    fast, full = both_ways(monkeypatch, bundle_own.stats_from_json, obj, "s")
    assert fast == full


def record(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": "", "stats": stats(), "array": None}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


def module(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "encoder.layers.0", "call": 1, "type": "Linear", "tensors": [record()]}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not DROP}


MODULES = [
    module(), module(name=""), module(tensors=[]), module(tensors=[record(), record(path="[1]")]),
    module(call=0), module(call=True), module(call=1.0), module(name=None), module(name="n" * 513),
    module(type="T" * 129), module(type=DROP), module(tensors=[record()] * (bundle_own.MAX_CALL_TENSORS + 1)),
    module(tensors=[record(path=DROP)]), module(tensors=[record(path="p" * 257)]), module(tensors=[record(array=DROP)]),
    module(tensors=[record(array={"sha256": SHA, "dtype": "float32", "shape": [2, 3]})]),
    module(tensors=[record(array={"sha256": SHA, "dtype": "float32", "shape": [3, 2]})]),
    module(tensors=[record(stats=stats(sample=["nan"]))]), module(tensors=[record(extra=1)]),
    module(truth_rel_error=0.5), module(truth_rel_error=-1.0), module(extra=True), module(tensors=[[]]),
    "module",
    module(truth_rel_error=None), module(truth_rel_error=0), module(truth_rel_error=True),
    module(truth_rel_error=float("nan")), module(truth_rel_error=float("inf")), module(truth_rel_error="0.5"),
    module(truth_rel_error=0.5, extra=1), module(truth_rel_error=0.5, call=DROP), module(call=DROP, extra=1),
    module(tensors=[record(stats=stats(min=DROP))]), module(tensors=[record(stats=stats(shape=[]))]),
    module(tensors=[record(stats=stats(shape=[], sample=[0.5], nonfinite=1))]),
    module(tensors=[record(stats=stats(shape=[2, 0], sample=[], nonfinite=0))]),
    module(tensors=[record(stats=stats(sample=[0.0] * 6, nonfinite=6))]),
    module(tensors=[record(stats=stats(shape=[100], sample=[0.0] * 65))]),
    module(tensors=[record(stats=stats(shape=[1] * 8, sample=[0.0]))]),
    module(tensors=[record(stats=stats(sha256=SHA[:-1] + "g"))]), module(tensors=[record(stats=stats(sha256=SHA + "a"))]),
    module(tensors=[record(stats=stats(dtype=""))]), module(tensors=[record(stats=stats(dtype="x" * 129))]),
    module(tensors=[record(stats=stats(sample=[0.5, float("nan")]))]), module(tensors=[record(stats=stats(l1=float("inf")))]),
    module(tensors=[record(stats=[])]), module(tensors=[record(path=1)]), module(tensors=[record(), "t"]),
    module(call=-1), module(call=2**70), module(type=""), module(type=None), module(name=1), module(tensors=None),
    module(tensors={}), {}, [], None, 1,
]


@pytest.mark.parametrize("obj", MODULES, ids=range(len(MODULES)))
def test_module_calls_read_the_same_either_way(monkeypatch, obj):
    """Alone, and among plain calls (before and after them): one odd call sends the whole list the full way."""
    for calls in ([obj], [module(), obj], [obj, module(call=2)]):
        fast, full = both_ways(monkeypatch, bundle_own._modules, calls, "own.modules", DEFAULT_LIMITS)
        assert fast == full


def test_mixed_module_calls_read_the_same_either_way(monkeypatch):
    calls = [module(), module(truth_rel_error=0.25), module(truth_rel_error=None, tensors=[]),
             module(name="b", call=3, tensors=[record(path=f"[{i}]") for i in range(bundle_own.MAX_CALL_TENSORS)])]
    fast, full = both_ways(monkeypatch, bundle_own._modules, calls, "own.modules", DEFAULT_LIMITS)
    assert fast == full
    assert [m.truth_rel_error for m in fast] == [None, 0.25, None, None]
    assert [len(m.tensors) for m in fast] == [1, 1, 0, bundle_own.MAX_CALL_TENSORS]


def test_a_whole_own_case_reads_the_same_either_way(monkeypatch):
    case = own_case(MemoryArrays(), "deep", [("", np.ones((2, 3), np.float32))],
                    chain(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), 40))
    obj = json.loads(json.dumps(own_json(case.own)))
    fast, full = both_ways(monkeypatch, own_from_json, obj, "own", DEFAULT_LIMITS)
    assert fast == full == case.own


def test_what_capture_writes_takes_the_fast_paths():
    """The comparisons above are not empty: plain input really goes the fast way."""
    assert bundle_own._plain_stats(stats()) is not None
    assert bundle_own._plain_stats(stats(min=1)) is None  # an integer figure: the full check converts it
    assert bundle_own._plain_stats(stats(min=DROP)) is None  # capture writes every key
    assert bundle_own._plain_modules([module(), module(truth_rel_error=0.5)]) is not None
    assert bundle_own._plain_modules([module(), module(extra=True)]) is None  # a key it does not know
    assert bundle._tree_ok(json.loads(MANIFESTS[0]), DEFAULT_LIMITS) is not None
    assert bundle._tree_ok({"a": float("nan")}, DEFAULT_LIMITS) is None
    plain = '{"t": "12:00:00", "k:1": ["a:b", {"c:": ":"}]}'
    assert bundle._parse_plain(plain, DEFAULT_LIMITS) == json.loads(plain)
    assert bundle._parse_plain('{"a": "x:y", "a": "z"}', DEFAULT_LIMITS) is None  # a duplicate: the full parse says so
