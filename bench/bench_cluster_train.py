"""Fine-tuning on Ray Train (`--workers 2`) vs the single-machine run on the same data (not a test).

Same data, same config, same seed: `retrain_images(..., fine_tune=True)` on this
machine, then `submit_retrain(..., workers=2)` on a local 2-CPU Ray cluster
(TorchTrainer, gloo, DDP). Both modules are scored on the same held-out
Fashion-MNIST test photos.

    PYTHONPATH=src python bench/bench_cluster_train.py --per-class 20 --work /tmp/bench-train
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import time
from pathlib import Path

import numpy as np

import modhub
from modhub.cluster import LocalCluster, submit_retrain
from modhub.predict import predict
from modhub.retrain import TrainConfig, retrain_images

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def _idx(name: str) -> np.ndarray:
    with gzip.open(FASHION / name) as fh:
        data = fh.read()
    return np.frombuffer(data, np.uint8, offset=16 if "images" in name else 8)


def write(root: Path, split: str, per_class: int, seed: int) -> Path:
    from PIL import Image

    images = _idx(f"{split}-images-idx3-ubyte.gz").reshape(-1, 28, 28)
    labels = _idx(f"{split}-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(seed)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in rng.permutation(np.flatnonzero(labels == c))[:per_class]:
            Image.fromarray(images[i]).save(root / name / f"{i:05d}.png")
    return root


def test_accuracy(module: Path, test_dir: Path, work: Path) -> float:
    import pyarrow.parquet as pq

    out = predict(module, test_dir, work / f"{module.name}-test.parquet", progress=False, overwrite=True)
    table = pq.read_table(out.out)
    truth = [key.split("/")[0] for key in table.column("key").to_pylist()]
    best = [row[0] for row in table.column("top_labels").to_pylist()]
    return float(np.mean([a == b for a, b in zip(truth, best, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--module", default=".modhub/zoo/mobilenet-v2-feature-vector")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-train"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    train = write(args.work / "train", "train", args.per_class, 0)
    test = write(args.work / "test", "t10k", args.test_per_class, 1)
    module = str(Path(args.module).absolute())
    config = TrainConfig(epochs=20, fine_tune=True, fine_tune_epochs=2, batch_size=32, lr=1e-3)

    started = time.perf_counter()
    single = retrain_images(train, module, args.work / "single", config=config, progress=False)
    single_s = time.perf_counter() - started

    src = str(Path(modhub.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    with LocalCluster(num_cpus=2, env=env) as cluster:
        started = time.perf_counter()
        job = submit_retrain(
            "images", train, module, cluster=cluster.address, out=args.work / "ray-train", config=config,
            workers=2, upload=False,
        )  # fmt: skip
        result = job.result(timeout=3600)
        dist_s = time.perf_counter() - started

    print(f"\nFashion-MNIST {args.per_class}/class, {Path(module).name}, {config}")
    print(f"{'':34} {'val acc':>8} {'test acc':>9} {'best epoch':>10} {'wall s':>7}")
    for name, report, out, seconds in (
        ("single machine", single.report, args.work / "single", single_s),
        ("Ray Train, 2 workers (gloo)", result["report"], args.work / "ray-train", dist_s),
    ):
        acc = test_accuracy(out, test, args.work)
        print(
            f"{name:34} {report['validation']['accuracy']:8.3f} {acc:9.3f} "
            f"{report['history']['best_epoch']:10d} {seconds:7.1f}"
        )
    print(f"test set: {args.test_per_class * 10} photos; 2 CPU cores shared with other work")
    print(
        "fine-tune epochs, validation loss / accuracy (the same split; train loss of Ray Train is rank 0's):"
    )
    for name, report in (("single machine", single.report), ("Ray Train", result["report"])):
        tuned = [e for e in report["history"]["epochs"] if e["stage"] == "fine-tune"]
        cells = "  ".join(f"{e['val_loss']:.4f} / {e['val_accuracy']:.3f}" for e in tuned)
        print(f"  {name:16} {cells}")


if __name__ == "__main__":
    main()
