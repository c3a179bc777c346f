"""Training loops: a classification head on cached features, and fine-tuning through the module.

Both are seeded and deterministic on CPU. Each epoch records train/validation
loss and accuracy; the weights of the epoch with the lowest validation loss
are kept (as Keras' ``EarlyStopping(restore_best_weights=True)`` does).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["EpochStats", "Head", "History", "TrainConfig", "fine_tune", "power_normalise", "train_head"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one retraining run (recorded in the report and the model card)."""

    # Passes over the training split training the head by mini-batches (image fine-tuning
    # and --augment only; otherwise the head is fitted by L-BFGS to convergence).
    epochs: int = 20
    # Passes training module and head together after the head stage (--fine-tune); None: ``epochs``.
    fine_tune_epochs: int | None = None
    batch_size: int = 32
    # Learning rate of the head (Adam); the module gets lr * BACKBONE_LR_FACTOR when fine-tuning.
    lr: float = 1e-3
    # L2 penalty on the head weights (AdamW weight decay).
    weight_decay: float = 1e-2
    fine_tune: bool = False
    # Fine-tuning: let BatchNorm use batch statistics and update its running ones. Off by
    # default, as Keras advises for fine-tuning on small data: a few steps of small batches
    # move the running statistics away from what the pretrained weights expect. Training a
    # randomly initialised network needs it on.
    update_batchnorm: bool = False
    # Random flips and crops of training images (images only).
    augment: bool = False
    # Fraction of each class held out for validation (only where the head is trained by
    # epochs on a hold-out: image fine-tuning and --augment; otherwise k-fold CV is used).
    validation: float = 0.2
    seed: int = 0
    # Folds of the stratified cross-validation that chooses the head's L2 strength
    # (lowered to the size of the smallest class).
    folds: int = 5
    # How photos are brought to the module's input size (modhub.runtimes.images): "squash" keeps
    # the whole photo, "crop" cuts the centre, "pad" fits it in. Recorded in the new module.
    resize: str = "squash"
    # Images: also train the head on features of horizontally flipped photos.
    flip: bool = False
    # Text --fine-tune (SetFit): contrastive pairs per example (SetFit's default of 20
    # iterations: 20 same-class and 20 other-class partners), and a bound on the time spent
    # on them (seconds); the learning-rate schedule is fitted to whichever is shorter.
    pairs_per_example: int = 40
    fine_tune_seconds: float = 300.0
    # Frozen features from the base module's reduced-precision variant ("int8"; None: the exact
    # graph). The new module holds the exact base graph with a head trained on those features.
    precision: str | None = None


# The module's learning rate relative to the head's when fine-tuning: pretrained
# weights need small steps or they forget what made them useful.
BACKBONE_LR_FACTOR = 0.1


@dataclass
class EpochStats:
    epoch: int
    stage: str  # "head" (module frozen) or "fine-tune"
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class History:
    epochs: list[EpochStats] = field(default_factory=list)
    # Index into ``epochs`` of the kept weights.
    best: int = -1

    def to_json(self) -> dict[str, Any]:
        return {"epochs": [asdict(e) for e in self.epochs], "best_epoch": self.epochs[self.best].epoch}


def power_normalise(features: torch.Tensor) -> torch.Tensor:
    """Each feature's signed square root, then each row scaled to unit length.

    The power transform (beta = 1/2) of Hu, Gripon & Pateux, "Leveraging the feature
    distribution in transfer-based few-shot learning" (2021): pooled ReLU activations are
    skewed towards zero with a few large values; the root makes them closer to Gaussian, so a
    linear head fitted on few examples leans less on the few large ones. Measured in
    bench/RESULTS-retrain.md. For non-negative features the sign is a no-op.

    The floor under the root keeps the gradient finite where a feature is exactly 0 (a
    channel no pixel activates), so an exported classifier can still be fine-tuned.
    """
    rooted = features.sign() * features.abs().clamp_min(1e-12).sqrt()
    return rooted / torch.linalg.vector_norm(rooted, dim=-1, keepdim=True).clamp_min(1e-12)


