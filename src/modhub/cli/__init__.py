"""The ``modhub`` command line. Each sub-module adds its commands to ``app``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="modhub",
    help="Publish, find and reuse pretrained machine-learning modules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Importing registers the commands on `app`.
from modhub.cli import (  # noqa: E402, F401
    client_cmds,
    hub_cmds,
    predict_cmd,
    retrain_cmds,
    show_cmd,
    sign_cmds,
    team_cmds,
    zoo_cmds,
)
