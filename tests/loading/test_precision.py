"""``precision="int8"``: a module's int8 variant, run on onnxruntime when asked for (issue 26).

The variant is made here from the tiny module's own ``model.onnx`` with onnxruntime's
dynamic quantization, and listed in the manifest by :func:`add_int8_variant`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import modhub as hub
from modhub.errors import InputError, IntegrityError, ManifestError
from modhub.format.digests import sha256_file
from modhub.format.manifest import FileEntry, Manifest, read_manifest, write_manifest
from modhub.settings import Settings
from tests.tiny_models import TEXTS


def add_int8_variant(module_dir: Path) -> Path:
    """Add ``int8/model.onnx`` (dynamic quantization of the module's model.onnx) and its manifest entry."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = module_dir / "int8"
    folder.mkdir()
    quantize_dynamic(module_dir / "model.onnx", folder / "model.onnx", weight_type=QuantType.QInt8)
    manifest = read_manifest(module_dir)
    entries = [e for e in manifest.files if not e.path.startswith("int8/")]
    for path in sorted(folder.iterdir()):
        rel = f"int8/{path.name}"
        entries.append(FileEntry(path=rel, size=path.stat().st_size, sha256=sha256_file(path)))
    agreement = {
        "metric": "cosine",
        "mean": 0.999,
        "minimum": 0.998,
        "max_abs_diff": 0.01,
        "floor": 0.99,
        "samples": 3,
        "probe": "3 probe inputs",
    }
    data = manifest.model_dump(mode="json")
    data["files"] = [e.model_dump() for e in sorted(entries, key=lambda e: e.path)]
    data["variants"] = {"int8": {"path": "int8", "method": "dynamic", "agreement": agreement}}
    write_manifest(module_dir, Manifest.model_validate(data))
    return module_dir


def copy_module(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


@pytest.fixture(scope="module")
def image_int8(image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return add_int8_variant(copy_module(image_module, tmp_path_factory.mktemp("int8") / "cnn"))


@pytest.fixture(scope="module")
def text_int8(tiny_text_encoder: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import export_tiny_text

    return add_int8_variant(export_tiny_text(tiny_text_encoder, tmp_path_factory, "text-int8", onnx=True))


def _settings(tmp_path: Path) -> Settings:
    return Settings(cache=tmp_path / "cache")


def test_int8_close_to_exact(image_int8: Path, tmp_path: Path) -> None:
    images = np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32)
    exact = hub.load(image_int8, runtime="onnx", settings=_settings(tmp_path))
    int8 = hub.load(image_int8, precision="int8", settings=_settings(tmp_path))
    assert int8.runtime == "onnx" and int8.precision == "int8"
    a, b = exact(images), int8(images)
    assert a.shape == b.shape
    assert not np.array_equal(a, b)  # the int8 graph ran, not the exact one
    np.testing.assert_allclose(b, a, atol=0.1)


def test_int8_text(text_int8: Path, tmp_path: Path) -> None:
    exact = hub.load(text_int8, runtime="onnx", settings=_settings(tmp_path))(TEXTS)
    int8 = hub.load(text_int8, precision="int8", settings=_settings(tmp_path))(TEXTS)
    cos = (exact * int8).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(int8, axis=1)
    assert cos.min() > 0.95  # tiny random weights: a rough bound


def test_without_precision_nothing_changes(image_int8: Path, tmp_path: Path) -> None:
    module = hub.load(image_int8, settings=_settings(tmp_path))
    assert module.runtime == "onnx" and module.precision is None


def test_torch_runtime_with_precision_refused(image_int8: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="ONNX graph"):
        hub.load(image_int8, runtime="torch", precision="int8", settings=_settings(tmp_path))
    with pytest.raises(InputError, match="unknown precision"):
        hub.load(image_int8, precision="fp4", settings=_settings(tmp_path))


def test_module_without_variant_says_what_to_do(image_module: Path, tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="modhub quantize"):
        hub.load(image_module, precision="int8", settings=_settings(tmp_path))


def test_layer_int8_is_frozen_and_close(image_int8: Path, tmp_path: Path) -> None:
    images = torch.rand(2, 3, 32, 32)
    layer = hub.Layer(image_int8, precision="int8", settings=_settings(tmp_path))
    exact = hub.Layer(image_int8, settings=_settings(tmp_path))
    out = layer(images)
    assert isinstance(out, torch.Tensor) and not out.requires_grad
    torch.testing.assert_close(out, exact(images).detach(), atol=0.1, rtol=0.1)
    assert "precision='int8'" in repr(layer)
    with pytest.raises(InputError, match="cannot be trained"):
        hub.Layer(image_int8, trainable=True, precision="int8", settings=_settings(tmp_path))


def _relist(module_dir: Path, edit: dict[str, object]) -> None:
    """Rewrite int8/model.onnx's entry in modhub.json with ``edit`` (a lie about the file)."""
    manifest = read_manifest(module_dir)
    data = manifest.model_dump(mode="json")
    for entry in data["files"]:
        if entry["path"] == "int8/model.onnx":
            entry.update(edit)
    write_manifest(module_dir, Manifest.model_validate(data))


@pytest.mark.parametrize("lie", ["sha256", "size", "missing", "stray on disk", "stray listed"])
def test_lying_variant_entry_refused(image_int8: Path, tmp_path: Path, lie: str) -> None:
    module_dir = copy_module(image_int8, tmp_path / "m")
    graph = module_dir / "int8" / "model.onnx"
    error: type[Exception] = IntegrityError
    if lie == "sha256":
        _relist(module_dir, {"sha256": "0" * 64})
    elif lie == "size":
        _relist(module_dir, {"size": graph.stat().st_size + 1})
    elif lie == "missing":
        graph.unlink()
    elif lie == "stray on disk":
        (module_dir / "int8" / "extra.onnx").write_bytes(b"x")
    else:
        (module_dir / "int8" / "extra.bin").write_bytes(b"x")
        data = read_manifest(module_dir).model_dump(mode="json")
        data["files"].append(
            {"path": "int8/extra.bin", "size": 1, "sha256": sha256_file(module_dir / "int8/extra.bin")}
        )
        data["files"].sort(key=lambda e: e["path"])
        with pytest.raises(ValueError, match="none of its graphs"):
            Manifest.model_validate(data)
        return
    with pytest.raises(error):
        hub.load(module_dir, precision="int8", settings=_settings(tmp_path))
    # The whole-module check (publish, `modhub cache verify`) refuses it too.
    from modhub.format.verify import check_module

    with pytest.raises(error):
        check_module(module_dir)


def test_variant_graph_is_checked_by_the_allow_list(image_int8: Path, tmp_path: Path) -> None:
    """An operator outside the ONNX allow-list in the variant graph is refused as in model.onnx."""
    import onnx
    from onnx import helper

    from modhub.errors import UnsafeModuleError

    module_dir = copy_module(image_int8, tmp_path / "m")
    graph_path = module_dir / "int8" / "model.onnx"
    model = onnx.load(graph_path)
    model.graph.node.append(helper.make_node("RandomNormal", [], ["noise"], shape=[1]))
    onnx.save(model, graph_path)
    data = read_manifest(module_dir).model_dump(mode="json")
    for entry in data["files"]:
        if entry["path"] == "int8/model.onnx":
            entry.update(size=graph_path.stat().st_size, sha256=sha256_file(graph_path))
    write_manifest(module_dir, Manifest.model_validate(data))
    with pytest.raises(UnsafeModuleError, match="RandomNormal"):
        hub.load(module_dir, precision="int8", settings=_settings(tmp_path))


def test_show_lists_variants(image_int8: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    result = CliRunner().invoke(app, ["show", str(image_int8)])
    assert result.exit_code == 0, result.output
    assert "variants" in result.stdout
    assert "int8: dynamic quantization" in result.stdout
    assert "cosine to the exact graph: mean 0.9990, minimum 0.9980 over 3 samples (3 probe inputs)" in (
        result.stdout
    )


def test_module_page_lists_variants(image_int8: Path) -> None:
    from modhub.format.describe import describe_variants

    (variant,) = describe_variants(read_manifest(image_int8))
    assert variant.precision == "int8" and variant.size == (image_int8 / "int8" / "model.onnx").stat().st_size


def test_predict_precision(image_int8: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from PIL import Image
    from typer.testing import CliRunner

    from modhub.cli import app

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(photos / f"{i}.png")
    env = {"MODHUB_CACHE": str(tmp_path / "cache")}
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(image_int8),
            str(photos),
            "-o",
            str(tmp_path / "out.parquet"),
            "--precision",
            "int8",
            "-q",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 3
    bad = CliRunner().invoke(
        app,
        ["predict", str(image_int8), str(photos), "-o", str(tmp_path / "b.parquet"), "--precision", "int4"],
        env=env,
    )
    assert bad.exit_code != 0 and "unknown precision" in bad.output


def test_retrain_images_on_int8_features(tmp_path: Path) -> None:
    from modhub.retrain import retrain_images
    from tests.retrain.conftest import write_photos
    from tests.tiny_models import make_module

    base = add_int8_variant(
        make_module("image-feature-vector", tmp_path / "base", seed=1, classes=8, onnx=True)
    )
    photos = write_photos(tmp_path / "photos", per_class=4)
    settings = _settings(tmp_path)
    result = retrain_images(
        photos, base, tmp_path / "out", precision="int8", settings=settings, progress=False
    )
    assert result.report["config"]["precision"] == "int8"
    assert result.report["timings"]["runtime"] == "onnx-int8"
    made = read_manifest(tmp_path / "out")
    assert made.metadata.extra["features_precision"] == "int8"
    assert "exact base graph" in (tmp_path / "out" / "README.md").read_text()
    assert made.variants is None  # the new module's graph is the exact base graph + head
    with pytest.raises(InputError, match="fine-tune"):
        from modhub.retrain import TrainConfig

        retrain_images(
            photos,
            base,
            tmp_path / "out2",
            config=TrainConfig(fine_tune=True),
            precision="int8",
            settings=settings,
        )


def test_retrain_text_cli_precision(text_int8: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app
    from tests.retrain.conftest import write_text_csv

    data = write_text_csv(tmp_path / "data.csv", per_class=6)
    args = ["retrain", "text", str(data), "-m", str(text_int8), "-o", str(tmp_path / "out")]
    args += ["--text-column", "sentence", "--label-column", "topic", "--precision", "int8", "-q"]
    result = CliRunner().invoke(app, args, env={"MODHUB_CACHE": str(tmp_path / "cache")})
    assert result.exit_code == 0, result.output
    made = read_manifest(tmp_path / "out")
    assert made.metadata.extra["features_precision"] == "int8"
