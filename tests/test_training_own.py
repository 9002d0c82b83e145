"""A case of the team's own models declares a training step: recorded like the suite's training cases, in a fresh process."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from driftboard.core.bundle import read_bundle
from driftboard.core.compare import compare_runs
from driftboard.core.errors import CaseError
from driftboard.core.processes import driftboard_command

pytestmark = pytest.mark.slow

CASES = textwrap.dedent('''
    import torch
    import driftboard

    def _batches():
        g = torch.Generator().manual_seed(3)
        return [(torch.rand(8, 4, generator=g), torch.rand(8, 2, generator=g)) for _ in range(3)]

    def mse(model, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(model(x), y)

    @driftboard.case(dtypes=["float32"], devices=["cpu"])
    def toy():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        training = driftboard.Training(step=mse, optimizer=lambda p: torch.optim.Adam(p, lr=0.01), batches=_batches())
        return driftboard.Case(model, torch.ones(2, 4), training=training)

    @driftboard.case(dtypes=["float32"], devices=["cpu"])
    def broken():
        model = torch.nn.Linear(4, 2)
        training = driftboard.Training(step=lambda m, b: m(b), optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
                                       batches=[torch.ones(3, 4)])
        return driftboard.Case(model, torch.ones(1, 4), training=training)
''')


def test_own_case_training_is_recorded_and_compared(tmp_path: Path) -> None:
    cases = tmp_path / "driftboard_cases.py"
    cases.write_text(CASES)
    out = tmp_path / "own.driftboard"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    subprocess.run([*driftboard_command(), "capture", "-q", "--suite", "own", "--cases", str(cases), "--steps", "7",
                    "--repeats", "1", "-o", str(out)], check=True, capture_output=True, cwd=tmp_path, env=env)
    bundle = read_bundle(out)
    keys = sorted(c.case_id for c in bundle.run.cases)
    assert keys == ["broken", "broken/train", "toy", "toy/train"]
    trained = bundle.run.case("toy/train")
    assert trained.kind == "own" and trained.error is None and trained.training.steps == 7
    assert trained.training.optimizer.startswith("Adam(lr=0.01") and trained.training.loss_fn == "mse"
    assert trained.training.param_digests[-1] == trained.output.sha256 and trained.output.shape == (58,)
    assert trained.training.loss[0] != trained.training.loss[-1]  # it trained
    assert "one-element loss tensor" in bundle.run.case("broken/train").error
    assert bundle.run.case("toy").training is None and bundle.run.case("toy").error is None  # the forward as before
    same = compare_runs(bundle.run, bundle.arrays, bundle.run, bundle.arrays).case("toy/train")
    assert same.training is not None and same.training.identical


def test_training_declaration_is_checked_when_declared() -> None:
    from driftboard.core.case_spec import Training

    with pytest.raises(CaseError, match="non-empty list of batches"):
        Training(step=lambda m, b: m(b), optimizer=lambda p: p, batches=[])
    with pytest.raises(CaseError, match="must be a function"):
        Training(step=None, optimizer=lambda p: p, batches=[1])
