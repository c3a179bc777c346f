"""Distributed fine-tuning with Ray Train's ``TorchTrainer`` (CPU, gloo), for ``--fine-tune --workers N``.

1. The head is trained on frozen features exactly as a single-machine run does
   (``modhub.retrain`` with ``fine_tune=False``), giving a classifier module.
2. N Ray Train workers fine-tune that module end to end under DDP. Every worker
   draws the same seeded permutation each epoch and takes its share of each
   global batch of ``batch_size`` examples; DDP averages the gradients, so one
   step equals one single-machine step on the whole batch (the module's
   parameters at ``lr * BACKBONE_LR_FACTOR``, the head's at ``lr``, BatchNorm
   kept in inference mode unless ``update_batchnorm``).
3. Rank 0 validates each epoch on the same held-out split and keeps the best
   weights (the head-only weights if fine-tuning never improves the validation
   loss), which come back as a Ray Train checkpoint and are exported as one module.

Multi-node clusters need ``storage`` on a filesystem every node can write (or
``s3://``): Ray Train persists the checkpoint there.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modhub.settings import Settings

__all__ = ["retrain_distributed"]

WEIGHTS_FILE = "weights.safetensors"
HISTORY_FILE = "history.json"


def retrain_distributed(
    kind: Literal["images", "text"],
    data: Path,
    module: str | Path,
    out: Path,
    *,
    config: Any,
    workers: int,
    settings: Settings,
    text_column: str = "text",
    label_column: str = "label",
    license: str | None = None,
    overwrite: bool = False,
    storage: str | None = None,
) -> Any:
    """Head on one machine, fine-tuning on ``workers`` Ray Train workers; returns a ``RetrainResult``."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from modhub.retrain import RetrainResult, retrain_images, retrain_text

    head_config = dataclasses.replace(config, fine_tune=False)
    with tempfile.TemporaryDirectory(prefix="modhub-dist-") as tmp:
        head_dir = Path(tmp) / "head"
        started = time.perf_counter()
        if kind == "images":
            head = retrain_images(
                data, module, head_dir, config=head_config, settings=settings, progress=True
            )
        else:
            head = retrain_text(
                data,
                module,
                head_dir,
                text_column=text_column,
                label_column=label_column,
                config=head_config,
                settings=settings,
                progress=True,
            )
        head_s = time.perf_counter() - started
        loop_config = {
            "kind": kind,
            # Absolute: Ray Train workers run in a directory of their own. Uploaded data is
            # unpacked at the same path on every node (Ray's runtime_resources of the session).
            "data": str(Path(data).absolute()),
            # The head module travels by value: workers on other nodes cannot read this temp dir.
            "head_files": {
                p.relative_to(head_dir).as_posix(): p.read_bytes() for p in head_dir.rglob("*") if p.is_file()
            },
            "config": dataclasses.asdict(config),
            "text_column": text_column,
            "label_column": label_column,
            "settings": {"endpoint": settings.endpoint, "progress": False},
        }
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config=loop_config,
            scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=False),
            torch_config=TorchConfig(backend="gloo"),
            run_config=ray.train.RunConfig(
                name=f"modhub-fine-tune-{int(time.time())}",
                storage_path=storage or str(Path(tmp) / "ray-train"),
            ),
        )
        started = time.perf_counter()
        outcome = trainer.fit()
        tune_s = time.perf_counter() - started
        if outcome.checkpoint is None:
            from modhub.errors import ClusterError

            raise ClusterError(f"Ray Train finished without a checkpoint: {outcome.error}")
        with outcome.checkpoint.as_directory() as ckpt:
            weights = Path(ckpt) / WEIGHTS_FILE
            tuned = json.loads((Path(ckpt) / HISTORY_FILE).read_text())
            timings = {"head_stage_s": head_s, "distributed_fine_tune_s": tune_s}
            extra = {
                "distributed": {"workers": workers, "backend": "gloo", "trainer": "TorchTrainer"},
                "timings": {**head.report["timings"], **timings},
            }
            report = _export(kind, data, module, head_dir, weights, out, {**head.report, **extra}, tuned,
                             config, settings, text_column, label_column, license, overwrite)  # fmt: skip
    return RetrainResult(out, report)


