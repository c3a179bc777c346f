"""Retraining as a cluster job: the client side (``submit_retrain``) and what the job runs.

The job calls the same ``modhub.retrain`` functions a local run calls; with
``workers`` it fine-tunes with Ray Train (``modhub.cluster.train``). The result
is written to ``out`` on the cluster's filesystem and/or published to the hub
from the cluster (``publish``), with the token sent as a job secret.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from modhub.cluster.jobs import ClusterJob, locate_inputs, submit
from modhub.errors import InputError
from modhub.settings import Settings

__all__ = ["run_retrain", "submit_retrain"]

Kind = Literal["images", "text"]


def submit_retrain(
    kind: Kind,
    data: str | os.PathLike[str],
    module: str | os.PathLike[str],
    *,
    cluster: str,
    out: str | os.PathLike[str] | None = None,
    publish: str | None = None,
    config: Any = None,
    workers: int | None = None,
    text_column: str = "text",
    label_column: str = "label",
    license: str | None = None,
    overwrite: bool = False,
    upload: bool = True,
    settings: Settings | None = None,
    python: str | None = None,
) -> ClusterJob:
    """Run ``modhub retrain images|text`` as a job on the Ray cluster at ``cluster`` (its Jobs API URL).

    ``data`` and a local-directory ``module`` are uploaded with the job when they exist
    here and are small (``upload``); otherwise they are paths the cluster reads. A
    handle is resolved on the cluster against ``settings.endpoint``. ``out`` is a
    directory on the cluster's filesystem (the same path here on a shared filesystem
    or a local cluster); ``publish="publisher/name"`` publishes the new module from
    the cluster with this machine's token. ``workers``: fine-tune with Ray Train's
    ``TorchTrainer`` on that many workers (needs ``config.fine_tune``).
    Returns the job; call ``.wait()``.
    """
    from modhub.client.publish import repo_handle
    from modhub.client.tokens import require_token
    from modhub.retrain import TrainConfig

    settings = settings or Settings.from_env()
    config = config or TrainConfig()
    if kind not in ("images", "text"):
        raise InputError(f"kind must be 'images' or 'text', not {kind!r}")
    if out is None and publish is None:
        raise InputError("a cluster run needs --out (a directory on the cluster) or --publish publisher/name")
    if workers is not None and not config.fine_tune:
        raise InputError("--workers runs fine-tuning on Ray Train: add --fine-tune (or drop --workers)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    token = None
    if publish is not None:
        repo_handle(publish)  # a bad name fails here, not after training
        token = require_token(settings)
    data_loc, module_loc, uploads = locate_inputs(data, "data", module, upload=upload)
    args = {
        "kind": kind,
        "data": data_loc,
        "module": module_loc,
        "out": str(Path(out).expanduser().absolute()) if out is not None else None,
        "publish": publish,
        "config": dataclasses.asdict(config),
        "workers": workers,
        "text_column": text_column,
        "label_column": label_column,
        "license": license,
        "overwrite": overwrite,
    }
    return submit(
        cluster,
        "retrain",
        args,
        uploads=uploads,
        token=token,
        endpoint=settings.endpoint,
        python=python,
        description=f"modhub retrain {kind} on {module}",
    )


def run_retrain(args: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """On the cluster: retrain, write ``out`` and/or publish; returns the report and where it went."""
    from modhub.client.publish import publish
    from modhub.cluster._job_side import cluster_module, cluster_path
    from modhub.retrain import TrainConfig, retrain_images, retrain_text

    data = cluster_path(args["data"], "data")
    module = cluster_module(args["module"])
    config = TrainConfig(**args["config"])
    with tempfile.TemporaryDirectory(prefix="modhub-retrain-") as tmp:
        out = Path(args["out"]) if args["out"] else Path(tmp) / "module"
        if args["workers"]:
            from modhub.cluster._job_side import check_cpus
            from modhub.cluster.train import retrain_distributed

            check_cpus(int(args["workers"]), "Ray Train workers (one CPU each)")

            result = retrain_distributed(
                args["kind"],
                data,
                module,
                out,
                config=config,
                workers=int(args["workers"]),
                settings=settings,
                text_column=args["text_column"],
                label_column=args["label_column"],
                license=args["license"],
                overwrite=args["overwrite"],
            )
        elif args["kind"] == "images":
            result = retrain_images(
                data,
                module,
                out,
                config=config,
                settings=settings,
                overwrite=args["overwrite"],
                license=args["license"],
            )
        else:
            result = retrain_text(
                data,
                module,
                out,
                text_column=args["text_column"],
                label_column=args["label_column"],
                config=config,
                settings=settings,
                overwrite=args["overwrite"],
                license=args["license"],
            )
        handle = publish(out, args["publish"], settings=settings) if args["publish"] else None
        print(f"published {handle}" if handle else f"module written to {out} on the cluster", flush=True)
    return {
        "out": args["out"],
        "published": handle,
        "report": result.report,
    }
