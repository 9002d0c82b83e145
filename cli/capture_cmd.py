"""``driftboard capture``: fingerprint this machine and record the reference suite's and the team's own models' outputs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import click

from driftboard.cli.options import server_options, tags_option, team_server

DEFAULT_DIR = Path("driftboard-runs")


@dataclass(frozen=True)
class OwnChoice:
    """The capture options about the team's own models and training, passed along to every sweep variant."""

    suite: str = "all"
    models: tuple[str, ...] = ()
    cases_file: str | None = None
    layers: str = "statistics"
    layers_cap_mib: int = 64
    case_timeout: float = 300.0
    steps: int = 50
    seed: int | None = 0
    truth: bool = True  # False: --no-truth, no float64 pass

    def args(self) -> list[str]:
        out = ["--suite", self.suite, "--layers", self.layers, "--layers-cap", str(self.layers_cap_mib),
               "--case-timeout", f"{self.case_timeout:g}", "--steps", str(self.steps)]
        out += ["--no-seed"] if self.seed is None else ["--seed", str(self.seed)]
        out += [f"--model={m}" for m in self.models]
        out += [] if self.truth else ["--no-truth"]
        return out + ([f"--cases={self.cases_file}"] if self.cases_file else [])


@click.command()
@click.option("-o", "--output", type=click.Path(),
              help="Bundle file to write (.driftboard is added to a name without a suffix), or a directory "
                   "(default: ./driftboard-runs/).")
@click.option("--label", default="", help="Label for this run, e.g. 'gpu-node-3 after driver upgrade'.")
@tags_option
@click.option("--note", default="", help="Free-text note stored with the run.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Runs of each case in this process, to detect run-to-run nondeterminism.")
@click.option("--deterministic", is_flag=True, help="Run under torch.use_deterministic_algorithms(True) and deterministic cuDNN.")
@click.option("--variant", default="default", show_default=True,
              help="Settings variant: default, threads-N, onednn-off, deterministic, tf32-on, tf32-off, matmul-precision-P, "
                   "cpu-<capability>, ... or several joined by + (e.g. onednn-off+threads-1).")
@click.option("--sweep", is_flag=True, help="Capture once per settings variant of this machine, each in a fresh process.")
@click.option("--device", "devices", multiple=True, help="Only this device (repeatable; default: every available one).")
@click.option("--case", "case_ids", multiple=True,
              help="Only this case (repeatable; a suite case id or an own case's name; default: every case).")
@click.option("--suite", "suite_choice", type=click.Choice(["all", "reference", "own"]), default="all", show_default=True,
              help="The reference suite, the team's own models (cases file, --model), or both.")
@click.option("--model", "models", multiple=True, metavar="FILE.py:FACTORY|MODULE:FACTORY",
              help="A factory returning (model, inputs) to capture as an own case (repeatable).")
@click.option("--cases", "cases_file", type=click.Path(dir_okay=False),
              help="The cases file (default: [tool.driftboard] cases in pyproject.toml, else driftboard_cases.py "
                   "in the current directory or at the repository root, when present).")
@click.option("--layers", type=click.Choice(["statistics", "full", "none"]), default="statistics", show_default=True,
              help="Own models' module calls: statistics per call, full tensors too, or none (outputs only).")
@click.option("--layers-cap", "layers_cap", type=click.IntRange(0, 1024), default=64, show_default=True, metavar="MIB",
              help="With --layers full: MiB of whole tensors a run keeps (a bundle stops near 56 in any case); "
                   "past it, statistics.")
@click.option("--case-timeout", "case_timeout", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True, metavar="SECONDS", help="Time limit of one own case (its factory and forwards).")
@click.option("--steps", type=click.IntRange(1, 10_000), default=50, show_default=True,
              help="Optimizer steps of each training case (suite version 2 and own cases that declare a step).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Seed random, numpy, torch and CUDA with this before each training case (recorded with the run).")
@click.option("--no-seed", "no_seed", is_flag=True, help="Seed nothing before training (the run says the recipe lacks it).")
@click.option("--no-truth", "no_truth", is_flag=True,
              help="Skip the float64 truth: each float32/16/bf16 case is otherwise run once more on the CPU in float64 "
                   "with the same weights and inputs, and its error against that is recorded.")
@click.option("--anonymize", is_flag=True, help="Replace hostname and user with stable hashes.")
@click.option("--push", "push", is_flag=True, help="Also store the run(s) in the database (see --db).")
@click.option("--golden", "golden", is_flag=True,
              help="With --push: mark the run (with --sweep, its default variant) as the golden baseline.")