def _split(kind: str, data: str, config: Any, text_column: str, label_column: str) -> tuple[Any, Any, Any]:
    """The labelled data and the single-machine run's train/validation split."""
    from modhub.retrain.data import read_image_folder, read_text_csv, stratified_split

    labelled = (
        read_image_folder(data)
        if kind == "images"
        else read_text_csv(data, text_column=text_column, label_column=label_column)
    )
    labels = [ex.label for ex in labelled.examples]
    train_idx, val_idx = stratified_split(labels, config.validation, config.seed)
    return labelled, train_idx, val_idx


def _model(layer: Any) -> Any:
    """A module calling the Layer's graph on ready inputs (what DDP wraps and what is exported)."""
    import torch

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.layer.graph(*inputs)

    return Graph()


def _inputs(kind: str, layer: Any, config: Any) -> Any:
    from modhub.retrain.inputs import ImageInputs, TextInputs

    if kind != "images":
        return TextInputs(layer)
    # The resize policy the head stage used, where the retrain config has one.
    policy = {"resize": config.resize} if hasattr(config, "resize") else {}
    return ImageInputs(layer, config.seed, **policy)


def _train_loop(loop: dict[str, Any]) -> None:
    """One Ray Train worker (rank r of world size w); its temporary module directory goes with it."""
    head_dir = Path(tempfile.mkdtemp(prefix="modhub-head-"))
    try:
        _train_worker(loop, head_dir)
    finally:
        shutil.rmtree(head_dir, ignore_errors=True)


