"""Every starter module carries model.onnx, and onnxruntime reproduces the torch graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modhub.runtimes.preprocessing import TextEncoder
from modhub.zoo import get_starter, starter_names
from tests.zoo.conftest import ORIGINAL_TASKS

# Needs the real starter modules: built once (minutes), then reused from the zoo cache.
pytestmark = pytest.mark.slow

TEXTS = [
    "The cat sat on the mat.",
    "Stock markets fell sharply.",
    "xqzzyqq",
    "A man is eating food at a small table.",
]


# mpnet-base carries no model.onnx (starter.onnx is False).
@pytest.mark.parametrize(
    "name",
    [
        n
        for n in starter_names(include_optional=False)
        # the starters of the original tasks (photos or texts in); the catalog's are compared on
        # their own inputs in tests/zoo/test_catalog_*.py
        if getattr(get_starter(n), "onnx", True) and get_starter(n).task in ORIGINAL_TASKS
    ],
)
def test_onnx_matches_torch(load_starter, photos: torch.Tensor, name: str) -> None:
    import onnxruntime

    module = load_starter(name)
    onnx_file = module.path / "model.onnx"
    assert onnx_file.is_file()
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    tok = module.manifest.preprocessing.tokenizer
    if tok is None:
        inputs: tuple[torch.Tensor, ...] = (photos,)
        expected = module(photos)
    else:
        inputs = TextEncoder(tok, module.path / tok.file)(TEXTS)
        expected = module(TEXTS)
    feeds = {spec.name: tensor.numpy() for spec, tensor in zip(session.get_inputs(), inputs, strict=True)}
    got = session.run(None, feeds)[0]
    assert got.shape == tuple(expected.shape)
    assert float(np.abs(got - expected.numpy()).max()) <= 1e-4
