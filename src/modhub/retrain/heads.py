"""The classification head chosen by cross-validation: L2-regularised logistic regression.

Fitted in torch (full-batch L-BFGS) so that the head is a plain ``nn.Module``
exported in one graph with the base module. Stratified k-fold cross-validation on
all labelled examples chooses the feature transform and the L2 strength together,
then the head is refitted on all of them. The out-of-fold predictions at the chosen
setting are the run's validation metrics: every example is predicted by a head
that did not see it.

Transforms (``TRANSFORMS``), in the order the one-standard-error rule prefers them:

- ``power-centred`` and ``power-standardised``: first ``train.power_normalise`` (each
  feature's signed square root, then each example scaled to unit length: the power
  transform of few-shot transfer learning), then centred or standardised as below.
  Offered only when the features are non-negative (pooled ReLU activations). On the
  starter image modules' features, with the default resize policy, it is the better head
  on every image set measured in bench/RESULTS-retrain.md.
- ``centred``: the features minus their mean, divided by one scale for all of them.
  With an unpenalised bias, and C counted in units of the raw features, this is the same
  model as logistic regression on the raw features (scikit-learn's default setup);
  centring and the global scale only help L-BFGS converge. It keeps the geometry of the
  embedding (e.g. unit-length sentence embeddings), which per-feature scaling distorts.
- ``standardised``: each feature scaled to unit variance (better when features have
  very different spreads, e.g. pooled CNN activations).

Each transform gets the same 25 quarter-decade steps of C, placed relative to the
(mapped) features' overall scale (a global rescaling of the features is the same as a
rescaling of C), so all cover the same range of effective strengths; the centred
grids are on the lattice of powers of 10^0.5 and contain C = 1 for features of any
ordinary scale, i.e. scikit-learn's ``LogisticRegression()`` on the raw features is
one of the candidates. C is reported in units of the features the scaling step sees:
the raw features, or the power-normalised ones. The candidate is chosen by the
one-standard-error rule on the out-of-fold log loss (``select``).

The objective is scikit-learn's ``LogisticRegression`` (lbfgs; binary for two classes,
multinomial otherwise) divided by ``C * n``: mean cross-entropy + ``||W||² / (2 C n)``;
the bias is not penalised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from modhub.retrain.train import Head, power_normalise

__all__ = [
    "C_GRID",
    "TRANSFORMS",
    "CrossValidation",
    "c_grid",
    "fit_head_cv",
    "fit_logistic",
    "select",
    "stratified_folds",
]

# Inverse L2 strengths tried on standardised features, in quarter-decade steps, weakest
# regularisation last (scikit-learn's C).
C_GRID: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 2, 25))
# In the order the one-standard-error rule prefers them (see ``select``).
TRANSFORMS: tuple[str, ...] = ("power-centred", "power-standardised", "centred", "standardised")
_POWER = "power-"
MAX_ITER = 200


@dataclass
class CrossValidation:
    """What cross-validation chose and measured (recorded in the report)."""

    folds: int
    # Chosen inverse regularisation strength (scikit-learn's C).
    c: float
    # Chosen feature transform (one of TRANSFORMS).
    transform: str = "standardised"
    # Per (transform, C): mean out-of-fold accuracy and log loss.
    grid: list[dict[str, Any]] = field(default_factory=list)
    # Out-of-fold class probabilities at the chosen setting, [N, classes], in example order.
    oof_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    def to_json(self) -> dict[str, Any]:
        return {"folds": self.folds, "C": self.c, "transform": self.transform, "grid": self.grid}


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


def _scale_exponent(x: torch.Tensor | np.ndarray) -> int:
    """m with 10^(-m/2) the nearest half-decade to the features' mean per-feature variance."""
    variance = float(np.asarray(x, dtype=np.float64).var(0).mean()) if len(x) > 1 else 1.0
    if not np.isfinite(variance) or variance <= 0:
        return 0
    return round(2 * np.log10(1.0 / variance))


def _power(transform: str) -> bool:
    """Whether ``transform`` power-normalises the features before scaling them."""
    return transform.startswith(_POWER)


def _scaling(transform: str) -> str:
    """The scaling step of ``transform``: ``centred`` or ``standardised``."""
    return transform.removeprefix(_POWER)


