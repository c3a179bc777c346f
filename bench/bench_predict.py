"""Batch prediction throughput: the plain local loop vs Ray Data with 1 and 2 workers (not a test).

One run, same machine, same inputs: `modhub predict` locally, then the same
prediction as a job on a local single-node Ray cluster (`LocalCluster`, 2 CPUs)
with an actor pool of 1 and of 2 workers. Prints images/s and ratios, and checks
that every cluster output equals the local one.

Inputs: Fashion-MNIST test photos written as PNG (apt-get install dataset-fashion-mnist),
module: a starter module directory (default .modhub/zoo/mobilenet-v2-feature-vector).

    PYTHONPATH=src python bench/bench_predict.py --images 512 --work /tmp/bench-predict
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import modhub
from modhub.cluster import LocalCluster, submit_predict
from modhub.predict import predict

FASHION = Path("/usr/share/datasets/fashion-mnist")


def write_photos(root: Path, count: int) -> Path:
    from PIL import Image

    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as fh:
        images = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(images[i]).save(root / f"{i:05d}.png")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--module", default=".modhub/zoo/mobilenet-v2-feature-vector")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-predict"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    photos = write_photos(args.work / "photos", args.images)
    module = str(Path(args.module).absolute())

    started = time.perf_counter()
    local = predict(module, photos, args.work / "local.parquet", batch_size=args.batch_size, progress=False)
    local_s = time.perf_counter() - started
    rows = [("local loop (modhub predict)", local_s, local_s, 1)]

    src = str(Path(modhub.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    with LocalCluster(num_cpus=2, env=env) as cluster:
        for workers in (1, 2):
            out = args.work / f"cluster-{workers}.parquet"
            started = time.perf_counter()
            job = submit_predict(
                module, photos, out, cluster=cluster.address, batch_size=args.batch_size, workers=workers,
                upload=False,
            )  # fmt: skip
            result = job.result(timeout=1800)
            wall = time.perf_counter() - started
            same = pq.read_table(out).equals(pq.read_table(local.out))
            rows.append((f"Ray Data, {workers} worker(s){'' if same else ' (OUTPUT DIFFERS)'}",
                         float(result["seconds"]), wall, workers))  # fmt: skip
    # The machine is shared: run the local loop again and keep the faster of the two.
    started = time.perf_counter()
    predict(
        module,
        photos,
        args.work / "local.parquet",
        batch_size=args.batch_size,
        progress=False,
        overwrite=True,
    )
    again = time.perf_counter() - started
    print(f"local loop: {local_s:.1f} s before the cluster runs, {again:.1f} s after")
    local_s = min(local_s, again)
    rows[0] = ("local loop (modhub predict), best of 2", local_s, local_s, 1)

    print(
        f"\n{args.images} Fashion-MNIST photos, {Path(module).name}, batch {args.batch_size}, "
        "2 CPU cores shared"
    )
    print(f"{'':40} {'pipeline s':>10} {'img/s':>7} {'vs local':>8} {'job wall s':>10}")
    for name, seconds, wall, _ in rows:
        rate = args.images / seconds
        print(f"{name:40} {seconds:10.1f} {rate:7.1f} {local_s / seconds:7.2f}x {wall:10.1f}")
    print("pipeline s: inside the job (Ray Data start, actors loading the module, predicting, writing);")
    print("job wall s: from submit to the job's end, as `modhub predict --cluster` waits.")


if __name__ == "__main__":
    main()
