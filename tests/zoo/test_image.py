"""The image starters against the real thing: ImageNet photos, penultimate layer, ONNX."""

from __future__ import annotations

import pytest
import torch

from modhub.zoo import get_starter

FAMILIES = ("efficientnet-lite0", "mobilenet-v2")
# Needs the real starter modules: built once (minutes), then reused from the zoo cache.
pytestmark = pytest.mark.slow

CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


@pytest.mark.parametrize("family", FAMILIES)
def test_classifier_recognises_cat_and_espresso(load_starter, photos: torch.Tensor, family: str) -> None:
    module = load_starter(f"{family}-classification")
    logits = module(photos)
    assert logits.shape == (2, 1000)
    assert len(module.labels) == 1000
    top5 = [[module.labels[i] for i in row] for row in logits.topk(5).indices.tolist()]
    assert module.labels[int(logits[0].argmax())] in CAT_CLASSES, top5[0]
    assert "espresso" in top5[1], top5[1]


@pytest.mark.parametrize("family", FAMILIES)
def test_feature_vector_is_the_classifiers_penultimate_layer(
    load_starter, photos: torch.Tensor, family: str
) -> None:
    from modhub.zoo._vision import build_model

    features = load_starter(f"{family}-feature-vector")(photos)
    logits = load_starter(f"{family}-classification")(photos)
    assert features.shape == (2, 1280)
    head = build_model(get_starter(f"{family}-classification").family, classify=True).classifier
    with torch.no_grad():
        recomputed = features @ head.weight.T + head.bias
    torch.testing.assert_close(recomputed, logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_exported_graph_equals_eager_model(load_starter, photos: torch.Tensor, family: str) -> None:
    from modhub.zoo._vision import build_model

    starter = get_starter(f"{family}-classification")
    eager = build_model(starter.family, classify=True)
    with torch.no_grad():
        expected = eager(photos)
    got = load_starter(starter.name)(photos)
    assert (got - expected).abs().max().item() <= 1e-5


def test_labels_are_readable_imagenet_names(zoo_dir) -> None:
    labels = (zoo_dir / "mobilenet-v2-classification" / "assets" / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby" and labels[967] == "espresso"
    assert all(label and label == label.strip() for label in labels)
