"""Batch prediction on Ray Data: the client side (``submit_predict``) and the job side.

The job reads the inputs with the same reader as a local run
(``modhub.predict.runner.open_inputs``), makes one Ray Data block per batch, and maps
``modhub.predict.runner.Predictor`` over them with an actor pool (the module is loaded
once per actor). Blocks come back in input order and are written by the same
Parquet writer, so the file equals a local run's.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from modhub.cluster.jobs import ClusterJob, locate_inputs, submit
from modhub.errors import InputError
from modhub.predict.runner import Predictor, PredictResult, open_inputs, parquet_output
from modhub.settings import Settings

__all__ = ["predict_on_ray", "run_predict_job", "submit_predict"]


def submit_predict(
    handle: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    cluster: str,
    batch_size: int = 64,
    workers: int = 2,
    column: str | None = None,
    key_column: str | None = None,
    top_k: int = 5,
    overwrite: bool = False,
    upload: bool = True,
    settings: Settings | None = None,
    python: str | None = None,
) -> ClusterJob:
    """Run ``modhub predict`` as a Ray Data job on the cluster; ``out`` is a path on the cluster's
    filesystem (this machine's too, for a local cluster or a shared filesystem).

    ``workers``: actors in the pool, each with one CPU and its own copy of the module.
    """
    settings = settings or Settings.from_env()
    if batch_size < 1 or workers < 1:
        raise InputError("--batch-size and --workers must be at least 1")
    input_loc, module_loc, uploads = locate_inputs(inputs, "inputs", handle, upload=upload)
    args = {
        "module": module_loc,
        "inputs": input_loc,
        "out": str(Path(out).expanduser().absolute()),
        "batch_size": batch_size,
        "workers": workers,
        "column": column,
        "key_column": key_column,
        "top_k": top_k,
        "overwrite": overwrite,
    }
    return submit(
        cluster,
        "predict",
        args,
        uploads=uploads,
        endpoint=settings.endpoint,
        python=python,
        description=f"modhub predict {handle}",
    )


def run_predict_job(args: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """On the cluster: the job's driver."""
    import ray

    from modhub.cluster._job_side import check_cpus, cluster_module, cluster_path

    ray.init(log_to_driver=True)
    check_cpus(int(args["workers"]), "actors (one CPU each)")
    module = str(cluster_module(args["module"]))
    inputs = cluster_path(args["inputs"], "inputs")
    started = time.perf_counter()
    result = predict_on_ray(
        module,
        inputs,
        args["out"],
        batch_size=int(args["batch_size"]),
        workers=int(args["workers"]),
        column=args["column"],
        key_column=args["key_column"],
        top_k=int(args["top_k"]),
        overwrite=bool(args["overwrite"]),
        settings=settings,
    )
    seconds = time.perf_counter() - started
    print(f"wrote {result.rows} rows to {result.out} in {seconds:.1f} s", flush=True)
    return {"out": str(result.out), "rows": result.rows, "skipped": result.skipped, "seconds": seconds}


class _RayPredictor:
    """The actor class of the pool: one ``Predictor`` (one loaded module) per actor."""

    def __init__(self, handle: str, top_k: int, settings: dict[str, Any]) -> None:
        self.predictor = Predictor(handle, top_k=top_k, settings=Settings(**settings))

    def __call__(self, batch: Any) -> Any:
        table = self.predictor(batch)
        for line in self.predictor.skipped:
            print(f"skipped {line}", file=sys.stderr, flush=True)
        self.predictor.skipped = []
        return table


def predict_on_ray(
    handle: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    workers: int = 2,
    column: str | None = None,
    key_column: str | None = None,
    top_k: int = 5,
    overwrite: bool = False,
    settings: Settings | None = None,
) -> PredictResult:
    """Inside a Ray driver (``ray.init`` done): the Ray Data pipeline. Writes ``out`` like ``predict``."""
    import pyarrow as pa
    import ray
    import ray.data

    settings = settings or Settings.from_env()
    from modhub.format.tasks import module_modality
    from modhub.loading.opener import open_module

    # Opened (and so verified) once here, before any actor starts; each actor loads its own.
    opened = open_module(handle, settings=settings, needed=())
    modality = module_modality(opened.manifest)
    source = open_inputs(inputs, modality, column=column, key_column=key_column)
    # One block per batch: batches are the same as a local run's, in the same order.
    blocks = [
        pa.table({"key": pa.array(keys, pa.string()), "item": pa.array(items, pa.string())})
        for keys, items in source.batches(batch_size)
    ]
    if not blocks:
        raise InputError(f"{inputs} holds no inputs")
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    dataset = ray.data.from_arrow(blocks)
    predicted = dataset.map_batches(
        _RayPredictor,
        fn_constructor_kwargs={
            "handle": str(handle),
            "top_k": top_k,
            "settings": {"endpoint": settings.endpoint, "progress": False, "timeout": settings.timeout},
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
        zero_copy_batch=True,
    )
    with parquet_output(out, overwrite=overwrite) as writer:
        for table in predicted.iter_batches(batch_size=None, batch_format="pyarrow"):
            writer.write(table)
    # Unreadable inputs are left out by the actors (and named in their log).
    total = sum(block.num_rows for block in blocks)
    return PredictResult(writer.out, writer.rows, total - writer.rows)
