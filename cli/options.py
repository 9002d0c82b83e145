"""Options more than one command shares, checked before any work starts."""

from __future__ import annotations

from typing import Any

import click


def _checked_tags(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    from driftboard.core.bundle import tags_problem

    problem = tags_problem(value)
    if problem:
        raise click.BadParameter(problem)
    return value


def tags_option(command: Any) -> Any:
    """``--tag`` (repeatable), refused at once when the bundle reader would refuse it later."""
    return click.option("--tag", "tags", multiple=True, callback=_checked_tags,
                        help="Tag (repeatable; at most 64, each at most 64 characters).")(command)


def policy_option(command: Any) -> Any:
    """``--policy``: the tolerance every comparing command takes, with one help text."""
    return click.option("--policy", default="default", show_default=True,
                        help="Tolerance: bitwise, ulp:N, rtol=R,atol=A (both), or default (torch.testing's "
                             "per-dtype rtol/atol).")(command)
