"""The cross-validated head: transform and C chosen together, refitted on all examples."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from modhub.retrain.heads import TRANSFORMS, c_grid, fit_head_cv, fit_logistic, select
from modhub.retrain.train import Head, power_normalise

# The transforms of the features as they are, without the power transform.
SCALINGS = ("centred", "standardised")


def _scaled_data(signal_scale: float, noise_scale: float, n: int = 120, seed: int = 0) -> tuple:
    """Two classes; 3 informative features of spread ``signal_scale``, 60 noise features of
    spread ``noise_scale``. Standardising puts every feature on the same footing."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    signal = (labels[:, None] * 2.0 - 1.0) * 0.8 + rng.normal(0, 1, (n, 3))
    noise = rng.normal(0, 1, (n, 60))
    features = np.hstack([signal * signal_scale, noise * noise_scale]).astype(np.float32)
    return features, labels


def _accuracy(head: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((head(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def test_cv_keeps_the_raw_geometry_when_standardising_would_amplify_noise() -> None:
    # Signal on large features, noise on tiny ones: standardising blows the noise up.
    # Between the two scalings of the features as they are (the power transforms are
    # tested below).
    x, y = _scaled_data(signal_scale=1.0, noise_scale=0.01)
    head, cv = fit_head_cv(x, y, 2, seed=0, transforms=SCALINGS)
    assert cv.transform == "centred"
    assert {g["transform"] for g in cv.grid} == set(SCALINGS)
    best = {t: min(g["log_loss"] for g in cv.grid if g["transform"] == t) for t in SCALINGS}
    assert best["centred"] < best["standardised"]
    # The exported head applies one scale to every feature (the geometry is kept).
    assert torch.unique(head.std).numel() == 1
    test_x, test_y = _scaled_data(1.0, 0.01, n=400, seed=1)
    assert _accuracy(head, test_x, test_y) > 0.75


def test_cv_standardises_when_the_signal_is_on_tiny_features() -> None:
    x, y = _scaled_data(signal_scale=0.01, noise_scale=1.0)
    head, cv = fit_head_cv(x, y, 2, seed=0, transforms=SCALINGS)
    assert cv.transform == "standardised"
    assert torch.unique(head.std).numel() > 1
    test_x, test_y = _scaled_data(0.01, 1.0, n=400, seed=1)
    assert _accuracy(head, test_x, test_y) > 0.75


def test_the_final_head_is_refitted_on_every_example() -> None:
    x, y = _scaled_data(1.0, 0.01, n=60)
    head, cv = fit_head_cv(x, y, 2, seed=0, transforms=SCALINGS)
    # Refitting the chosen setting on all 60 by hand gives the same weights ...
    xt = torch.from_numpy(x).double()
    mean = xt.mean(0)
    scaled = (xt - mean) / head.std[0].double()
    weight, bias = fit_logistic(scaled, torch.from_numpy(y), 2, cv.c * float(head.std[0, 0]) ** 2)
    assert torch.allclose(head.linear.weight.double(), weight, atol=1e-4)
    assert torch.allclose(head.linear.bias.double(), bias, atol=1e-4)
    assert torch.allclose(head.mean[0].double(), mean, atol=1e-6)
    # ... and any fold's model (fitted without a fifth of them) differs.
    fold = np.arange(12, 60)
    fold_mean = xt[fold].mean(0)
    fold_w, _ = fit_logistic(
        (xt[fold] - fold_mean) / head.std[0].double(),
        torch.from_numpy(y[fold]),
        2,
        cv.c * float(head.std[0, 0]) ** 2,
    )
    assert not torch.allclose(head.linear.weight.double(), fold_w, atol=1e-3)
    # The out-of-fold probabilities are the chosen grid row's metrics.
    chosen = next(g for g in cv.grid if g["transform"] == cv.transform and g["C"] == cv.c)
    assert chosen["accuracy"] == pytest.approx(float((cv.oof_probs.argmax(1) == y).mean()))


def test_centred_c_is_scikit_learns_c_on_the_raw_features() -> None:
    """The baseline (LogisticRegression(C=1) on the raw features) is one of the candidates."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(3)
    for classes in (2, 3):
        y = np.arange(90) % classes
        # Small, offset features (like sentence embeddings), weakly informative.
        x = rng.normal(0, 0.05, (90, 16)) + 0.3 + y[:, None] * 0.02
        assert 1.0 in c_grid(x, "centred")
        shift = c_grid(x, "centred", cs=[1.0])[0]  # centred grid = standardised grid * shift
        head, cv = fit_head_cv(x, y, classes, seed=0, cs=[1.0 / shift], transforms=["centred"])
        assert cv.c == pytest.approx(1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = LogisticRegression(C=1.0, max_iter=10000, tol=1e-10).fit(x, y)
        with torch.no_grad():
            ours = head(torch.from_numpy(x.astype(np.float32))).softmax(1).numpy()
        np.testing.assert_allclose(ours, reference.predict_proba(x), atol=2e-3)


def test_one_standard_error_rule_prefers_earlier_transform_and_smaller_c() -> None:
    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    candidates = [("centred", 1.0), ("centred", 10.0), ("standardised", 0.1), ("standardised", 1.0)]

    def probs_with(right: np.ndarray) -> np.ndarray:
        out = np.empty((len(labels), 2))
        out[np.arange(len(labels)), labels] = right
        out[np.arange(len(labels)), 1 - labels] = 1 - right
        return out

    base = rng.uniform(0.55, 0.95, len(labels))
    # Candidate 2 is the lowest; 0 and 1 are a little worse, within one standard error; 3 is not.
    probs = np.stack(
        [probs_with(base + 0.006), probs_with(base + 0.007), probs_with(base + 0.01), probs_with(base)]
    )
    grid, best = select(candidates, probs, labels)
    assert int(np.argmin([g["log_loss"] for g in grid])) == 2
    assert best == 0
    # Candidate 0 now far worse (many standard errors): the next within one SE wins.
    probs[0] = probs_with(np.full(len(labels), 0.5))
    _, best = select(candidates, probs, labels)
    assert best == 1
    probs[1] = probs_with(np.full(len(labels), 0.5))
    _, best = select(candidates, probs, labels)
    assert best == 2


def _activations(n: int, seed: int, informative_scale: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of non-negative, heavy-tailed features, like pooled ReLU activations:
    a class pattern in log space, times a per-example overall scale (a photo's contrast).
    The scale carries no class information, unless ``informative_scale``: then the class
    is only in the scale (the pattern is the same for every class)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    patterns = np.random.default_rng(99).normal(0, 1, (3, 64))  # the same classes in every split
    logs = (0 if informative_scale else patterns[labels] * 0.5) + rng.normal(0, 1, (n, 64))
    scale = 3.0 ** labels[:, None] if informative_scale else np.exp(rng.normal(0, 1.0, (n, 1)))
    return (scale * np.exp(logs)).astype(np.float32), labels


def test_power_normalise_roots_each_feature_and_scales_each_row_to_unit_length() -> None:
    x = torch.tensor([[4.0, -9.0, 0.0], [0.0, 0.0, 0.0], [1e-8, 0.0, 0.0]])
    out = power_normalise(x)
    np.testing.assert_allclose(out[0].numpy(), np.array([2.0, -3.0, 0.0]) / np.sqrt(13.0), rtol=1e-6)
    assert torch.equal(out[1], torch.zeros(3))  # an all-zero row stays zero (no NaN)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(torch.linalg.vector_norm(out[[0, 2]], dim=1).numpy(), 1.0, rtol=1e-6)
    # A photo's overall contrast does not move it.
    torch.testing.assert_close(power_normalise(x[:1] * 7.5), out[:1])
    # Gradients stay finite at features that are exactly 0 (fine-tuning an exported classifier).
    features = torch.tensor([[0.0, 0.5, 2.0], [0.0, 0.0, 0.0]], requires_grad=True)
    head = Head(torch.zeros(3), torch.ones(3), 2, power=True)
    head(features).sum().backward()
    assert features.grad is not None and torch.isfinite(features.grad).all()


def test_cv_takes_the_power_transform_for_skewed_activations_and_it_generalises() -> None:
    x, y = _activations(150, seed=0)
    head, cv = fit_head_cv(x, y, 3, seed=0)
    assert cv.transform == "power-centred" and head.power
    assert {g["transform"] for g in cv.grid} == set(TRANSFORMS)
    test_x, test_y = _activations(600, seed=1)
    plain, _ = fit_head_cv(x, y, 3, seed=0, transforms=SCALINGS)
    assert not plain.power
    # Better on unseen data than the best head on the features as they are, by a margin.
    assert _accuracy(head, test_x, test_y) > _accuracy(plain, test_x, test_y) + 0.05
    # The head applies the transform itself: its logits are the linear layer on the
    # power-normalised, scaled features.
    with torch.no_grad():
        by_hand = head.linear((power_normalise(torch.from_numpy(test_x)) - head.mean) / head.std)
        torch.testing.assert_close(head(torch.from_numpy(test_x)), by_hand)


def test_cv_keeps_the_features_as_they_are_when_the_power_transform_removes_the_signal() -> None:
    # The class is in the overall scale, which unit length throws away.
    x, y = _activations(150, seed=0, informative_scale=True)
    head, cv = fit_head_cv(x, y, 3, seed=0)
    assert not cv.transform.startswith("power-") and not head.power
    power_loss = min(g["log_loss"] for g in cv.grid if g["transform"].startswith("power-"))
    assert power_loss > min(g["log_loss"] for g in cv.grid) + 0.1
    test_x, test_y = _activations(600, seed=1, informative_scale=True)
    assert _accuracy(head, test_x, test_y) > 0.8


def test_a_power_head_exports_in_one_graph_and_loads_in_both_runtimes(tmp_path: Path) -> None:
    import modhub as hub

    torch.manual_seed(0)
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
    )
    photos = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        pooled = features(photos)
    head = Head(pooled.mean(0), pooled.std(0) + 1e-3, 3, power=True)
    model = torch.nn.Sequential(features, head).eval()
    out = hub.export(
        model, photos[:2], tmp_path / "power", task="image-classification", license="MIT",
        labels=["a", "b", "c"], onnx=True,
    )  # fmt: skip
    with torch.no_grad():
        expected = model(photos).numpy()
    for runtime in ("torch", "onnx"):
        got = np.asarray(hub.load(out, runtime=runtime)(photos.numpy()))
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=runtime)


def test_signed_features_are_not_offered_the_power_transform() -> None:
    x, y = _scaled_data(1.0, 1.0, n=40)  # signed, like sentence embeddings
    _, cv = fit_head_cv(x, y, 2, seed=0)
    assert {g["transform"] for g in cv.grid} == set(SCALINGS)
    with pytest.raises(ValueError, match="non-negative features"):
        fit_head_cv(x, y, 2, transforms=["power-centred"])
    # Non-negative features with signed augmented copies: the same.
    _, cv = fit_head_cv(np.abs(x), y, 2, seed=0, augmented=x)
    assert {g["transform"] for g in cv.grid} == set(SCALINGS)


def test_unknown_transforms_are_refused() -> None:
    x, y = _scaled_data(1.0, 1.0, n=20)
    with pytest.raises(ValueError, match="transforms must be among"):
        fit_head_cv(x, y, 2, transforms=["whitened"])