def _statistics(x: torch.Tensor, transform: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) the head applies as ``(x - mean) / std`` to ``x``, already power-normalised
    if ``transform`` says so."""
    mean = x.mean(0)
    if _scaling(transform) == "centred":
        # One global scale for every feature (the geometry is kept): about unit variance on
        # average, so L-BFGS sees a well-conditioned problem at every C.
        return mean, torch.full_like(mean, 10 ** (-_scale_exponent(x) / 4))
    # The floor keeps constant features (std 0) from blowing up (as Head.for_features).
    std = x.std(0).clamp(min=1e-3 * float(x.std()) + 1e-8) if len(x) > 1 else torch.ones_like(mean)
    return mean, std


def c_grid(features: np.ndarray, transform: str, cs: Sequence[float] = C_GRID) -> tuple[float, ...]:
    """The C values tried for ``transform``, in units of the features its scaling step sees
    (scikit-learn's C on the raw features, for ``centred``): ``cs`` is meant for
    unit-variance features; for centred features it is shifted by the half-decade
    nearest to 1 / their mean per-feature variance, so that the grid stays on the
    lattice 10^(k/2) (C = 1 included)."""
    if _scaling(transform) == "standardised":
        return tuple(cs)
    if _power(transform):
        features = power_normalise(torch.from_numpy(np.asarray(features, dtype=np.float64))).numpy()
    shift = 10 ** (_scale_exponent(features) / 2)
    return tuple(float(c * shift) for c in cs)


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    classes: int,
    c: float,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights [classes, D] and bias [classes] of L2 logistic regression on (already transformed) ``x``.

    Two classes are fitted as scikit-learn does, as binary logistic regression with one
    weight vector (returned as the rows [0, w]); a softmax over two penalised rows would
    be the same model at twice the C.
    """
    n, dim = x.shape
    rows = 1 if classes == 2 else classes
    if init is None:
        weight = torch.zeros(rows, dim, dtype=x.dtype)
        bias = torch.zeros(rows, dtype=x.dtype)
    else:
        weight, bias = init[0][-rows:].clone(), init[1][-rows:].clone()
    weight.requires_grad_(True)
    bias.requires_grad_(True)
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
    target = y.to(x.dtype)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = x @ weight.T + bias
        if rows == 1:
            data = nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target)
        else:
            data = nn.functional.cross_entropy(logits, y)
        loss = data + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    if rows == 1:
        weight = torch.cat([torch.zeros_like(weight), weight])
        bias = torch.cat([torch.zeros_like(bias), bias])
    return weight, bias


