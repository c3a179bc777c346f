"""What the CLI commands share for cluster jobs: follow a job in the terminal."""

from __future__ import annotations

import sys
from typing import Any

import typer

from modhub.cluster.jobs import ClusterJob


def follow(job: ClusterJob, *, quiet: bool = False) -> dict[str, Any]:
    """Stream the job's log to stderr until it ends and return its result; Ctrl-C stops the job."""
    typer.secho(f"job {job.job_id} submitted to {job.address}", err=True, fg=typer.colors.CYAN)

    def echo(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    try:
        return job.result() if quiet else _result(job, echo)
    except KeyboardInterrupt:
        typer.secho(f"\ninterrupted: job {job.job_id} is {job.status()}", err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(130) from None


def _result(job: ClusterJob, echo: Any) -> dict[str, Any]:
    job.wait(echo=echo)
    return job.result()
