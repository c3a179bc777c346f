"""The classification head chosen by cross-validation: L2-regularised logistic regression.

Fitted in torch (full-batch L-BFGS on standardised features) so that the head is
a plain ``nn.Module`` exported in one graph with the base module. The L2 strength
is chosen by stratified k-fold cross-validation on all labelled examples, then
the head is refitted on all of them. The out-of-fold predictions at the chosen
strength are the run's validation metrics: every example is predicted by a head
that did not see it.

The objective is scikit-learn's ``LogisticRegression`` (multinomial, lbfgs)
divided by ``C * n``: mean cross-entropy + ``||W||² / (2 C n)``; the bias is not penalised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from modhub.retrain.train import Head

__all__ = ["C_GRID", "CrossValidation", "fit_head_cv", "fit_logistic", "stratified_folds"]

# Inverse L2 strengths tried, weakest regularisation last (scikit-learn's C).
C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 13))
MAX_ITER = 200


@dataclass
class CrossValidation:
    """What cross-validation chose and measured (recorded in the report)."""

    folds: int
    # Chosen inverse regularisation strength (scikit-learn's C).
    c: float
    # Per C: mean out-of-fold accuracy and log loss.
    grid: list[dict[str, float]] = field(default_factory=list)
    # Out-of-fold class probabilities at the chosen C, [N, classes], in example order.
    oof_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def to_json(self) -> dict[str, Any]:
        return {"folds": self.folds, "C": self.c, "grid": self.grid}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    # The fits are many small ops: with several intra-op threads on a busy machine they
    # spend 10-100x longer synchronising than computing (measured: 3.4 s vs 0.02 s per fit).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Validation indices of each fold: per class, a seeded shuffle dealt round-robin."""
    rng = np.random.default_rng(seed)
    buckets: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        for i, index in enumerate(members):
            # The offset spreads small classes over different folds.
            buckets[(i + offset) % folds].append(int(index))
        offset += len(members)
    return [np.array(sorted(b), dtype=np.int64) for b in buckets]


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    # The floor keeps constant features (std 0) from blowing up (as Head.for_features).
    std = x.std(0).clamp(min=1e-3 * float(x.std()) + 1e-8) if len(x) > 1 else torch.ones_like(mean)
    return mean, std


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    c: float,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [classes, D] and bias [classes] of L2 logistic regression on (already standardised) ``x``."""
    n, dim = x.shape
    weight = (init[0].clone() if init else torch.zeros(classes, dim, dtype=x.dtype)).requires_grad_(True)
    bias = (init[1].clone() if init else torch.zeros(classes, dtype=x.dtype)).requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=MAX_ITER,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    penalty = 1.0 / (2.0 * c * n)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(x @ weight.T + bias, y) + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


def _fit_standardised(
    x: torch.Tensor, y: torch.Tensor, classes: int, cs: Sequence[float]
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per C: (mean, std, weight, bias), warm-starting along the C path."""
    mean, std = _standardise(x)
    xs = (x - mean) / std
    out = []
    init = None
    for c in cs:
        weight, bias = fit_logistic(xs, y, classes, c, init)
        init = (weight, bias)
        out.append((mean, std, weight, bias))
    return out


def fit_head_cv(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    *,
    folds: int = 5,
    seed: int = 0,
    cs: Sequence[float] = C_GRID,
    augmented: np.ndarray | None = None,
    progress: Any = None,
) -> tuple[Head, CrossValidation]:
    """Choose C by stratified k-fold CV (lowest log loss), refit on everything.

    ``augmented``: optional extra features of the same examples (e.g. flipped photos), row
    for row; they join the training side only, in the same fold as their original, so the
    validation side never holds a copy of a training example.
    ``folds`` is lowered to the size of the smallest class (at least 2).
    ``progress`` (tqdm-like) advances once per fold and once for the final fit.
    """
    with _one_thread():
        return _fit_head_cv(features, labels, classes, folds, seed, cs, augmented, progress)


def _fit_head_cv(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    folds: int,
    seed: int,
    cs: Sequence[float],
    augmented: np.ndarray | None,
    progress: Any,
) -> tuple[Head, CrossValidation]:
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).double()
    y = torch.from_numpy(labels).long()
    extra = (
        torch.from_numpy(np.ascontiguousarray(augmented, dtype=np.float32)).double()
        if augmented is not None
        else None
    )

    def training(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if extra is None:
            return x[rows], y[rows]
        return torch.cat([x[rows], extra[rows]]), torch.cat([y[rows], y[rows]])

    smallest = int(np.bincount(labels, minlength=classes).min())
    k = max(2, min(folds, smallest))
    splits = stratified_folds(labels, k, seed)
    probs = np.zeros((len(cs), len(labels), classes))
    for val in splits:
        train = np.setdiff1d(np.arange(len(labels)), val)
        fits = _fit_standardised(*training(train), classes, cs)
        with torch.no_grad():
            for j, (mean, std, weight, bias) in enumerate(fits):
                logits = ((x[val] - mean) / std) @ weight.T + bias
                probs[j, val] = logits.softmax(1).numpy()
        if progress is not None:
            progress.update(1)
    grid = []
    for j, c in enumerate(cs):
        predicted = probs[j].argmax(1)
        picked = np.clip(probs[j][np.arange(len(labels)), labels], 1e-12, 1.0)
        grid.append(
            {
                "C": float(c),
                "accuracy": float((predicted == labels).mean()),
                "log_loss": float(-np.log(picked).mean()),
            }
        )
    # Log loss, not accuracy: on a few hundred examples accuracy moves in steps of 1/n and
    # picks an unstable C (measured: 0.699 vs 0.725 test accuracy on one split, bench/).
    best = min(range(len(cs)), key=lambda j: (grid[j]["log_loss"], -grid[j]["accuracy"]))
    mean, std, weight, bias = _fit_standardised(*training(np.arange(len(labels))), classes, [cs[best]])[0]
    if progress is not None:
        progress.update(1)
    head = Head(mean.float(), std.float(), classes)
    with torch.no_grad():
        head.linear.weight.copy_(weight.float())
        head.linear.bias.copy_(bias.float())
    return head.eval(), CrossValidation(k, float(cs[best]), grid, probs[best])