def _fit_path(
    x: torch.Tensor, y: torch.Tensor, classes: int, transform: str, cs: Sequence[float]
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per C: (mean, std, weight, bias), warm-starting along the C path. ``x`` is already
    power-normalised if ``transform`` says so."""
    mean, std = _statistics(x, transform)
    xs = (x - mean) / std
    # C of x → C of the scaled features: x / s with C' = C * s² is the same model.
    scale = float(std[0]) ** 2 if _scaling(transform) == "centred" else 1.0
    out = []
    init = None
    for c in cs:
        weight, bias = fit_logistic(xs, y, classes, c * scale, init)
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
    transforms: Sequence[str] = TRANSFORMS,
    augmented: np.ndarray | None = None,
    progress: Any = None,
) -> tuple[Head, CrossValidation]:
    """Choose the transform and C by stratified k-fold CV (lowest log loss), refit on everything.

    ``cs`` is the grid for standardised features; centred features get it shifted to
    their scale (``c_grid``). The choice follows the one-standard-error rule (``select``).

    ``augmented``: optional extra features of the same examples (e.g. flipped photos), row
    for row; they join the training side only, in the same fold as their original, so the
    validation side never holds a copy of a training example.
    ``folds`` is lowered to the size of the smallest class (at least 2).
    ``progress`` (tqdm-like) advances once per fold and once for the final fit.
    """
    with _one_thread():
        return _fit_head_cv(features, labels, classes, folds, seed, cs, transforms, augmented, progress)


def _fit_head_cv(
    features: np.ndarray,
    labels: np.ndarray,
    classes: int,
    folds: int,
    seed: int,
    cs: Sequence[float],
    transforms: Sequence[str],
    augmented: np.ndarray | None,
    progress: Any,
) -> tuple[Head, CrossValidation]:
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown or not transforms:
        raise ValueError(f"transforms must be among {TRANSFORMS}, got {list(transforms)}")
    if any(a is not None and float(np.min(a, initial=0.0)) < 0 for a in (features, augmented)):
        # The power transform is for non-negative features: pooled ReLU activations, such as
        # the starter image modules' feature vectors. On signed sentence embeddings CV took it
        # and it scored below the features as they are (bench/RESULTS-retrain.md).
        transforms = [t for t in transforms if not _power(t)]
        if not transforms:
            raise ValueError("the power transforms are for non-negative features; these have negative values")
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).double()
    y = torch.from_numpy(labels).long()
    extra = (
        torch.from_numpy(np.ascontiguousarray(augmented, dtype=np.float32)).double()
        if augmented is not None
        else None
    )

    # The examples (and augmented copies) as each transform's scaling step sees them, by
    # whether it power-normalises. power_normalise works row by row, so it is applied once
    # here rather than per fold, transform and C.
    def view(power: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not power:
            return x, extra
        return power_normalise(x), None if extra is None else power_normalise(extra)

    views = {power: view(power) for power in {_power(t) for t in transforms}}

    def training(rows: np.ndarray, power: bool) -> tuple[torch.Tensor, torch.Tensor]:
        xs, more = views[power]
        if more is None:
            return xs[rows], y[rows]
        return torch.cat([xs[rows], more[rows]]), torch.cat([y[rows], y[rows]])

    # (transform, C) candidates, in tie-break order within a transform (smaller C first).
    candidates = [(t, c) for t in transforms for c in c_grid(features, t, cs)]
    smallest = int(np.bincount(labels, minlength=classes).min())
    k = max(2, min(folds, smallest))
    probs = np.zeros((len(candidates), len(labels), classes))
    for val in stratified_folds(labels, k, seed):
        train = np.setdiff1d(np.arange(len(labels)), val)
        train_sets = {power: training(train, power) for power in views}
        j = 0
        for transform in transforms:
            power = _power(transform)
            grid = [c for t, c in candidates if t == transform]
            val_x = views[power][0][val]
            for mean, std, weight, bias in _fit_path(*train_sets[power], classes, transform, grid):
                with torch.no_grad():
                    logits = ((val_x - mean) / std) @ weight.T + bias
                probs[j, val] = logits.softmax(1).numpy()
                j += 1
        if progress is not None:
            progress.update(1)
    grid_json, best = select(candidates, probs, labels)
    transform, c = candidates[best]
    everything = training(np.arange(len(labels)), _power(transform))
    mean, std, weight, bias = _fit_path(*everything, classes, transform, [c])[0]
    if progress is not None:
        progress.update(1)
    head = Head(mean.float(), std.float(), classes, power=_power(transform))
    with torch.no_grad():
        head.linear.weight.copy_(weight.float())
        head.linear.bias.copy_(bias.float())
    return head.eval(), CrossValidation(k, float(c), transform, grid_json, probs[best])


def select(
    candidates: Sequence[tuple[str, float]], probs: np.ndarray, labels: np.ndarray
) -> tuple[list[dict[str, Any]], int]:
    """The grid's JSON rows and the index of the chosen candidate.

    ``probs``: out-of-fold probabilities per candidate, [candidates, N, classes], the
    candidates ordered by preference: transforms in TRANSFORMS order, each from the
    strongest regularisation (smallest C) up. The criterion is the mean out-of-fold log
    loss (not accuracy: on a few hundred examples accuracy moves in steps of 1/n and picks
    an unstable C; measured in bench/). The one-standard-error rule (Hastie, Tibshirani &
    Friedman, ESL 7.10; glmnet's ``lambda.1se``) then takes the first candidate whose loss
    is within one standard error (over the examples) of the lowest: among settings the
    cross-validation cannot tell apart, the power-normalised features (the better head on
    every image set measured in bench/), then centred before standardised ones (fewer statistics
    estimated from few examples), and the stronger regularisation.
    """
    rows = np.arange(len(labels))
    losses = -np.log(np.clip(probs[:, rows, labels], 1e-12, 1.0))  # [candidates, N]
    grid = []
    for j, (transform, c) in enumerate(candidates):
        grid.append(
            {
                "transform": transform,
                "C": float(c),
                "accuracy": float((probs[j].argmax(1) == labels).mean()),
                "log_loss": float(losses[j].mean()),
            }
        )
    mean_losses = losses.mean(1)
    lowest = int(np.argmin(mean_losses))
    standard_error = float(losses[lowest].std() / np.sqrt(len(labels)))
    bound = float(mean_losses[lowest]) + standard_error
    best = next(j for j in range(len(grid)) if mean_losses[j] <= bound)
    return grid, best