class Head(nn.Module):
    """Optionally ``power_normalise`` the features, standardise them (statistics of the
    training split), then a linear layer."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, classes: int, power: bool = False) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1).clone())
        self.register_buffer("std", std.reshape(1, -1).clone())
        self.linear = nn.Linear(mean.numel(), classes)
        # A fixed setting of the architecture, not a weight: a Python bool the export bakes in.
        self.power = power

    @classmethod
    def for_features(cls, features: np.ndarray, classes: int) -> Head:
        tensor = torch.from_numpy(features)
        # The floor keeps constant features (std 0) from blowing up.
        std = tensor.std(0).clamp(min=1e-3 * float(tensor.std()) + 1e-8)
        return cls(tensor.mean(0), std, classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.power:
            features = power_normalise(features)
        return self.linear((features - self.mean) / self.std)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    return list(order.split(batch_size))


def _evaluate(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    loss = nn.functional.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    return loss, accuracy


def train_head(
    head: Head,
    train_x: np.ndarray | Callable[[int], np.ndarray],
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: TrainConfig,
    *,
    progress: Any = None,
    history: History | None = None,
) -> History:
    """Train ``head`` on fixed features. ``train_x`` may be a function of the epoch
    (fresh features of augmented images every epoch)."""
    history = history if history is not None else History()
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ys = torch.from_numpy(train_y).long()
    vx, vy = torch.from_numpy(val_x), torch.from_numpy(val_y).long()
    best = _BestWeights(head, float("inf"))
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        xs = torch.from_numpy(train_x(epoch) if callable(train_x) else train_x)
        head.train()
        sums = _fit_epoch(head, xs, ys, optimizer, config.batch_size, generator)
        head.eval()
        with torch.no_grad():
            val_loss, val_acc = _evaluate(head(vx), vy)
        _record_epoch(history, "head", sums, (val_loss, val_acc), started, progress, best)
    best.restore()
    return history


def fine_tune(
    model: nn.Module,
    backbone: nn.Module,
    head: nn.Module,
    train_batch: Callable[[list[int], bool], Any],
    train_y: np.ndarray,
    val_batch: Callable[[list[int]], Any],
    val_y: np.ndarray,
    config: TrainConfig,
    *,
    progress: Any = None,
    history: History | None = None,
) -> History:
    """Train module and head together: head at ``lr``, module at ``lr * BACKBONE_LR_FACTOR``.

    The module's BatchNorm stays in inference mode unless ``config.update_batchnorm``.

    ``train_batch(indices, augment)`` / ``val_batch(indices)`` return the tuple of
    the model's inputs for those examples. The best epoch (lowest validation loss, counting
    the head-only epochs before) is kept.
    """
    history = history if history is not None else History()
    generator = torch.Generator().manual_seed(config.seed + 1)
    torch.manual_seed(config.seed + 1)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": [p for p in backbone.parameters() if p.requires_grad],
                "lr": config.lr * BACKBONE_LR_FACTOR,
                "weight_decay": 0.0,
            },
            {"params": list(head.parameters()), "lr": config.lr, "weight_decay": config.weight_decay},
        ]
    )
    ys = torch.from_numpy(train_y).long()
    vy = torch.from_numpy(val_y).long()
    best = _BestWeights(model, history.epochs[history.best].val_loss if history.epochs else float("inf"))
    epochs = config.fine_tune_epochs if config.fine_tune_epochs is not None else config.epochs
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        if not config.update_batchnorm:
            backbone.train(False)  # weights still train; BatchNorm/dropout in inference mode
        sums = _fit_epoch(
            model,
            lambda idx: train_batch(idx.tolist(), config.augment),
            ys,
            optimizer,
            config.batch_size,
            generator,
        )
        model.eval()
        val_logits = predict(model, val_batch, len(vy), config.batch_size)
        val_loss, val_acc = _evaluate(val_logits, vy)
        _record_epoch(history, "fine-tune", sums, (val_loss, val_acc), started, progress, best)
    best.restore()
    return history


def _fit_epoch(
    model: nn.Module,
    inputs: torch.Tensor | Callable[[torch.Tensor], tuple[Any, ...]],
    ys: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
) -> tuple[float, int, int]:
    """One pass over shuffled batches; returns (summed loss, correct, seen) for the epoch's numbers.

    ``inputs`` is a feature tensor indexed per batch, or a function giving a batch's model inputs.
    """
    total, correct, seen = 0.0, 0, 0
    for idx in _batches(len(ys), batch_size, generator):
        logits = model(*inputs(idx)) if callable(inputs) else model(inputs[idx])
        loss = nn.functional.cross_entropy(logits, ys[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        correct += int((logits.argmax(1) == ys[idx]).sum())
        seen += len(idx)
    return total, correct, seen


class _BestWeights:
    """The weights of the epoch with the lowest validation loss so far, put back by ``restore``."""

    def __init__(self, model: nn.Module, loss: float) -> None:
        self.model, self.loss = model, loss
        self.state = copy.deepcopy(model.state_dict())

    def offer(self, loss: float, history: History) -> None:
        """Keep the model's weights if ``loss`` (of the epoch last in ``history``) is the lowest yet."""
        if loss < self.loss:
            self.loss, self.state = loss, copy.deepcopy(self.model.state_dict())
            history.best = len(history.epochs) - 1

    def restore(self) -> None:
        self.model.load_state_dict(self.state)


def _record_epoch(
    history: History,
    stage: str,
    sums: tuple[float, int, int],
    validation: tuple[float, float],
    started: float,
    progress: Any,
    best: _BestWeights,
) -> None:
    """Append one epoch's numbers to ``history``, keep its weights if best, advance the progress bar."""
    total, correct, seen = sums
    val_loss, val_acc = validation
    history.epochs.append(
        EpochStats(
            len(history.epochs) + 1,
            stage,
            total / seen,
            correct / seen,
            val_loss,
            val_acc,
            time.perf_counter() - started,
        )
    )
    best.offer(val_loss, history)
    if progress is not None:
        progress.update(1)
        progress.set_postfix(val_acc=f"{val_acc:.3f}", refresh=False)


def predict(model: nn.Module, batch: Callable[[list[int]], Any], n: int, batch_size: int) -> torch.Tensor:
    """Logits of ``model`` for examples 0..n-1, in inference mode."""
    outs = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            outs.append(model(*batch(list(range(start, min(n, start + batch_size))))))
    return torch.cat(outs)
