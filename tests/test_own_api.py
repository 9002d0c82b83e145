"""The public Python API for own models: ``capture_model`` and ``assert_same_numbers``, and the README's pytest example."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import driftboard
from driftboard.core.processes import python_command
from driftboard.db.store import Store

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"


def mlp() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3)), torch.linspace(-1, 1, 24).reshape(4, 6)


def test_capture_model_returns_a_bundle_and_leaves_the_model_as_it_was(tmp_path: Path) -> None:
    model, x = mlp()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    rng = torch.random.get_rng_state()
    bundle = driftboard.capture_model(model, x, name="mlp", dtypes=["float64"], output=tmp_path / "m.driftboard",
                                      repeats=2)
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)  # the caller's random stream is untouched
    (case,) = bundle.run.cases
    assert case.key == ("mlp", "cpu", "float64") and case.own.source == "capture_model(mlp)"
    assert [m.label for m in case.own.modules][-1] == "(model) (Sequential), call 1"
    assert driftboard.read_bundle(tmp_path / "m.driftboard").run == bundle.run
    assert bundle.run.fingerprint["torch"]["version"] == torch.__version__


def test_assert_same_numbers_writes_a_missing_golden_then_compares(tmp_path: Path) -> None:
    golden = tmp_path / "golden" / "mlp.driftboard"
    model, x = mlp()
    with pytest.raises(driftboard.NumbersDifferError, match="no golden at .*mlp.driftboard: this run was written there"):
        driftboard.assert_same_numbers(model, x, name="mlp", golden=golden)
    result = driftboard.assert_same_numbers(model, x, name="mlp", golden=golden, policy="bitwise")
    assert result.worst is driftboard.Verdict.IDENTICAL
    with torch.no_grad():
        model[2].bias.add_(1e-6)  # the weights change: not the same numbers, and not drift either
    with pytest.raises(AssertionError, match="weights differ: compute not judged"):
        driftboard.assert_same_numbers(model, x, name="mlp", golden=golden)
    driftboard.assert_same_numbers(model, x, name="mlp", golden=golden, update=True)
    driftboard.assert_same_numbers(model, x, name="mlp", golden=golden)


def test_the_failure_message_is_the_compare_case_report(tmp_path: Path) -> None:
    golden = tmp_path / "g.driftboard"
    model, x = mlp()
    driftboard.capture_model(model, x, name="mlp", output=golden)
    class RoundsDifferently(nn.ReLU):  # the same weights; a kernel that rounds otherwise, from the second module on
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return super().forward(t) * (1 + 2**-20)

    model[1] = RoundsDifferently()
    with pytest.raises(driftboard.NumbersDifferError) as caught:
        driftboard.assert_same_numbers(model, x, name="mlp", golden=golden, policy="ulp:1")
    message = str(caught.value)
    assert message.startswith("1 of 1 case(s) differ from golden ")
    assert "mlp/cpu/float32: drift" in message and "Smallest tolerance that passes: passes at ulp:" in message
    assert "first divergent: 1 (ReLU), call 1" in message and "Worst elements" in message  # the baseline's type
    assert caught.value.comparison.case("mlp").verdict is driftboard.Verdict.DRIFT


def test_a_stored_run_can_be_the_golden(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'g.sqlite'}"
    model, x = mlp()
    path = tmp_path / "stored.driftboard"
    bundle = driftboard.capture_model(model, x, name="mlp", output=path)
    with Store(db) as store:
        store.ingest(path)
    driftboard.assert_same_numbers(model, x, name="mlp", golden=bundle.run.run_id, db=db)
    with pytest.raises(AssertionError, match="has no case named other"):
        driftboard.assert_same_numbers(model, x, name="other", golden=bundle.run.run_id, db=db)


def test_the_readme_pytest_example_runs(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- own-models-pytest-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README lost its pytest example for own models"
    (tmp_path / "test_numbers.py").write_text(found.group(1), encoding="utf-8")
    first = subprocess.run(python_command("-m", "pytest", "-q", "-p", "no:cacheprovider", "test_numbers.py"),
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1 and "no golden at" in first.stdout, first.stdout
    second = subprocess.run(python_command("-m", "pytest", "-q", "-p", "no:cacheprovider", "test_numbers.py"),
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout
