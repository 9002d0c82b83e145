"""``driftboard show``: summarise a run bundle without importing torch."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--cases/--no-cases", default=True, show_default=True, help="List every case.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the validated manifest as JSON (format driftboard-run, schema core/bundle.schema.json).")
def show(bundle: Path, cases: bool, as_json: bool) -> None:
    """Validate a run bundle and print its summary.

    \b
    Example:
      driftboard show driftboard-runs/20261124T120000Z-1a2b3c4d5e6f-default.driftboard
    """
    from driftboard.core.bundle import manifest_of, read_bundle

    loaded = read_bundle(bundle)
    if as_json:
        # The manifest carries its own envelope (format "driftboard-run", the bundle's schema_version): printed as
        # is, it is exactly what the bundle holds (core.documents.FORMATS lists it; docs/JSON.md).
        click.echo(json.dumps(manifest_of(loaded.run), indent=2, sort_keys=True))
        return
    from driftboard.cli.terminal import print_run

    print_run(loaded.run, loaded.digest, loaded.size, verbose=cases)
