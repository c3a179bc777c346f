"""What the CLI commands share for cluster jobs: follow a job in the terminal."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import typer

from modhub.cluster.jobs import ClusterJob
from modhub.errors import InputError
from modhub.settings import Settings


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


@contextlib.contextmanager
def local_out(out: Path | None, publish: str | None) -> Iterator[Path]:
    """The directory a local retrain writes: ``--out``, or a temporary one when only publishing."""
    if out is not None:
        yield out
        return
    if publish is None:
        raise InputError("give --out DIR for the new module (or --publish publisher/name to publish it)")
    with tempfile.TemporaryDirectory(prefix="modhub-retrain-") as tmp:
        yield Path(tmp) / "module"


def publish_result(module_dir: Path, publish: str | None, settings: Settings) -> None:
    if publish is None:
        return
    from modhub.client.publish import publish as publish_module

    handle = publish_module(module_dir, publish, settings=settings)
    typer.echo(f"published {handle}")


def retrain_on_cluster(
    kind: Literal["images", "text"],
    data: Path,
    config: Any,
    *,
    module: str,
    out: Path | None,
    license: str | None,
    overwrite: bool,
    quiet: bool,
    cluster: str | None,
    publish: str | None,
    workers: int | None,
    upload: bool,
    cluster_python: str | None,
    settings: Settings,
    text_column: str = "text",
    label_column: str = "label",
) -> dict[str, Any]:
    """``modhub retrain ... --cluster URL``: submit, stream the log, print the outcome.

    The keywords are the command's options, by their names.
    """
    from modhub.cluster.retrain_job import submit_retrain

    if cluster is None:
        raise InputError("--workers runs on a Ray cluster: add --cluster http://HOST:8265")
    job = submit_retrain(
        kind,
        data,
        module,
        cluster=cluster,
        out=out,
        publish=publish,
        config=config,
        workers=workers,
        text_column=text_column,
        label_column=label_column,
        license=license,
        overwrite=overwrite,
        upload=upload,
        settings=settings,
        python=cluster_python,
    )
    result = follow(job, quiet=quiet)
    report = result["report"]
    val = report["validation"]
    typer.echo(
        f"validation accuracy {val['accuracy']:.3f} on {report['data']['validation']} examples "
        f"(macro F1 {val['macro_f1']:.3f})"
    )
    if result.get("out"):
        typer.echo(f"module written to {result['out']} (on the cluster's filesystem)")
    if result.get("published"):
        typer.echo(f"published {result['published']}")
    return result
