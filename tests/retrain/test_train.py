from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.retrain.model import ImageClassifier
from modhub.retrain.train import Head, TrainConfig, fine_tune, train_head


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 6)).astype(np.float32)
    x[:, :3] += 3 * np.eye(3, dtype=np.float32)[y]
    x[:, 5] = 7.0  # a constant feature must not blow up the standardisation
    return x, y


def test_head_learns_and_keeps_the_best_epoch() -> None:
    x, y = _blobs(90, 0)
    vx, vy = _blobs(30, 1)
    head = Head.for_features(x, 3)
    assert torch.isfinite(head(torch.from_numpy(vx))).all()
    history = train_head(head, x, y, vx, vy, TrainConfig(epochs=40, lr=0.05, batch_size=16))
    losses = [e.val_loss for e in history.epochs]
    assert history.epochs[history.best].val_loss == min(losses)
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    with torch.no_grad():
        logits = head(torch.from_numpy(vx))
    kept_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(vy)).item()
    assert abs(kept_loss - min(losses)) < 1e-5  # the kept weights are the best epoch's
    assert (logits.argmax(1).numpy() == vy).mean() > 0.9


@pytest.mark.parametrize("update_batchnorm", [False, True])
def test_fine_tune_trains_module_weights(feature_module: Path, update_batchnorm: bool) -> None:
    backbone = hub.Layer(feature_module, trainable=True)
    before = {k: v.clone() for k, v in backbone.graph.state_dict().items()}
    head = Head(torch.zeros(8), torch.ones(8), 2)
    model = ImageClassifier(backbone, head)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((12, 3, 32, 32), dtype=np.float32))
    labels = np.array([0, 1] * 6)
    images[labels == 1] *= 0.3  # a learnable difference: brightness

    def batch(indices: list[int], augment: bool = False) -> tuple[torch.Tensor, ...]:
        return (images[indices],)

    config = TrainConfig(epochs=3, lr=0.05, batch_size=4, fine_tune=True, update_batchnorm=update_batchnorm)
    history = fine_tune(model, backbone, head, batch, labels, batch, labels, config)
    assert [e.stage for e in history.epochs] == ["fine-tune"] * 3
    assert history.epochs[history.best].val_loss == min(e.val_loss for e in history.epochs)
    # No head-only epochs before: whichever epoch is kept, it trained the module.
    changed = {k for k, v in backbone.graph.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.endswith("conv.weight") for k in changed)
    # BatchNorm statistics move only when asked to (default: inference mode, as Keras advises).
    assert any(k.endswith("running_mean") for k in changed) == update_batchnorm
