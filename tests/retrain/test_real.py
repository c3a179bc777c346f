"""One real transfer-learning run: Fashion-MNIST photos on the MobileNetV2 feature vector."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import modhub as hub
from modhub.retrain import retrain_images

FASHION = Path("/usr/share/datasets/fashion-mnist")
MODULE = "mobilenet-v2-feature-vector"
CLASSES = {1: "trouser", 7: "sneaker", 8: "bag"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
        reason="Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist",
    ),
]


def _idx(name: str) -> np.ndarray:
    with gzip.open(FASHION / name) as fh:
        data = fh.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


@pytest.fixture(scope="module")
def mobilenet() -> Path:
    from modhub.zoo import build_zoo
    from tests.zoo.conftest import zoo_cache_dir

    (path,) = build_zoo(zoo_cache_dir(), only=[MODULE], progress=False)
    return path


def test_fashion_mnist_on_mobilenet(mobilenet: Path, tmp_path: Path) -> None:
    from PIL import Image

    images, labels = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(0)
    held_out: list[tuple[np.ndarray, str]] = []
    for label, name in CLASSES.items():
        chosen = rng.choice(np.flatnonzero(labels == label), 25, replace=False)
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in chosen[:20]:
            Image.fromarray(images[i], "L").save(tmp_path / "data" / name / f"{i}.png")
        held_out += [(images[i], name) for i in chosen[20:]]

    result = retrain_images(tmp_path / "data", mobilenet, tmp_path / "out", progress=False)
    assert result.accuracy >= 0.8, result.report["validation"]
    module = hub.load(result.module_dir)
    assert module.labels == sorted(CLASSES.values())

    # The photos as they are (28x28 uint8 greyscale): the module resizes them by its policy.
    predicted = [module.labels[i] for i in np.asarray(module([p for p, _ in held_out])).argmax(1).tolist()]
    correct = sum(p == name for p, (_, name) in zip(predicted, held_out, strict=True))
    assert correct >= 12, list(zip(predicted, [n for _, n in held_out], strict=True))