@click.option("--db", "db_url", default=None, help="Database URL for --push (default: DRIFTBOARD_DATABASE_URL or the local SQLite file).")
@server_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary; print only the bundle path(s).")
def capture(output: str | None, label: str, tags: tuple[str, ...], note: str, repeats: int, deterministic: bool,
            variant: str, sweep: bool, devices: tuple[str, ...], case_ids: tuple[str, ...], suite_choice: str,
            models: tuple[str, ...], cases_file: str | None, layers: str, layers_cap: int, case_timeout: float,
            steps: int, seed: int, no_seed: bool, no_truth: bool, anonymize: bool, push: bool, golden: bool, db_url: str | None,
            server_url: str | None, token_file: str | None, quiet: bool) -> None:
    """Capture this machine: environment fingerprint plus golden outputs of the reference suite and your own models.

    Writes one run bundle per capture. With --sweep, one bundle per settings
    variant (1 thread, oneDNN off, deterministic, each lower CPU capability,
    TF32 on/off on GPU), so one machine alone shows which knobs change its numbers.

    Your own models: a cases file (driftboard_cases.py, see --cases) or
    --model FILE.py:FACTORY, where the factory returns (model, inputs). Each
    module call is recorded as statistics (--layers), so a comparison names the
    first module where two machines part.

    \b
    Examples:
      driftboard capture
      driftboard capture --label "a100-node" --tag nightly -o a100.driftboard
      driftboard capture --sweep -o runs/ --push --golden
      driftboard capture --suite own --model models/encoder.py:build -o gpu3.driftboard
      driftboard capture --push --server https://drift.example.com   (token: $DRIFTBOARD_TOKEN)
    """
    if server_url or token_file:  # refused before a minute of capturing, not after
        from driftboard.core.errors import DriftboardError

        if not push:
            raise DriftboardError("--server goes with --push: add --push, or push the bundle later")
        team_server(server_url, token_file, db_url)
    own = OwnChoice(suite_choice, models, cases_file, layers, layers_cap, case_timeout, steps, None if no_seed else seed,
                    truth=not no_truth)
    if sweep:
        paths = _sweep(Path(output) if output else DEFAULT_DIR, label, tags, note, repeats, devices, case_ids, anonymize,
                       quiet, own)
    else:
        if deterministic and variant == "default":
            variant = "deterministic"
        paths = [_capture_one(output, label, tags, note, repeats, deterministic, variant, devices, case_ids,
                              anonymize, quiet, own)]
    if golden and not push:
        raise click.UsageError("--golden marks a stored run: add --push")
    if push:
        from driftboard.cli.db_cmd import push_paths

        results = push_paths(paths, db_url, quiet=quiet, server_url=server_url, token_file=token_file)
        if golden:
            from driftboard.cli.golden_cmd import mark_golden

            # A sweep captures the default variant first.
            mark_golden(results[0].run_id, reason="marked by driftboard capture --golden", db_url=db_url,
                        server_url=server_url, token_file=token_file)


def _capture_one(output: str | None, label: str, tags: tuple[str, ...], note: str, repeats: int,
                 deterministic: bool, variant: str, devices: tuple[str, ...], case_ids: tuple[str, ...],
                 anonymize: bool, quiet: bool, own: OwnChoice = OwnChoice()) -> Path:
    from driftboard.cli.terminal import print_capture_summary, progress_bar
    from driftboard.core.bundle import SUFFIX, bundle_path, check_writable, write_bundle
    from driftboard.core.capture import CaptureOptions
    from driftboard.core.capture import capture as run_capture

    options = CaptureOptions(variant=variant, repeats=repeats, deterministic=deterministic,
                             devices=devices or None, case_ids=case_ids or None, label=label, tags=tags,
                             note=note, anonymize=anonymize, suite=own.suite, models=own.models,
                             cases_file=own.cases_file, layers=own.layers, layers_cap=own.layers_cap_mib * 2**20,
                             case_timeout=own.case_timeout, steps=own.steps, seed=own.seed, truth=own.truth)
    # A trailing separator or an existing directory means "a new file in there".
    directory = DEFAULT_DIR if output is None else Path(output) if output.endswith(os.sep) or Path(output).is_dir() else None
    check_writable(directory or output, directory=directory is not None)
    start = time.perf_counter()
    run, arrays = run_capture(options, progress=None if quiet else progress_bar)
    target = directory / f"{run.run_id}-{run.variant}{SUFFIX}" if directory else bundle_path(output)
    path = write_bundle(target, run, arrays)
    if quiet:
        click.echo(str(path))
    else:
        print_capture_summary(run, path, time.perf_counter() - start)
    return path


def _sweep(directory: Path, label: str, tags: tuple[str, ...], note: str, repeats: int, devices: tuple[str, ...],
           case_ids: tuple[str, ...], anonymize: bool, quiet: bool, own: OwnChoice = OwnChoice()) -> list[Path]:
    """Each variant in a fresh process: ATEN_CPU_CAPABILITY only takes effect at torch import."""
    from driftboard.core.bundle import check_writable
    from driftboard.core.capture import sweep_variants
    from driftboard.core.errors import DriftboardError
    from driftboard.core.variant_process import capture_variant

    check_writable(directory, directory=True)
    paths = []
    variants = sweep_variants()
    for i, variant in enumerate(variants, 1):
        if not quiet:
            click.echo(f"[{i}/{len(variants)}] variant {variant}", err=True)
        args = ["--repeats", str(repeats), "--label", label, "--note", note]
        args += [f"--tag={t}" for t in (*tags, f"variant:{variant}")]
        args += [f"--device={d}" for d in devices] + [f"--case={c}" for c in case_ids]
        args += ["--anonymize"] if anonymize else []
        args += own.args()
        try:
            paths.append(capture_variant(variant, directory, args))
        except DriftboardError as exc:
            raise DriftboardError(f"sweep {exc}") from None
    if not quiet:
        from driftboard.cli.terminal import print_sweep_summary

        print_sweep_summary(paths)
    return paths
