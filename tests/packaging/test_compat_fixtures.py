"""Across torch releases (issue 28): modules exported by other torch releases (2.9.1, the oldest
the torch extra allows, and 2.14.1, the newest) load, run and train under this repository's torch
with the exporter's own numbers. The fixtures are made by scripts/make_compat_fixtures.py (its
docstring says how); each ``<name>.npz`` holds the exporter's inputs, eval outputs and outputs
after one SGD step (lr=STEP_LR, loss mean(outputs**2))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.format.manifest import read_manifest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "compat"
# As scripts/make_compat_fixtures.py.
STEP_LR = 0.1
# Releases whose fixtures must be here: the ends of the torch extra's range (pyproject.toml).
RELEASES = ("2.9.1", "2.14.1")
CASES = [(release, name) for release in RELEASES for name in ("cnn", "text", "lstm")]


def _fixture(release: str, name: str) -> tuple[Path, dict[str, np.ndarray]]:
    module = FIXTURES / f"torch-{release}" / name
    with np.load(FIXTURES / f"torch-{release}" / f"{name}.npz", allow_pickle=False) as data:
        expected = {key: data[key] for key in data.files}
    return module, expected


def _inputs(expected: dict[str, np.ndarray]) -> object:
    inputs = expected["inputs"]
    return [str(text) for text in inputs] if inputs.dtype.kind == "U" else inputs


@pytest.mark.parametrize(("release", "name"), CASES)
def test_fixture_was_exported_by_its_release(release: str, name: str) -> None:
    module, _ = _fixture(release, name)
    manifest = read_manifest(module)
    assert manifest.torch_version.split("+")[0] == release
    assert sum(entry.size for entry in manifest.files) < 64_000  # a few tens of KB: a fixture


@pytest.mark.parametrize(("release", "name"), CASES)
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_loads_with_the_exporters_outputs(release: str, name: str, runtime: str) -> None:
    module, expected = _fixture(release, name)
    outputs = hub.load(str(module), runtime=runtime, output="numpy")(_inputs(expected))
    np.testing.assert_allclose(outputs, expected["outputs"], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("release", "name"), CASES)
def test_trains_like_the_exporter(release: str, name: str) -> None:
    module, expected = _fixture(release, name)
    inputs = _inputs(expected)
    layer = hub.Layer(str(module), trainable=True).eval()  # gradients, BatchNorm in inference mode
    optimizer = torch.optim.SGD(layer.parameters(), lr=STEP_LR)
    first = layer(inputs if isinstance(inputs, list) else torch.from_numpy(inputs))
    np.testing.assert_allclose(first.detach().numpy(), expected["outputs"], rtol=0, atol=1e-5)
    first.pow(2).mean().backward()
    optimizer.step()
    with torch.no_grad():
        stepped = layer(inputs if isinstance(inputs, list) else torch.from_numpy(inputs))
    np.testing.assert_allclose(stepped.numpy(), expected["stepped"], rtol=0, atol=1e-5)
    assert not np.allclose(expected["stepped"], expected["outputs"])  # the step changed something
