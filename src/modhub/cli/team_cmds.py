"""Commands for a hub shared by a team: ``modhub visibility``, ``modhub admin backup|restore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error
from modhub.cli.hub_cmds import (
    DataDirOpt,
    EndpointOpt,
    _client_settings,
    _operator_hub,
    _server_settings,
    admin_app,
)


@app.command()
def visibility(
    repo: Annotated[str, typer.Argument(help="the module: publisher/name")],
    state: Annotated[str, typer.Argument(help="private or public", metavar="private|public")],
    endpoint: EndpointOpt = None,
) -> None:
    """Make a module private (only tokens that may read for its publisher see it) or public."""
    from modhub.client.publish import set_visibility
    from modhub.errors import InvalidHandle

    settings = _client_settings(endpoint)
    with fail_on_hub_error():
        if state not in ("private", "public"):
            raise InvalidHandle(f"say private or public, not {state!r}")
        result = set_visibility(repo, private=state == "private", settings=settings)
    typer.echo(f"{result['handle']} is {'private' if result['private'] else 'public'}")


@admin_app.command("backup")
def backup_cmd(
    out: Annotated[Path, typer.Argument(help="a new directory for the backup")],
    data_dir: DataDirOpt = None,
) -> None:
    """Write a consistent backup (database, and the blobs of a local blob store; for S3 the list of
    blobs it needs) while the hub keeps serving."""
    from modhub.server.services.backup import write_backup

    with _operator_hub(data_dir) as hub:
        report = write_backup(hub, out)
    rows = ", ".join(f"{n} {table}" for table, n in sorted(report.rows.items()))
    typer.echo(f"backup of schema {report.revision} in {report.path}: {rows}", err=True)
    typer.echo(f"{report.blobs} blob(s), {report.blob_bytes} bytes, {report.blob_mode}", err=True)
    typer.echo(str(report.path))


@admin_app.command("restore")
def restore_cmd(
    backup: Annotated[Path, typer.Argument(help="a directory `modhub admin backup` wrote")],
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="an empty data directory for the restored hub")
    ] = None,
) -> None:
    """Bring a backup back into an empty hub (a new data directory or an empty database)."""
    from modhub.server.services.backup import restore_backup

    settings = _server_settings(data_dir=data_dir)
    with fail_on_hub_error():
        header = restore_backup(settings, backup)
    typer.echo(
        f"restored {backup} (schema {header['revision']}, {header['blobs']} blob(s)); "
        f"start the hub with `modhub serve{f' --data-dir {data_dir}' if data_dir else ''}`",
        err=True,
    )
