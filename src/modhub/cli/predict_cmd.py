"""``modhub predict HANDLE INPUT --out OUT.parquet``: run a module over many inputs, here or on Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error, notes


@app.command("predict")
def predict_command(
    handle: Annotated[str, typer.Argument(help="module: handle, hub URL or directory")],
    inputs: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="folder of images, .txt file (one text per line), or CSV/Parquet"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Parquet file to write (one row per input)")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="inputs per module call")] = 64,
    column: Annotated[
        str | None,
        typer.Option(help="CSV/Parquet column with the texts (or image paths) [default: text, or path]"),
    ] = None,
    key_column: Annotated[
        str | None,
        typer.Option("--key-column", help="CSV/Parquet column used as each row's key [default: row id]"),
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="labels kept per row for classifiers")] = 5,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace --out if it exists")] = False,
    cluster: Annotated[
        str | None,
        typer.Option(help="run on this Ray cluster (its Jobs API / dashboard URL, e.g. http://HOST:8265)"),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="with --cluster: actors, each loading the module once")
    ] = 2,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload/--no-upload",
            help="with --cluster: send a local INPUT (and module directory) with the job; --no-upload: "
            "the cluster reads the same path (shared filesystem)",
        ),
    ] = True,
    cluster_python: Annotated[
        str | None,
        typer.Option(
            "--cluster-python",
            help="the cluster's Python with modhub [default: python; this one for a local cluster]",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    draw: Annotated[
        Path | None,
        typer.Option(
            "--draw",
            help="also write a picture of each photo's result (boxes, keypoints, mask, stylised image) "
            "to DIR/<name>.png",
            metavar="DIR",
        ),
    ] = None,
    extra_input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="for a module of several inputs: NAME=FILE, a photo or sound file given to input NAME "
            "for every row (e.g. --input style_image=style.jpg); INPUT feeds the one input left",
            metavar="NAME=FILE",
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="run the module's reduced-precision variant (int8: smaller and faster, its "
            "agreement with the exact graph is in `modhub show`) [default: the exact graph]",
        ),
    ] = None,
) -> None:
    """Run HANDLE over every input in INPUT and write OUT (key, output vector, top-k labels)."""
    if draw is not None and cluster is not None:
        typer.secho("--draw draws here, not on the cluster: run it without --cluster", err=True)
        raise typer.Exit(2)
    extra: dict[str, str] = {}
    for given in extra_input or []:
        name, sep, file = given.partition("=")
        if not sep or not name or not file:
            typer.secho(f"--input takes NAME=FILE, got {given!r}", err=True)
            raise typer.Exit(2)
        extra[name.strip()] = file
    if precision is not None and cluster is not None:
        typer.secho("--precision runs here, not on the cluster: run it without --cluster", err=True)
        raise typer.Exit(2)
    if extra and cluster is not None:
        typer.secho("--input runs here, not on the cluster: run it without --cluster", err=True)
        raise typer.Exit(2)
    with fail_on_hub_error(), notes():
        if cluster is None:
            from modhub.predict.runner import predict

            result = predict(
                handle,
                inputs,
                out,
                batch_size=batch_size,
                column=column,
                key_column=key_column,
                top_k=top_k,
                overwrite=overwrite,
                progress=False if quiet else None,
                extra_inputs=extra or None,
                precision=precision,
            )
            rows, skipped = result.rows, result.skipped
            for line in result.skipped_examples:
                typer.secho(f"skipped {line}", err=True, fg=typer.colors.YELLOW)
        else:
            from modhub.cluster import submit_predict
            from modhub.cluster.cli_support import follow

            job = submit_predict(
                handle,
                inputs,
                out,
                cluster=cluster,
                batch_size=batch_size,
                workers=workers,
                column=column,
                key_column=key_column,
                top_k=top_k,
                overwrite=overwrite,
                upload=upload,
                python=cluster_python,
            )
            outcome = follow(job, quiet=quiet)
            rows, skipped = int(outcome["rows"]), int(outcome["skipped"])
        if draw is not None:
            from modhub.predict.draw import draw_folder

            pictures = draw_folder(handle, inputs, draw, extra_inputs=extra or None)
            typer.echo(f"drew {len(pictures)} picture(s) in {draw}")
    where = "" if cluster is None else " (on the cluster's filesystem)"
    typer.echo(
        f"wrote {rows} rows to {out}{where}" + (f"; skipped {skipped} unreadable input(s)" if skipped else "")
    )
