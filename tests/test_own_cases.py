"""Declaring the team's own models: cases files, ``--model``, ``--suite``, and everything a user can get wrong.

Real torch models and real captures; the command line runs in fresh processes
(``driftboard_command``) where a one-line error and the exit status are what a
user sees.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from driftboard.core.bundle import read_bundle
from driftboard.core.errors import CaseError, CasesFileError, DriftboardError
from driftboard.core.processes import driftboard_command, python_command

torch = pytest.importorskip("torch")
from driftboard.core import own_cases, suite  # noqa: E402  (imports torch)
from driftboard.core.capture import CaptureOptions, capture, own_specs  # noqa: E402

HEAD = "import torch\nfrom torch import nn\nimport driftboard\n"
LINEAR = HEAD + textwrap.dedent('''
    @driftboard.case
    def linear():
        torch.manual_seed(3)
        return nn.Linear(4, 3), torch.randn(2, 4)
''')


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*driftboard_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def own_run(tmp_path: Path, text: str, **options):
    path = write(tmp_path, "cases.py", text)
    run, arrays = capture(CaptureOptions(suite="own", cases_file=str(path), repeats=options.pop("repeats", 1),
                                         **options))
    return run, arrays


# ---------------------------------------------------------------- the public API stays light


def test_import_driftboard_and_declaring_a_case_load_no_torch() -> None:
    code = ("import sys, driftboard\n"
            "@driftboard.case(dtypes=['float32'], devices=['cpu'])\n"
            "def f(): pass\n"
            "assert driftboard.Case and 'case' in driftboard.__all__\n"
            "assert not {'torch', 'numpy'} & set(sys.modules), sorted(m for m in sys.modules if m in ('torch', 'numpy'))\n"
            "driftboard.case(tolerance='ulp:4')(f)  # parsing a policy loads the comparison package, still no torch\n"
            "assert 'torch' not in sys.modules")
    subprocess.run(python_command("-c", code), check=True, capture_output=True)


@pytest.mark.parametrize(("options", "words"), [
    ({"name": "bad name!"}, "case name 'bad name!' is not usable"),
    ({"dtypes": ["float8"]}, "dtype 'float8' is not one of"),
    ({"devices": ["gpu0"]}, "device 'gpu0' is not a device name"),
    ({"autocast": "float64"}, "autocast 'float64' is not one of float16, bfloat16"),
    ({"tolerance": "rtol=1e-3"}, "rtol and atol must be given together"),
    ({"dtypes": []}, "an empty list of dtypes"),
])
def test_a_bad_option_is_refused_when_the_case_is_declared(options, words) -> None:
    import driftboard

    def factory() -> None:
        pass

    with pytest.raises(DriftboardError, match=words):
        driftboard.case(**options)(factory)


# ---------------------------------------------------------------- finding the cases file


def test_the_cases_file_is_found_here_then_at_the_repository_root(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    inner = root / "src" / "pkg"
    inner.mkdir(parents=True)
    assert own_cases.find_cases_file(inner) is None
    at_root = write(root, "driftboard_cases.py", LINEAR)
    assert own_cases.find_cases_file(inner) == at_root
    here = write(inner, "driftboard_cases.py", LINEAR)
    assert own_cases.find_cases_file(inner) == here


def test_pyproject_names_the_cases_file(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", '[project]\nname = "x"\n\n[tool.driftboard]\ncases = "qa/numbers.py"\n')
    named = write(tmp_path, "qa/numbers.py", LINEAR)
    write(tmp_path, "driftboard_cases.py", LINEAR)  # the named one wins
    assert own_cases.find_cases_file(tmp_path) == named
    write(tmp_path, "pyproject.toml", '[tool.driftboard]\ncases = "missing.py"\n')
    with pytest.raises(CasesFileError, match=r"pyproject.toml: \[tool.driftboard\] cases names missing.py, which does not exist"):
        own_cases.find_cases_file(tmp_path)
    write(tmp_path, "pyproject.toml", "this is [not toml")
    assert own_cases.find_cases_file(tmp_path) == tmp_path / "driftboard_cases.py"  # not ours to judge


def test_capture_picks_up_the_cases_file_and_suite_chooses(tmp_path: Path) -> None:
    write(tmp_path, "driftboard_cases.py", LINEAR)
    both = cli("capture", "-q", "--repeats", "1", "--case", "linear_10_5", "--case", "linear", "-o", "all.driftboard",
               cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    keys = {(c.case_id, c.kind) for c in read_bundle(tmp_path / "all.driftboard").run.cases}
    assert keys == {("linear_10_5", "suite"), ("linear", "own")}
    reference = cli("capture", "-q", "--repeats", "1", "--suite", "reference", "--case", "linear_10_5", "-o",
                    "ref.driftboard", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    assert {c.case_id for c in read_bundle(tmp_path / "ref.driftboard").run.cases} == {"linear_10_5"}
    own = cli("capture", "--repeats", "1", "--suite", "own", "-o", "own.driftboard", cwd=tmp_path)
    assert own.returncode == 0, own.stderr
    assert "1 own case(s) (linear); 1 module calls recorded (statistics)" in own.stdout
    assert [c.key for c in read_bundle(tmp_path / "own.driftboard").run.cases] == [("linear", "cpu", "float32")]


def test_suite_own_without_any_case_is_a_one_line_error(tmp_path: Path) -> None:
    done = cli("capture", "--suite", "own", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--suite own, but there is no driftboard_cases.py" in done.stderr


# ---------------------------------------------------------------- --model


def test_model_names_a_file_or_a_module_factory(tmp_path: Path) -> None:
    write(tmp_path, "models/net.py", HEAD + "def build():\n    return nn.Linear(3, 2), torch.ones(1, 3)\n")
    write(tmp_path, "mypkg/__init__.py", "")
    write(tmp_path, "mypkg/factories.py", HEAD + "def tiny():\n    return nn.Tanh(), {'input': torch.ones(2)}\n")
    done = cli("capture", "-q", "--repeats", "1", "--suite", "own", "--model", "models/net.py:build",
               "--model", "mypkg.factories:tiny", "-o", "m.driftboard", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cases = {c.case_id: c for c in read_bundle(tmp_path / "m.driftboard").run.cases}
    assert set(cases) == {"build", "tiny"} and not any(c.error for c in cases.values())
    assert cases["build"].own.source == "models/net.py:build" and cases["tiny"].own.source == "mypkg.factories:tiny"
    assert cases["tiny"].own.outputs[0].stats.shape == (2,)  # the dict was passed as keyword arguments


@pytest.mark.parametrize(("spec", "words"), [
    ("models/none.py:build", "no such file models/none.py"),
    ("models/net.py:nothing", "has no 'nothing'"),
    ("no_such_package.mod:f", "cannot import no_such_package.mod: ModuleNotFoundError"),
    ("justaname", "expected path/to/file.py:factory"),
])
def test_a_bad_model_spec_is_a_one_line_error(tmp_path: Path, spec: str, words: str) -> None:
    write(tmp_path, "models/net.py", HEAD + "def build():\n    return nn.Linear(3, 2), torch.ones(1, 3)\n")
    done = cli("capture", "--suite", "own", "--model", spec, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr


# ---------------------------------------------------------------- a cases file that cannot be imported


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "driftboard_cases.py", HEAD + "\n@driftboard.case\ndef broken(:\n    pass\n")
    done = cli("capture", "--suite", "own", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "driftboard_cases.py, line 6: invalid syntax" in done.stderr
    assert not list(tmp_path.glob("driftboard-runs/*")), "nothing is written"


def test_an_error_while_importing_names_the_innermost_line_of_the_users_code(tmp_path: Path) -> None:
    write(tmp_path, "helpers.py", "def scale():\n    return 1 / 0\n")
    write(tmp_path, "driftboard_cases.py", HEAD + "import helpers\nFACTOR = helpers.scale()\n")
    done = cli("capture", "--suite", "own", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "ZeroDivisionError: division by zero" in done.stderr and "helpers.py, line 2)" in done.stderr
    write(tmp_path, "driftboard_cases.py", HEAD + "\n\n@driftboard.case(dtypes=['float128'])\ndef f():\n    pass\n")
    done = cli("capture", "--suite", "own", cwd=tmp_path)
    assert "CaseError: dtype 'float128' is not one of" in done.stderr and "driftboard_cases.py, line 6)" in done.stderr


def test_names_that_collide_are_refused_before_anything_runs(tmp_path: Path) -> None:
    write(tmp_path, "driftboard_cases.py", HEAD + "@driftboard.case(name='linear_10_5')\ndef mine():\n    raise SystemExit\n")
    with pytest.raises(CaseError, match="case 'linear_10_5' .* has the name of a reference-suite case: rename it"):
        own_specs(CaptureOptions(cases_file=str(tmp_path / "driftboard_cases.py")))
    write(tmp_path, "other.py", HEAD + "@driftboard.case(name='twice')\ndef a():\n    pass\n")
    write(tmp_path, "again.py", HEAD + "def twice():\n    pass\n")
    with pytest.raises(CaseError, match="two cases are named 'twice'"):
        own_specs(CaptureOptions(cases_file=str(tmp_path / "other.py"), models=(f"{tmp_path / 'again.py'}:twice",)))
    assert "linear_10_5" in {c.case_id for c in suite.CASES}


# ---------------------------------------------------------------- a case that fails is recorded, the rest goes on


def test_failing_factories_are_recorded_and_the_capture_goes_on(tmp_path: Path) -> None:
    text = HEAD + textwrap.dedent('''
        @driftboard.case
        def raises():
            raise RuntimeError("checkpoint not found: /data/model.pt")

        @driftboard.case
        def not_a_module():
            return (lambda x: x), torch.ones(2)

        @driftboard.case
        def text_output():
            class Talker(nn.Module):
                def forward(self, x):
                    return {"logits": x * 2, "label": "cat"}
            return Talker(), torch.ones(2)

        @driftboard.case
        def nothing_returned():
            return None

        @driftboard.case
        def sparse_output():
            class Sparse(nn.Module):
                def forward(self, x):
                    return x.to_sparse()
            return Sparse(), torch.eye(3)

        @driftboard.case(devices=["cpu"], dtypes=["float32", "float64"])
        def good():
            return nn.Linear(2, 2), torch.ones(1, 2)
    ''')
    run, _ = own_run(tmp_path, text)
    errors = {c.key: c.error for c in run.cases}
    assert errors[("raises", "cpu", "float32")] == "RuntimeError: checkpoint not found: /data/model.pt"
    assert "not a torch.nn.Module" in errors[("not_a_module", "cpu", "float32")]
    assert errors[("text_output", "cpu", "float32")] == (
        "OutputTypeError: output ['label'] is str, not a tensor (expected a tensor, or tuples, lists and dicts of tensors)")
    assert "expected (model, inputs) or driftboard.Case" in errors[("nothing_returned", "cpu", "float32")]
    assert errors[("sparse_output", "cpu", "float32")] == (
        "OutputTypeError: output (top) is a torch.sparse_coo tensor: expected dense tensors")
    assert errors[("good", "cpu", "float32")] is None and errors[("good", "cpu", "float64")] is None
    assert all(c.kind == "own" for c in run.cases)


def test_a_hanging_factory_times_out_and_the_capture_goes_on(tmp_path: Path) -> None:
    write(tmp_path, "driftboard_cases.py", HEAD + textwrap.dedent('''
        import time

        @driftboard.case
        def hangs():
            while True:
                try:
                    time.sleep(60)
                except Exception:  # a factory that swallows errors still cannot swallow the time limit
                    pass

        @driftboard.case
        def quick():
            return nn.ReLU(), torch.ones(2)
    '''))
    done = cli("capture", "-q", "--suite", "own", "--repeats", "1", "--case-timeout", "1", "-o", "t.driftboard",
               cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    cases = {c.case_id: c for c in read_bundle(tmp_path / "t.driftboard").run.cases}
    assert cases["hangs"].error.startswith("timed out after 1 s (raise --case-timeout")
    assert cases["quick"].error is None


def test_a_nondeterministic_model_is_recorded_as_such(tmp_path: Path) -> None:
    run, _ = own_run(tmp_path, HEAD + textwrap.dedent('''
        class Noisy(nn.Module):
            def forward(self, x):
                return x + torch.rand_like(x)

        @driftboard.case
        def noisy():
            return Noisy(), torch.zeros(3)

        @driftboard.case
        def steady():
            return nn.Identity(), torch.zeros(3)
    '''), repeats=3)
    assert not run.case("noisy").repeat_identical and run.case("noisy").repeats == 3
    assert run.case("steady").repeat_identical


def test_case_filters_own_cases_too(tmp_path: Path) -> None:
    text = LINEAR + "\n@driftboard.case\ndef other():\n    return nn.ReLU(), torch.ones(2)\n"
    run, _ = own_run(tmp_path, text, case_ids=("other",))
    assert [c.case_id for c in run.cases] == ["other"]
    with pytest.raises(DriftboardError, match="unknown case 'nope'; known: .*linear, other"):
        own_run(tmp_path, text, case_ids=("nope",))


def test_declared_devices_missing_here_are_skipped(tmp_path: Path) -> None:
    text = HEAD + "@driftboard.case(devices=['cpu', 'cuda', 'mps'])\ndef m():\n    return nn.ReLU(), torch.ones(2)\n"
    run, _ = own_run(tmp_path, text)
    expected = {"cpu"} | ({"cuda"} if torch.cuda.is_available() else set())
    assert {c.device for c in run.cases} <= expected | {"mps"} and "cpu" in {c.device for c in run.cases}


def test_sweep_passes_own_options_to_every_variant(tmp_path: Path) -> None:
    from driftboard.cli.capture_cmd import OwnChoice

    args = OwnChoice("own", ("m.py:f",), "cases.py", "full", 8, 5.0).args()
    assert args == ["--suite", "own", "--layers", "full", "--layers-cap", "8", "--case-timeout", "5", "--steps", "50",
                    "--seed", "0", "--model=m.py:f", "--cases=cases.py"]
    assert OwnChoice(steps=7, seed=None).args()[-3:] == ["--steps", "7", "--no-seed"]  # training, to every variant
    assert sys.executable  # the sweep itself runs in test_capture.py


def test_the_example_cases_file_captures_cleanly(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "driftboard_cases.py"
    run, _ = capture(CaptureOptions(suite="own", cases_file=str(example), repeats=1))
    assert {c.key for c in run.cases} == {("encoder", "cpu", "float32"), ("conv_gru", "cpu", "float32"),
                                          ("conv_gru", "cpu", "float64"), ("encoder_bf16", "cpu", "float32")}
    assert not any(c.error for c in run.cases)
    assert not any(c.own.weights_rng or c.own.inputs_rng for c in run.cases)  # weights from numpy: comparable anywhere
    assert run.case("conv_gru").own.tolerance == "ulp:64" and run.case("encoder_bf16").own.autocast == "bfloat16"
