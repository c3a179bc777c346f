"""Commands for a hub shared by a team: ``modhub visibility``, ``modhub admin backup|restore``."""

from __future__ import annotations

from typing import Annotated

import typer

from modhub.cli import app
from modhub.cli._common import fail_on_hub_error
from modhub.cli.hub_cmds import EndpointOpt, _client_settings


@app.command()
def visibility(
    repo: Annotated[str, typer.Argument(help="the module: publisher/name")],
    state: Annotated[str, typer.Argument(help="private or public", metavar="private|public")],
    endpoint: EndpointOpt = None,
) -> None:
    """Make a module private (only tokens that may read for its publisher see it) or public."""
    from modhub.errors import InvalidHandle
    from modhub.publishing import set_visibility

    settings = _client_settings(endpoint)
    with fail_on_hub_error():
        if state not in ("private", "public"):
            raise InvalidHandle(f"say private or public, not {state!r}")
        result = set_visibility(repo, private=state == "private", settings=settings)
    typer.echo(f"{result['handle']} is {'private' if result['private'] else 'public'}")
