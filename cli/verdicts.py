"""How a verdict looks on a terminal: its word on its colour, from the one ``VerdictStyle`` beside ``Verdict``.

The word is filled with the verdict's colour and written in the text colour
that reads on it, so it is legible on dark and light terminals alike. Text
only, never colour alone: rich and click drop the colour when the output is
not a terminal, and the word stays. No rich import here (``runs`` prints with
click), only strings.
"""

from __future__ import annotations

import click

from driftboard.core.compare.verdict import Verdict


def rich_style(verdict: Verdict | str) -> str:
    """The rich style of ``verdict`` (a ``Verdict`` or its word), e.g. ``bold #ffffff on #D55E00``."""
    style = Verdict(verdict).style
    return f"bold {style.text_colour} on {style.colour}"


def rich_markup(verdict: Verdict | str, text: str | None = None) -> str:
    """``text`` (default: the verdict's word) as rich markup in the verdict's style; ``text`` must not hold markup."""
    return f"[{rich_style(verdict)}]{Verdict(verdict).value if text is None else text}[/]"


def ansi(verdict: Verdict | str, text: str | None = None) -> str:
    """``text`` (default: the verdict's word) in the verdict's colours as ANSI codes, for ``click.echo``."""
    style = Verdict(verdict).style
    return click.style(Verdict(verdict).value if text is None else text,
                       fg=_rgb(style.text_colour), bg=_rgb(style.colour), bold=True)


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)
