"""Real drift in the team's own models, in fresh processes, checked against the test's own recomputation.

Captures run with ``driftboard capture --suite own`` under settings that move
this machine's CPU numbers (oneDNN off; ``ATEN_CPU_CAPABILITY=default``) and
under the same settings twice. For every case, a separate script, in fresh
processes under the same settings, rebuilds the model from the same cases file
and hashes every module call's output with its own forward hooks. The module
calls driftboard reports as changed, and the first of them, must be exactly
those the hashes say; a model whose seeded default init moves with the CPU
capability must be reported as "weights differ", never as drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from driftboard.core.bundle import Bundle, read_bundle
from driftboard.core.compare import Verdict, compare_runs
from driftboard.core.processes import driftboard_command, python_command

torch = pytest.importorskip("torch")
from driftboard.core import capture as capture_mod  # noqa: E402  (imports torch)

pytestmark = pytest.mark.slow

CASES = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    import driftboard
    from driftboard.core import suite


    def fill(model):
        rng = np.random.RandomState(0)  # numpy's frozen generator: the same weights under every CPU capability
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.from_numpy(rng.uniform(-0.3, 0.3, tuple(p.shape))))
        return model


    def data(*shape, seed=1):
        return torch.from_numpy(np.random.RandomState(seed).uniform(-1, 1, shape)).float()


    class ConvGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(8, 16, 3, padding=1)
            self.gru = nn.GRU(16, 32, batch_first=True)
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            out, _ = self.gru(torch.relu(self.conv(x)).transpose(1, 2))
            return self.head(out)


    class SharedTwice(nn.Module):
        def __init__(self):
            super().__init__()
            self.shared = nn.Linear(32, 32)
            self.lstm = nn.LSTM(32, 32, batch_first=True)

        def forward(self, x):
            h, _ = self.lstm(torch.tanh(self.shared(x)))
            return self.shared(h)


    class DictOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(10, 20, batch_first=True)
            self.logits = nn.Linear(20, 5)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return {"logits": self.logits(out), "state": (h, c)}


    @driftboard.case
    def conv_gru():
        return fill(ConvGRU()), data(4, 8, 30)


    @driftboard.case(dtypes=["float32", "float64"])
    def seed_lstm():
        return fill(suite.LSTMModel(1)), data(64, 30, 10)


    @driftboard.case(dtypes=["float32", "float64"])
    def seed_lstm_2layer():
        return fill(suite.LSTMModel(2)), data(64, 30, 10)


    @driftboard.case
    def seed_lstm_cell():
        return fill(suite.LSTMCellModel()), data(64, 30, 10)


    @driftboard.case
    def encoder():
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
        return fill(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)), data(4, 16, 64)


    @driftboard.case
    def encoder_silu():
        """An activation the fused path does not take: every submodule (self_attn, linear1, ...) runs and is recorded."""
        layer = nn.TransformerEncoderLayer(64, 4, 128, activation=torch.nn.functional.silu, batch_first=True)
        return fill(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)), data(4, 16, 64)


    @driftboard.case
    def encoder_bf16():
        model, x = encoder()
        return driftboard.Case(model, x, autocast="bfloat16")


    @driftboard.case
    def shared_twice():
        return fill(SharedTwice()), data(8, 12, 32)


    @driftboard.case
    def dict_out():
        return fill(DictOut()), data(16, 20, 10)


    @driftboard.case
    def seeded_lstm():
        return suite.LSTMModel(1), data(64, 30, 10)  # torch's default init, seeded by capture
''')

RECOMPUTE = textwrap.dedent('''
    """Every case of the cases file, hashed with this script's own hooks (run under the capture's settings)."""
    import hashlib, importlib.util, json, sys
    import torch
    import driftboard

    if sys.argv[2] == "onednn-off":
        torch.backends.mkldnn.enabled = False
    spec = importlib.util.spec_from_file_location("cases_under_test", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def leaves(value):
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        elif isinstance(value, (tuple, list)):
            for v in value:
                yield from leaves(v)

    def digest(t):
        t = t.detach().contiguous()
        return hashlib.sha256((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()).hexdigest()

    out = {}
    for name, dtypes in (("conv_gru", [None]), ("seed_lstm", ["float32", "float64"]),
                         ("seed_lstm_2layer", ["float32", "float64"]), ("seed_lstm_cell", [None]), ("encoder", [None]),
                         ("encoder_silu", [None]), ("encoder_bf16", [None]), ("shared_twice", [None]),
                         ("dict_out", [None]), ("seeded_lstm", [None])):
        for dtype in dtypes:
            torch.manual_seed(0)
            made = getattr(module, name)()
            model, x, cast = (made.model, made.inputs, made.autocast) if isinstance(made, driftboard.Case) else (*made, None)
            if dtype is not None:
                model, x = model.to(getattr(torch, dtype)), x.to(getattr(torch, dtype))
            model.eval()
            weights = hashlib.sha256(b"".join(digest(v).encode() for _, v in sorted(model.state_dict().items()))).hexdigest()
            calls, counts, names = [], {}, {id(m): n for n, m in model.named_modules()}
            def hook(mod, args, output):
                name = names.get(id(mod))
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
                    calls.append([name, counts[name], [digest(t) for t in leaves(output)]])
            handles = [torch.nn.modules.module.register_module_forward_hook(hook)]
            context = torch.autocast("cpu", dtype=torch.bfloat16) if cast else torch.autocast("cpu", enabled=False)
            with torch.no_grad(), context:
                model(x)
            for h in handles:
                h.remove()
            with torch.no_grad(), context:
                plain = [digest(t) for t in leaves(model(x))]
            out[f"{name}/{dtype or 'float32'}"] = {"weights": weights, "calls": calls, "outputs": plain}
    print(json.dumps(out))
''')


def _env(capability: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    return {**env, "ATEN_CPU_CAPABILITY": capability} if capability else env


SETTINGS = {  # name -> (capture variant, ATEN_CPU_CAPABILITY)
    "default": ("default", None),
    "default-again": ("default", None),
    "onednn-off": ("onednn-off", None),
    "cpu-default": ("cpu-default", "default"),
}


@pytest.fixture(scope="module")
def drift(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Bundle, dict]]:
    root = tmp_path_factory.mktemp("own_drift")
    cases = root / "driftboard_cases.py"
    cases.write_text(CASES, encoding="utf-8")
    script = root / "recompute.py"
    script.write_text(RECOMPUTE, encoding="utf-8")
    found = {}
    for name, (variant, capability) in SETTINGS.items():
        if capability and capture_mod.cpu_capability() == capability:
            continue
        out = root / f"{name}.driftboard"
        subprocess.run([*driftboard_command(), "capture", "-q", "--suite", "own", "--repeats", "2", "--variant", variant,
                        "-o", str(out)], cwd=root, env=_env(capability), check=True, capture_output=True, timeout=600)
        done = subprocess.run(python_command(str(script), str(cases), variant), cwd=root, env=_env(capability),
                              check=True, capture_output=True, text=True, timeout=600)
        found[name] = (read_bundle(out), json.loads(done.stdout))
    return found


def _check(drift: dict, baseline: str, candidate: str) -> dict[str, set]:
    """Every case's verdict, changed calls and first divergent call against the recomputation; the changed calls."""
    (a, ours_a), (b, ours_b) = drift[baseline], drift[candidate]
    result = compare_runs(a.run, a.arrays, b.run, b.arrays)
    changed_by_case = {}
    for case in result.cases:
        mine_a, mine_b = ours_a[f"{case.case_id}/{case.dtype}"], ours_b[f"{case.case_id}/{case.dtype}"]
        assert [(m.name, m.call) for m in case.modules] == [(n, k) for n, k, _ in mine_a["calls"]]
        if mine_a["weights"] != mine_b["weights"]:
            assert case.verdict is Verdict.INPUTS_DIFFER and case.differs == ("weights",), case.detail
            continue
        expected = [(n, k) for (n, k, x), (_, _, y) in zip(mine_a["calls"], mine_b["calls"]) if x != y]
        assert [(m.name, m.call) for m in case.modules if not m.identical] == expected, case.key
        first = case.first_divergent_module
        assert (first.name, first.call) == expected[0] if expected else first is None, case.key
        same_outputs = mine_a["outputs"] == mine_b["outputs"]
        assert (case.verdict is Verdict.IDENTICAL) is same_outputs, (case.key, case.verdict)
        if not same_outputs:
            assert case.verdict in (Verdict.WITHIN_TOLERANCE, Verdict.DRIFT) and case.passing.exact
        changed_by_case[f"{case.case_id}/{case.dtype}"] = set(expected)
    return changed_by_case


