"""The ``modhub`` Typer application every command module registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="modhub",
    help="Publish, find and reuse pretrained machine-learning modules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
