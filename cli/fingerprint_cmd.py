"""``driftboard fingerprint``: print this machine's environment fingerprint."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole fingerprint as JSON.")
@click.option("--label", default="", help="A label for this machine or environment, e.g. 'ci-a100'.")
@click.option("--tag", "tags", multiple=True, help="A tag; repeat for several.")
@click.option("--note", default="", help="A free-text note stored with the fingerprint.")
@click.option("--anonymize", is_flag=True, help="Replace hostname and user with stable hashes.")
def fingerprint(as_json: bool, label: str, tags: tuple[str, ...], note: str, anonymize: bool) -> None:
    """Fingerprint this environment: OS, Python, torch build, CPU, GPUs, numerics settings.

    A superset of `python -m torch.utils.collect_env`, read from the running
    process (what torch actually loaded), with stable keys. Environment
    variables come from an allowlist and credentials are redacted.

    \b
    Example:
      driftboard fingerprint
      driftboard fingerprint --json --label ci-a100 --tag nightly > fingerprint.json
    """
    from driftboard.core.fingerprint import collect_fingerprint

    fp = collect_fingerprint(label=label, tags=tags, note=note, anonymize=anonymize)
    if as_json:
        from driftboard.core.documents import document

        click.echo(json.dumps(document("driftboard.fingerprint", fp), indent=2))
        return
    _print_summary(fp)


def _print_summary(fp: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from driftboard.core.fingerprint import facts, fingerprint_digest

    console = Console(highlight=False)
    console.print(f"[bold]driftboard fingerprint[/] · digest {fingerprint_digest(fp)[:16]} (numerics-relevant fields)")
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for section, line in facts.lines(fp):
        table.add_row(section, Text(line, style="red" if line == "collector failed" else ""))
    for key, message in facts.errors(fp):
        table.add_row(Text("error", style="bold red"), Text(f"{key}: {message}", style="red"))
    console.print(table)
