"""hub.export: what a module directory holds, and what export refuses."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch
import yaml

import modhub as hub
from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from tests.tiny_models import TinyCNN


def test_module_directory_layout(image_module: Path) -> None:
    names = sorted(p.relative_to(image_module).as_posix() for p in image_module.rglob("*") if p.is_file())
    assert names == [
        "README.md",
        "assets/labels.txt",
        "graph.pt2",
        "model.onnx",
        "model.onnx.data",
        "modhub.json",
    ]
    manifest = read_manifest(image_module)
    assert manifest.format_version == 1
    assert manifest.task == "image-classification"
    assert manifest.torch_version == torch.__version__
    assert manifest.license == "Apache-2.0"
    assert manifest.labels == "assets/labels.txt"
    assert manifest.preprocessing.image is not None
    assert (manifest.preprocessing.image.height, manifest.preprocessing.image.width) == (32, 32)
    images = manifest.default_signature.inputs[0]
    assert (images.name, images.dtype, images.shape) == ("images", "float32", ("batch", 3, 32, 32))
    logits = manifest.default_signature.outputs[0]
    assert (logits.name, logits.shape) == ("logits", ("batch", 5))
    # Every file is listed with its true size and sha256.
    listed = {f.path: f for f in manifest.files}
    assert set(listed) == set(names) - {"modhub.json"}
    for path, entry in listed.items():
        assert entry.size == (image_module / path).stat().st_size
        assert entry.sha256 == sha256_file(image_module / path)


def test_model_card_has_front_matter(image_module: Path) -> None:
    text = (image_module / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["task"] == "image-classification"
    assert meta["license"] == "Apache-2.0"
    assert meta["tags"] == ["test"]
    assert "# Tiny CNN" in text and "modhub show" in text


def test_graph_has_no_sample_inputs_and_no_source_paths(image_module: Path) -> None:
    with zipfile.ZipFile(image_module / "graph.pt2") as archive:
        sample = [n for n in archive.namelist() if "sample_inputs" in n]
        assert all(archive.getinfo(n).file_size == 0 for n in sample)
        model_json = next(n for n in archive.namelist() if n.endswith("models/model.json"))
        program = json.loads(archive.read(model_json))
    text = json.dumps(program)
    assert "stack_trace" not in text or '"stack_trace": null' in text
    assert str(Path(__file__).parent) not in text
    assert program["guards_code"] == []


def test_export_is_reproducible(tiny_cnn: TinyCNN, tmp_path: Path) -> None:
    example = torch.rand(2, 3, 32, 32)
    digests = []
    for name in ("a", "b"):
        out = hub.export(
            tiny_cnn, example, tmp_path / name, task="image-feature-vector", license="MIT", name="tiny"
        )
        digests.append({f.path: f.sha256 for f in read_manifest(out).files})
    assert digests[0] == digests[1]


def _export(tmp_path: Path, model: torch.nn.Module, **kwargs: object) -> Path:
    defaults: dict[str, object] = {"task": "image-feature-vector", "license": "MIT"}
    defaults.update(kwargs)
    return hub.export(model, torch.rand(2, 3, 16, 16), tmp_path / "out", **defaults)  # type: ignore[arg-type]


class ThreeD(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(1)


class TwoOutputs(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = images.flatten(1)
        return flat, flat


class DataDependent(torch.nn.Module):
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.sum() > 0:  # Python control flow on values: not exportable
            return images.flatten(1)
        return -images.flatten(1)


@pytest.mark.parametrize(
    ("model", "kwargs", "error", "message"),
    [
        (TinyCNN(), {"task": "no-such-task"}, hub.ContractError, "unknown task"),
        (TinyCNN(), {"task": "image-classification"}, hub.ContractError, "labels file is required"),
        (TinyCNN(), {"task": "image-classification", "labels": ["a", "b"]}, hub.ContractError, "2 labels"),
        (ThreeD(), {}, hub.ExportError, "[batch, size]"),
        (TwoOutputs(), {}, hub.ExportError, "one tensor"),
        (DataDependent(), {}, hub.ExportError, "could not trace"),
        (TinyCNN(), {"task": "text-embedding"}, hub.ExportError, "tokenizer="),
        (TinyCNN(), {"assets": {"../escape.txt": b"x"}}, hub.ExportError, "unsafe file path"),
    ],
    ids=[
        "unknown-task",
        "no-labels",
        "label-count",
        "3d-output",
        "two-outputs",
        "data-dependent",
        "text-without-tokenizer",
        "asset-path-traversal",
    ],
)
def test_export_refuses_with_a_clear_error(
    tmp_path: Path, model: torch.nn.Module, kwargs: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=None) as info:
        _export(tmp_path, model.eval(), **kwargs)
    assert message in str(info.value)
    # Nothing half-written: no output, no staging directory left behind.
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_wrong_example_inputs(tmp_path: Path) -> None:
    with pytest.raises(hub.ExportError, match=r"\[batch, 3, H, W\]"):
        hub.export(
            TinyCNN().eval(),
            torch.rand(2, 1, 8, 8),
            tmp_path / "m",
            task="image-feature-vector",
            license="MIT",
        )
    with pytest.raises(hub.ExportError, match="float32"):
        hub.export(
            TinyCNN().eval(),
            torch.zeros(2, 3, 8, 8, dtype=torch.float64),
            tmp_path / "m",
            task="image-feature-vector",
            license="MIT",
        )


def test_export_does_not_overwrite(image_module: Path, tiny_cnn: TinyCNN) -> None:
    before = (image_module / "modhub.json").read_bytes()
    with pytest.raises(hub.ExportError, match="overwrite=True"):
        hub.export(
            tiny_cnn, torch.rand(2, 3, 32, 32), image_module, task="image-feature-vector", license="MIT"
        )
    assert (image_module / "modhub.json").read_bytes() == before


def test_batch_of_one_example_still_gives_dynamic_batch(tiny_cnn: TinyCNN, tmp_path: Path) -> None:
    out = hub.export(
        tiny_cnn, torch.rand(1, 3, 32, 32), tmp_path / "m", task="image-feature-vector", license="MIT"
    )
    module = hub.load(out)
    assert module(torch.rand(3, 3, 32, 32)).shape == (3, 5)
