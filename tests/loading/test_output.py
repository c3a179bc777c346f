"""``hub.load(..., output=)``: what a call returns, whatever runtime runs the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.errors import InputError


@pytest.mark.parametrize(
    ("runtime", "output", "returns"),
    [
        (None, "numpy", np.ndarray),
        (None, "torch", torch.Tensor),
        ("onnx", "torch", torch.Tensor),
        ("torch", "numpy", np.ndarray),
        ("onnx", None, np.ndarray),
        ("torch", None, torch.Tensor),
    ],
)
def test_output_fixes_what_calls_return(
    image_module: Path, runtime: str | None, output: str | None, returns: type
) -> None:
    module = hub.load(image_module, runtime=runtime, output=output)
    for images in (torch.rand(2, 3, 32, 32), np.random.rand(2, 3, 32, 32).astype(np.float32)):
        assert isinstance(module(images), returns)


def test_default_output_follows_the_input(image_module: Path) -> None:
    module = hub.load(image_module)
    assert isinstance(module(torch.rand(1, 3, 32, 32)), torch.Tensor)
    assert isinstance(module(np.random.rand(1, 3, 32, 32).astype(np.float32)), np.ndarray)


def test_unknown_output_is_refused_before_anything_is_resolved(tmp_path: Path) -> None:
    # No hub and no directory: the output is checked first.
    with pytest.raises(InputError, match=r"unknown output 'arrow'.*numpy"):
        hub.load("acme/nowhere/1", output="arrow")
    with pytest.raises(InputError, match="unknown output"):
        hub.load(tmp_path / "missing", output="list")
