"""The ``modhub`` command line. Each sub-module adds its commands to ``app``."""

from __future__ import annotations

from modhub.cli._app import app

__all__ = ["app"]

# Importing registers the commands on `app`.
from modhub.cli import (  # noqa: F401
    client_cmds,
    hub_cmds,
    predict_cmd,
    quantize_cmd,
    retrain_cmds,
    show_cmd,
    sign_cmds,
    team_cmds,
    zoo_cmds,
)
