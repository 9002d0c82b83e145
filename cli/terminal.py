"""Readable terminal output for capture and show: a progress bar and short summaries."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from driftboard.core.run import Run
from driftboard.core.seeding import SETTINGS_KEY as SEEDING
from driftboard.core.seeding import summary as seeding_summary
from driftboard.core.units import fmt_bytes

console = Console(highlight=False)


def progress_bar(items: Iterable[Any], total: int) -> Iterator[Any]:
    """A progress bar on stderr while capturing; silent when stderr is not a terminal."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty())
    with progress:
        task = progress.add_task("capturing", total=total)
        for item in items:
            case, device, dtype = item
            progress.update(task, description=f"{case.case_id} {device}/{dtype}")
            yield item
            progress.advance(task)


def _fp(run: Run, *path: str) -> Any:
    node: Any = run.fingerprint
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def gpu_names(fingerprint: dict[str, Any]) -> str:
    """GPU models with counts, e.g. "8× NVIDIA RTX A5000", or "no GPU"."""
    devices = (fingerprint.get("gpu") or {}).get("devices") or []
    counts = Counter(str(d.get("name")) for d in devices if isinstance(d, dict))
    return ", ".join(f"{n}× {name}" if n > 1 else name for name, n in counts.items()) or "no GPU"


def environment_line(run: Run) -> str:
    cpu = _fp(run, "cpu", "model") or "CPU unknown"
    capability = _fp(run, "torch", "cpu_capability")
    return (f"torch {_fp(run, 'torch', 'version')} · Python {_fp(run, 'python', 'version')} · "
            f"{cpu}{f' ({capability})' if capability else ''} · {gpu_names(run.fingerprint)}")


def run_table(run: Run) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("case", "device", "dtype", "output", "repeats", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    for case in run.cases:
        if case.error:
            result = Text(f"error: {case.error}", style="red")
        elif case.output is None and case.own is not None and case.own.outputs:  # an output kept as statistics
            stats = case.own.outputs[0].stats
            result = Text(f"{list(stats.shape)} {stats.sha256[:12]} (statistics)")
        else:
            result = Text(f"{list(case.output.shape)} {case.output.sha256[:12]}" if case.output else "-")
        repeats = Text(f"{case.repeats}× identical" if case.repeat_identical else f"{case.repeats}× DIFFER",
                       style="" if case.repeat_identical else "yellow")
        table.add_row(case.case_id, case.device, case.dtype, result, repeats, f"{case.seconds * 1e3:.2f}")
    return table


def counts_line(run: Run) -> str:
    errors = sum(1 for c in run.cases if c.error)
    nondeterministic = sum(1 for c in run.cases if not c.repeat_identical)
    devices = sorted({c.device for c in run.cases})
    return (f"{len(run.cases)} cases on {', '.join(devices) or 'no device'}; "
            f"{nondeterministic} not repeatable in-process; {errors} failed")


def own_lines(run: Run) -> list[str]:
    """What a capture of the team's own models recorded, and the full-mode cap when it was reached."""
    own = [c for c in run.cases if c.own is not None]
    if not own:
        return []
    mode = own[0].own.layers
    calls = sum(len(c.own.modules) for c in own)
    lines = [f"{len(own)} own case(s) ({', '.join(dict.fromkeys(c.case_id for c in own))}); {calls:,} module calls "
             f"recorded ({mode})"]
    layers = run.settings.get("layers") if isinstance(run.settings.get("layers"), dict) else {}
    if mode == "full" and layers.get("cap_hit"):
        kept = [f"{c.case_id}: {m.label}" for c in own for m in c.own.modules
                if any(t.array is None for t in m.tensors)]
        shown = "; ".join(kept[:5]) + (f"; … {len(kept) - 5} more" if len(kept) > 5 else "")
        lines.append(f"--layers full reached its cap of {fmt_bytes(int(layers.get('cap_bytes', 0)))} of whole tensors: "
                     f"{len(kept)} module call(s) kept as statistics ({shown})")
    dropped = sum(c.own.modules_dropped for c in own)
    if dropped:
        lines.append(f"{dropped:,} module calls past the recording budget were not recorded")
    return lines


def print_capture_summary(run: Run, path: Path, seconds: float) -> None:
    console.print(f"[bold]driftboard capture[/] {run.run_id} (variant {run.variant}) in {seconds:.1f} s")
    console.print(Text(environment_line(run)))
    console.print(counts_line(run))
    for line in own_lines(run):
        console.print(Text(line))
    if any(c.training is not None for c in run.cases):
        console.print(Text(f"training: {sum(c.training is not None for c in run.cases)} cases × "
                           f"{run.settings.get('training', {}).get('steps', '?')} steps; seeding recipe: "
                           f"{seeding_summary(run.settings)}"))
    # soft_wrap: rich word-wraps at any Unicode space, the size's no-break space included
    console.print(f"fingerprint {run.fingerprint_digest[:16]} · bundle {path} ({fmt_bytes(path.stat().st_size)})",
                  soft_wrap=True)


def print_sweep_summary(paths: list[Path]) -> None:
    from driftboard.core.bundle import read_bundle

    table = Table(show_edge=False, box=None)
    for column in ("variant", "cases", "outputs equal to default", "bundle"):
        table.add_column(column)
    bundles = [read_bundle(p) for p in paths]
    base = {c.key: c.output.sha256 if c.output else None for c in bundles[0].run.cases}
    for path, bundle in zip(paths, bundles):
        same = sum(1 for c in bundle.run.cases if c.output and base.get(c.key) == c.output.sha256)
        table.add_row(bundle.run.variant, str(len(bundle.run.cases)), f"{same}/{len(bundle.run.cases)}", str(path))
    console.print(table)


def print_run(run: Run, digest: str, size: int, verbose: bool) -> None:
    console.print(f"[bold]{run.run_id}[/] · {run.created_at} · suite {run.suite_id} v{run.suite_version} · "
                  f"variant {run.variant}{' · imported environment' if run.imported else ''}")
    for name, value in (("label", run.label), ("tags", ", ".join(run.tags)), ("note", run.note)):
        if value:
            console.print(Text(f"{name}: {value}"))
    console.print(Text(environment_line(run)))
    if run.settings:
        console.print("settings: " + ", ".join(f"{k}={v}" for k, v in sorted(run.settings.items()) if k != SEEDING))
    if not run.imported:
        console.print(Text(f"seeding recipe: {seeding_summary(run.settings)}"))
    console.print(counts_line(run))
    console.print(f"manifest {digest[:16]} · {fmt_bytes(size)} · fingerprint {run.fingerprint_digest[:16]}", soft_wrap=True)
    if verbose and run.cases:
        console.print(run_table(run))