def _train_worker(loop: dict[str, Any], head_dir: Path) -> None:
    import ray.train
    import ray.train.torch
    import torch
    from torch import nn

    from modhub.loading.layer import Layer
    from modhub.retrain import TrainConfig
    from modhub.retrain.train import BACKBONE_LR_FACTOR

    config = TrainConfig(**loop["config"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    labelled, train_idx, val_idx = _split(
        loop["kind"], loop["data"], config, loop["text_column"], loop["label_column"]
    )
    examples = labelled.examples
    for rel, blob in loop["head_files"].items():
        (head_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (head_dir / rel).write_bytes(blob)
    layer = Layer(head_dir, trainable=True, settings=Settings(**loop["settings"]))
    inputs = _inputs(loop["kind"], layer, config)
    model = ray.train.torch.prepare_model(_model(layer))
    head_params = [p for n, p in layer.named_parameters() if "backbone." not in n]
    body_params = [p for n, p in layer.named_parameters() if "backbone." in n]
    optimizer = torch.optim.AdamW(
        [
            {"params": body_params, "lr": config.lr * BACKBONE_LR_FACTOR, "weight_decay": 0.0},
            {"params": head_params, "lr": config.lr, "weight_decay": config.weight_decay},
        ]
    )
    ys = torch.tensor([examples[i].label for i in train_idx], dtype=torch.long)
    val_y = torch.tensor([examples[i].label for i in val_idx], dtype=torch.long)

    def set_mode() -> None:
        layer.train(config.update_batchnorm)  # weights train either way

    def validate() -> tuple[float, float]:
        layer.eval()
        outs = []
        with torch.no_grad():
            for start in range(0, len(val_idx), config.batch_size):
                chunk = [examples[i] for i in val_idx[start : start + config.batch_size]]
                outs.append(layer.graph(*inputs(chunk)))
        logits = torch.cat(outs)
        loss = nn.functional.cross_entropy(logits, val_y).item()
        return loss, (logits.argmax(1) == val_y).float().mean().item()

    best_loss, best_acc = validate() if rank == 0 else (float("inf"), 0.0)
    best_state = copy.deepcopy(layer.state_dict()) if rank == 0 else None
    history: list[dict[str, Any]] = []
    best_epoch = 0  # 0: the head-only weights
    generator = torch.Generator().manual_seed(config.seed + 1)
    epochs = config.fine_tune_epochs if config.fine_tune_epochs is not None else config.epochs
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        set_mode()
        total, correct, seen = 0.0, 0, 0
        for batch in torch.randperm(len(ys), generator=generator).split(config.batch_size):
            mine = batch[rank::world]
            weight = 1.0
            if len(mine) == 0:  # DDP needs every rank in every step: a zero-weight stand-in
                mine, weight = batch[:1], 0.0
            logits = model(*inputs([examples[train_idx[i]] for i in mine.tolist()], config.augment))
            loss_sum = nn.functional.cross_entropy(logits, ys[mine], reduction="sum")
            # DDP averages over ranks: scale so the step is the mean over the global batch.
            loss = loss_sum * weight * world / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if weight:
                total += loss_sum.item()
                correct += int((logits.argmax(1) == ys[mine]).sum())
                seen += len(mine)
        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": total / max(seen, 1)}
        if rank == 0:
            val_loss, val_acc = validate()
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / max(seen, 1),
                    "train_accuracy": correct / max(seen, 1),
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "seconds": time.perf_counter() - started,
                }
            )
            metrics.update(val_loss=val_loss, val_accuracy=val_acc)
            print(
                f"fine-tune epoch {epoch}/{epochs}: val_loss {val_loss:.4f} val_acc {val_acc:.3f}", flush=True
            )
            if val_loss < best_loss:
                best_loss, best_acc, best_state, best_epoch = (
                    val_loss,
                    val_acc,
                    copy.deepcopy(layer.state_dict()),
                    epoch,
                )
        ray.train.report(metrics)
    checkpoint = None
    if rank == 0:
        from safetensors.torch import save_file

        ckpt_dir = Path(tempfile.mkdtemp(prefix="modhub-ckpt-"))
        assert best_state is not None
        save_file({k: v.detach().contiguous() for k, v in best_state.items()}, str(ckpt_dir / WEIGHTS_FILE))
        (ckpt_dir / HISTORY_FILE).write_text(
            json.dumps({"epochs": history, "best_epoch": best_epoch, "best_val_loss": best_loss})
        )
        checkpoint = ray.train.Checkpoint.from_directory(str(ckpt_dir))
    try:
        ray.train.report({"done": 1, "best_val_accuracy": best_acc}, checkpoint=checkpoint)
    finally:
        # report() has copied the checkpoint to the run's storage: the local one is not needed.
        if checkpoint is not None:
            shutil.rmtree(checkpoint.path, ignore_errors=True)


def _export(
    kind: str,
    data: Path,
    module: str | Path,
    head_dir: Path,
    weights: Path,
    out: Path,
    head_report: dict[str, Any],
    tuned: dict[str, Any],
    config: Any,
    settings: Settings,
    text_column: str,
    label_column: str,
    license: str | None,
    overwrite: bool,
) -> dict[str, Any]:
    """Load the best weights, validate, and write the module with the combined report."""
    import torch
    from safetensors.torch import load_file

    from modhub.loading.layer import Layer
    from modhub.retrain import report as rep
    from modhub.retrain.output import write_module

    layer = Layer(head_dir, settings=settings)
    layer.load_state_dict(load_file(str(weights)))
    labelled, _, val_idx = _split(kind, str(data), config, text_column, label_column)
    examples = labelled.examples
    inputs = _inputs(kind, layer, config)
    outs = []
    with torch.no_grad():
        for start in range(0, len(val_idx), config.batch_size):
            outs.append(
                layer.graph(*inputs([examples[i] for i in val_idx[start : start + config.batch_size]]))
            )
    predictions = torch.cat(outs).argmax(1).numpy()
    val_y = np.array([examples[i].label for i in val_idx])
    report = copy.deepcopy(head_report)
    report["validation"] = rep.classification_metrics(val_y, predictions, report["classes"])
    # A head fitted without epochs (a closed-form or L-BFGS head) has no history.
    head_history = report.get("history") or {"epochs": [], "best_epoch": 0}
    head_epochs = head_history["epochs"]
    best_head = head_history["best_epoch"]
    epochs = head_epochs + [
        {**e, "epoch": len(head_epochs) + e["epoch"], "stage": "fine-tune"} for e in tuned["epochs"]
    ]
    best = best_head if tuned["best_epoch"] == 0 else len(head_epochs) + tuned["best_epoch"]
    report["history"] = {"epochs": epochs, "best_epoch": best}
    report["config"] = {**report["config"], **dataclasses.asdict(config)}
    base = Layer(module, settings=settings)  # its manifest describes the base module in the card
    example: Any = (
        inputs([examples[i] for i in val_idx[:2]])[0]
        if kind == "images"
        else [ex.text or "" for ex in (examples[i] for i in val_idx[:2])]
    )
    write_module(_model(layer), base, example, out, report, license=license, overwrite=overwrite)
    return report
