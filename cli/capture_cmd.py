"""``driftboard capture``: fingerprint this machine and record the reference suite's outputs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import click

from driftboard.core.processes import driftboard_command

DEFAULT_DIR = Path("driftboard-runs")


@click.command()
@click.option("-o", "--output", type=click.Path(),
              help="Bundle file to write (.driftboard is added to a name without a suffix), or a directory "
                   "(default: ./driftboard-runs/).")
@click.option("--label", default="", help="Label for this run, e.g. 'gpu-node-3 after driver upgrade'.")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--note", default="", help="Free-text note stored with the run.")
@click.option("--repeats", default=3, show_default=True, type=click.IntRange(1, 100),
              help="Runs of each case in this process, to detect run-to-run nondeterminism.")
@click.option("--deterministic", is_flag=True, help="Run under torch.use_deterministic_algorithms(True) and deterministic cuDNN.")
@click.option("--variant", default="default", show_default=True,
              help="Settings variant: default, threads-1, onednn-off, deterministic, tf32-on, tf32-off, cpu-<capability>.")
@click.option("--sweep", is_flag=True, help="Capture once per settings variant of this machine, each in a fresh process.")
@click.option("--device", "devices", multiple=True, help="Only this device (repeatable; default: every available one).")
@click.option("--case", "case_ids", multiple=True, help="Only this case id (repeatable; default: the whole suite).")
@click.option("--anonymize", is_flag=True, help="Replace hostname and user with stable hashes.")
@click.option("--push", "push", is_flag=True, help="Also store the run(s) in the database (see --db).")
@click.option("--golden", "golden", is_flag=True,
              help="With --push: mark the run (with --sweep, its default variant) as the golden baseline.")
@click.option("--db", "db_url", default=None, help="Database URL for --push (default: DRIFTBOARD_DATABASE_URL or the local SQLite file).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary; print only the bundle path(s).")
def capture(output: str | None, label: str, tags: tuple[str, ...], note: str, repeats: int, deterministic: bool,
            variant: str, sweep: bool, devices: tuple[str, ...], case_ids: tuple[str, ...], anonymize: bool,
            push: bool, golden: bool, db_url: str | None, quiet: bool) -> None:
    """Capture this machine: environment fingerprint plus golden outputs of the reference suite.

    Writes one run bundle per capture. With --sweep, one bundle per settings
    variant (1 thread, oneDNN off, deterministic, each lower CPU capability,
    TF32 on/off on GPU), so one machine alone shows which knobs change its numbers.

    \b
    Examples:
      driftboard capture
      driftboard capture --label "a100-node" --tag nightly -o a100.driftboard
      driftboard capture --sweep -o runs/ --push --golden
    """
    if sweep:
        paths = _sweep(Path(output) if output else DEFAULT_DIR, label, tags, note, repeats, devices, case_ids, anonymize, quiet)
    else:
        if deterministic and variant == "default":
            variant = "deterministic"
        paths = [_capture_one(output, label, tags, note, repeats, deterministic, variant, devices, case_ids,
                              anonymize, quiet)]
    if golden and not push:
        raise click.UsageError("--golden marks a stored run: add --push")
    if push:
        from driftboard.cli.db_cmd import push_paths

        results = push_paths(paths, db_url, quiet=quiet)
        if golden:
            from driftboard.cli.golden_cmd import mark_golden

            # A sweep captures the default variant first.
            mark_golden(results[0].run_id, reason="marked by driftboard capture --golden", db_url=db_url)


def _capture_one(output: str | None, label: str, tags: tuple[str, ...], note: str, repeats: int,
                 deterministic: bool, variant: str, devices: tuple[str, ...], case_ids: tuple[str, ...],
                 anonymize: bool, quiet: bool) -> Path:
    from driftboard.cli.terminal import print_capture_summary, progress_bar
    from driftboard.core.bundle import SUFFIX, bundle_path, check_writable, write_bundle
    from driftboard.core.capture import CaptureOptions
    from driftboard.core.capture import capture as run_capture

    options = CaptureOptions(variant=variant, repeats=repeats, deterministic=deterministic,
                             devices=devices or None, case_ids=case_ids or None, label=label, tags=tags,
                             note=note, anonymize=anonymize)
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
           case_ids: tuple[str, ...], anonymize: bool, quiet: bool) -> list[Path]:
    """Each variant in a fresh process: ATEN_CPU_CAPABILITY only takes effect at torch import."""
    from driftboard.core.bundle import check_writable
    from driftboard.core.capture import CPU_CAPABILITY_PREFIX, sweep_variants
    from driftboard.core.errors import DriftboardError

    check_writable(directory, directory=True)
    paths = []
    variants = sweep_variants()
    for i, variant in enumerate(variants, 1):
        if not quiet:
            click.echo(f"[{i}/{len(variants)}] variant {variant}", err=True)
        env = dict(os.environ)
        if variant.startswith(CPU_CAPABILITY_PREFIX):
            env["ATEN_CPU_CAPABILITY"] = variant[len(CPU_CAPABILITY_PREFIX):]
        args = [*driftboard_command(), "capture", "--quiet", "--variant", variant,
                "--repeats", str(repeats), "--label", label, "--note", note,
                "-o", str(directory) + os.sep]
        args += [f"--tag={t}" for t in (*tags, f"variant:{variant}")]
        args += [f"--device={d}" for d in devices] + [f"--case={c}" for c in case_ids]
        args += ["--anonymize"] if anonymize else []
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            raise DriftboardError(f"sweep variant {variant} failed: {lines[-1] if lines else 'no output'}")
        paths.append(Path(done.stdout.strip().splitlines()[-1]))
    if not quiet:
        from driftboard.cli.terminal import print_sweep_summary

        print_sweep_summary(paths)
    return paths
