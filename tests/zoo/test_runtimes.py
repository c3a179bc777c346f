"""The starter modules under hub.load(runtime="onnx"): numpy outputs equal to the torch runtime's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.zoo import get_starter, starter_names
from tests.zoo.conftest import ORIGINAL_TASKS

TEXTS = ["The cat sat on the mat.", "Stock markets fell sharply.", "xqzzyqq", " ".join(["long"] * 300)]


# mpnet-base ships no model.onnx (it would double a 420 MB module); it runs on the torch graph.
# The catalog's starters (sound, ONNX-only vision) are compared on their own inputs in
# tests/zoo/test_catalog_*.py; these feed photos or texts of the original tasks.
WITH_ONNX = [
    name
    for name in starter_names(include_optional=False)
    if name != "mpnet-base" and get_starter(name).task in ORIGINAL_TASKS
]


def test_a_module_without_onnx_loads_on_torch_and_refuses_runtime_onnx(zoo_dir) -> None:
    assert not (zoo_dir / "mpnet-base" / "model.onnx").exists()
    assert hub.load(zoo_dir / "mpnet-base").runtime == "torch"
    with pytest.raises(hub.ManifestError, match="no file for runtime='onnx'"):
        hub.load(zoo_dir / "mpnet-base", runtime="onnx")


@pytest.mark.parametrize("name", WITH_ONNX)
def test_onnx_runtime_equals_torch_runtime(load_starter, zoo_dir, photos: torch.Tensor, name: str) -> None:
    on_torch = load_starter(name)
    on_onnx = hub.load(zoo_dir / name, runtime="onnx")
    inputs = TEXTS if on_torch.modality == "text" else photos.numpy()
    got = on_onnx(inputs)
    expected = on_torch(inputs if on_torch.modality == "text" else photos)
    assert isinstance(got, np.ndarray) and got.shape == tuple(expected.shape)
    assert float(np.abs(got - expected.numpy()).max()) <= 1e-4
    assert on_onnx.labels == on_torch.labels and on_onnx.task == on_torch.task
    assert on_onnx.manifest == on_torch.manifest


def test_default_runtime_of_a_starter_is_onnx(zoo_dir, photos: torch.Tensor) -> None:
    classifier = hub.load(zoo_dir / "mobilenet-v2-classification")
    assert classifier.runtime == "onnx"
    logits = classifier(photos)  # torch in, torch out
    assert isinstance(logits, torch.Tensor)
    top = [classifier.labels[i] for i in logits.argmax(dim=1)]
    assert top[0] in {"tabby", "tiger cat", "Egyptian cat"} and top[1] == "espresso", top
