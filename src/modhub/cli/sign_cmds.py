"""Signing commands: ``modhub keygen`` and ``modhub sign DIR --key KEY`` (OpenSSF model-signing, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error


@app.command()
def keygen(
    private_key: Annotated[Path, typer.Argument(help="where to write the private key (PEM, mode 0600)")],
    public_key: Annotated[
        Path | None, typer.Option("--public", help="where to write the public key (default: KEY.pub)")
    ] = None,
) -> None:
    """Make an elliptic-curve (P-256) key pair for signing modules."""
    from modhub.exporting.signing import generate_keys

    with fail_on_hub_error():
        private, public, print_ = generate_keys(private_key, public_key)
    typer.echo(f"private key: {private}\npublic key:  {public}\nfingerprint: {print_}")


@app.command()
def sign(
    module_dir: Annotated[Path, typer.Argument(help="the module directory to sign")],
    key: Annotated[Path, typer.Option("--key", help="the private key from modhub keygen")],
) -> None:
    """Sign a module offline with model-signing; writes DIR/modhub.sig."""
    from modhub.exporting.signing import sign_module

    with fail_on_hub_error():
        target = sign_module(module_dir, key)
    typer.echo(f"signed: {target}")
