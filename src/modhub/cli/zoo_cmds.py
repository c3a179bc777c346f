"""``modhub zoo build|list``: the starter modules, built from installed weight packages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error

zoo_app = typer.Typer(
    help="Build modhub's starter modules from pretrained weights in installed packages.",
    no_args_is_help=True,
)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("build")
def build(
    out_dir: Annotated[Path, typer.Argument(help="directory that receives one sub-directory per module")],
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="build just this starter (repeatable; may name optional ones)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="rebuild even modules whose build key matches")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="show a progress display")
    ] = True,
) -> None:
    """Build the starter modules into OUT_DIR (modules already built from the same packages are reused)."""
    from modhub.settings import Settings
    from modhub.zoo import build_zoo

    with fail_on_hub_error():
        settings = Settings.from_env()
        if settings.tf_python is None:
            typer.echo(
                "note: MODHUB_TF_PYTHON is not set, so no SavedModel/TFLite/TF.js formats are built "
                "(make serve sets it to .venv-tf/bin/python)",
                err=True,
            )
        paths = build_zoo(out_dir, only=only, force=force, progress=progress, settings=settings)
    for path in paths:
        typer.echo(str(path))


@zoo_app.command("list")
def list_starters() -> None:
    """List the starter modules, their task, and whether their packages are installed."""
    from modhub.zoo import starters

    for starter in starters():
        missing = [req.dist for req in starter.requires if req.version() is None]
        state = "ready" if not missing else "needs " + ", ".join(missing)
        flag = " (optional)" if starter.optional else ""
        typer.echo(f"{starter.name:36} {starter.task:22} {starter.summary}{flag}  [{state}]")
