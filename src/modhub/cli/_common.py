"""Helpers shared by CLI commands."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import typer

from modhub.errors import HubError, missing_extra


@contextlib.contextmanager
def fail_on_hub_error() -> Iterator[None]:
    """Turn a HubError into a one-line message on stderr and exit status 1 (no traceback)."""
    try:
        yield
    except HubError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None
    except ImportError as exc:
        # A command whose extra is not installed (torch, the server, ...): say which to install.
        error = missing_extra(exc, "this command")
        if error is None:
            raise
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from None


@contextlib.contextmanager
def notes() -> Iterator[None]:
    """Show LatestVersionWarning (and other warnings) as one-line notes on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        typer.secho(f"note: {warning.message}", err=True, fg=typer.colors.YELLOW)