def test_identical_settings_give_identical_numbers(drift) -> None:
    a, b = drift["default"][0], drift["default-again"][0]
    result = compare_runs(a.run, a.arrays, b.run, b.arrays)
    assert {c.verdict for c in result.cases} == {Verdict.IDENTICAL}
    assert len(result.cases) == 12 and all(c.first_divergent_module is None for c in result.cases)
    _check(drift, "default", "default-again")


def test_onednn_off_moves_the_conv_and_the_lstms_where_the_recomputation_says(drift) -> None:
    changed = _check(drift, "default", "onednn-off")
    assert ("conv", 1) in changed["conv_gru/float32"]  # real drift, from the first module on
    assert ("lstm", 1) in changed["seed_lstm/float32"]
    a, b = drift["default"][0], drift["onednn-off"][0]
    case = compare_runs(a.run, a.arrays, b.run, b.arrays).case("conv_gru")
    assert case.first_divergent_module.label == "conv (Conv1d), call 1"


def test_a_lower_cpu_capability_is_weights_differ_for_seeded_init_and_judged_drift_elsewhere(drift) -> None:
    if "cpu-default" not in drift:
        pytest.skip("this machine already runs ATEN_CPU_CAPABILITY=default")
    changed = _check(drift, "default", "cpu-default")
    a, b = drift["default"][0], drift["cpu-default"][0]
    seeded = compare_runs(a.run, a.arrays, b.run, b.arrays).case("seeded_lstm")
    assert seeded.verdict is Verdict.INPUTS_DIFFER and seeded.differs == ("weights",)
    assert "torch's random stream (seeded default init)" in seeded.finding
    assert a.run.case("seeded_lstm").own.weights_rng and not a.run.case("seed_lstm").own.weights_rng
    assert any(changed.values()), "no module moved under the lower capability: the check would prove nothing"
