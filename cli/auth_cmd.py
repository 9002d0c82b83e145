"""``driftboard auth``: make tokens for the dashboard's built-in access control."""

from __future__ import annotations

import click


@click.group()
def auth() -> None:
    """Access control for `driftboard serve` (see the README's "Deploying for a team").

    \b
    Example:
      driftboard auth hash-token --name alice --role admin >> team-auth.toml
      driftboard serve --auth team-auth.toml
    """


@auth.command("hash-token")
@click.option("--name", required=True, help="Who the token is for (a TOML key: letters, digits, - and _).")
@click.option("--role", type=click.Choice(["viewer", "uploader", "admin"]), default="uploader", show_default=True,
              help="What the token unlocks.")
def hash_token_cmd(name: str, role: str) -> None:
    """Make a new random token and print the access-file entry holding only its hash.

    The token itself goes to stderr, once: hand it to the team member. The
    entry on stdout is a [tokens.NAME] table, so appending it to the access
    file (a new one or not) is enough: a file holding tokens serves in mode
    tokens. Settings such as view = "viewer" go at the top of the file.

    \b
    Example:
      driftboard auth hash-token --name ci-runner --role uploader >> team-auth.toml
    """
    import re

    from driftboard.dashboard.auth import hash_token, new_token

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise click.BadParameter("use letters, digits, - and _ (at most 64)", param_hint="--name")
    token = new_token()
    click.echo(f"token for {name} (shown once, give it to them): {token}", err=True)
    # A table of its own lands in [tokens] wherever it is appended; the blank line first keeps it off
    # the end of a file that lacks a final newline.
    click.echo(f'\n[tokens.{name}]\nrole = "{role}"\nhash = "{hash_token(token)}"')
