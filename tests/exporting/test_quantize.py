"""int8 variants (``modhub quantize``) made from tiny modules: dynamic, static, the floor, the CLI."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from modhub.cli import app
from modhub.errors import ExportError, ManifestError
from modhub.exporting.quantize import Calibration, Recipe, quantize_module
from modhub.format.manifest import ONNX_NAME, read_manifest
from modhub.format.verify import verify_module
from modhub.settings import Settings
from tests.tiny_models import TEXTS


def _copy(module: Path, tmp_path: Path) -> Path:
    target = tmp_path / module.name
    shutil.copytree(module, target)
    return target


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _photos(folder: Path, count: int = 12) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = rng.integers(0, 256, size=(40 + i, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder


def _load_int8(module: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The variant as users load it: verified, on onnxruntime."""
    import modhub as hub

    return hub.load(module, precision="int8", settings=Settings(cache=tmp_path / "cache"))


@pytest.fixture(scope="module")
def text_onnx(tiny_text_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from tests.conftest import export_tiny_text

    return export_tiny_text(tiny_text_encoder, tmp_path_factory, "tiny-text-onnx", onnx=True)


def test_dynamic_variant_of_a_text_encoder(text_onnx: Path, tmp_path: Path) -> None:
    module = _copy(text_onnx, tmp_path)
    result = quantize_module(module, calibration=list(TEXTS) * 2, floor=0.5)
    manifest = read_manifest(module)
    variant = manifest.variant("int8")
    assert variant.method == "dynamic" and result.variant == variant
    assert variant.agreement.metric == "cosine" and variant.agreement.samples == len(TEXTS) * 2
    assert variant.agreement.minimum is not None and variant.agreement.mean >= 0.5
    assert "onnxruntime.quantization" in variant.recipe["tool"]
    assert "int8/model.onnx" in manifest.variant_files("int8")
    assert "Reduced-precision variants" in (module / "README.md").read_text(encoding="utf-8")
    # The variant verifies (allow-list, digests) and runs; the exact graph is still the default.
    int8 = _load_int8(module, tmp_path)
    assert int8.precision == "int8" and int8(list(TEXTS[:2])).shape == (2, 16)
    assert verify_module(module, needed={ONNX_NAME}).manifest.variants is not None


def test_static_variant_of_a_cnn_with_photos(image_module: Path, tmp_path: Path) -> None:
    module = _copy(image_module, tmp_path)
    photos = sorted(_photos(tmp_path / "photos").glob("*.png"))
    quantize_module(module, calibration=Calibration(photos, "12 noise photos"), floor=0.5)
    variant = read_manifest(module).variant("int8")
    assert variant.method == "static" and variant.recipe["format"] == "QDQ"
    assert variant.agreement.metric == "top1"
    # A quarter held out to probe, never calibrated on.
    assert variant.agreement.samples == 3 and "held-out" in variant.agreement.probe
    logits = _load_int8(module, tmp_path)(photos[:2])
    assert logits.shape == (2, 5)
    # Quantizing again replaces the variant (one card section, one set of files).
    quantize_module(module, calibration=photos, method="static", floor=0.5)
    assert (module / "README.md").read_text(encoding="utf-8").count("Reduced-precision variants") == 1


def test_below_the_floor_nothing_is_written(text_onnx: Path, tmp_path: Path) -> None:
    module = _copy(text_onnx, tmp_path)
    before = _snapshot(module)
    # int8 weights never give a cosine of exactly 1 on every sentence.
    with pytest.raises(ExportError, match=r"misses its floor: mean cosine 0\.\d+ \(minimum .*< floor 1\.0"):
        quantize_module(module, floor=1.0)
    assert _snapshot(module) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_static_needs_data_and_a_module_needs_model_onnx(
    image_module: Path, text_module: Path, tmp_path: Path
) -> None:
    module = _copy(image_module, tmp_path)
    with pytest.raises(ManifestError, match="--calibration"):
        quantize_module(module, method="static")
    with pytest.raises(ManifestError, match=r"no model\.onnx.*onnx=True"):
        quantize_module(_copy(text_module, tmp_path / "t"), method="dynamic")


def test_cli_quantize_with_a_photo_folder(image_module: Path, tmp_path: Path) -> None:
    module = _copy(image_module, tmp_path)
    folder = _photos(tmp_path / "photos")
    result = CliRunner().invoke(
        app, ["quantize", str(module), "--calibration", str(folder), "--floor", "0.5", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "top-1 agreement" in result.output and "held-out" in result.output
    assert read_manifest(module).variant("int8").agreement.samples == 3


class _OutlierChannel(torch.nn.Module):
    """The tiny text encoder, widened to 64 channels of which one runs 300x larger than the rest
    (as transformers' activations do) and projected back: per-tensor int8 activations crush the
    63 ordinary channels of the last product's input unless smoothing moves the outlier into
    its weight."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.base = base
        self.up = torch.nn.Linear(16, 64)
        self.down = torch.nn.Linear(64, 16)
        with torch.no_grad():
            self.up.weight[7] *= 300.0
            self.up.bias[7] *= 300.0
            self.down.weight[:, 7] /= 300.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(self.base(input_ids, attention_mask))))


@pytest.fixture(scope="module")
def outlier_module(tiny_text_encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from tests.tiny_models import make_module

    out = tmp_path_factory.mktemp("outlier") / "outlier-text"
    return make_module("text-embedding", out, model=_OutlierChannel(tiny_text_encoder).eval(), onnx=True)


def test_smoothing_moves_activation_outliers_into_the_weights(outlier_module: Path, tmp_path: Path) -> None:
    import onnx

    sentences = [
        f"{a} {b} {c}"
        for a in TEXTS[:4]
        for b in ("cat", "dog red", "the blue house")
        for c in ("", "ran fast")
    ]
    plain = _copy(outlier_module, tmp_path / "plain")
    smoothed = _copy(outlier_module, tmp_path / "smoothed")
    recipe = Recipe(method="dynamic", op_types=("MatMul", "Gemm"))
    without = quantize_module(plain, calibration=sentences, recipe=recipe, floor=-1.0).variant
    with_smoothing = quantize_module(
        smoothed, calibration=sentences, recipe=dataclasses.replace(recipe, smooth=0.5), floor=-1.0
    ).variant
    # Fitted on three quarters of the sentences, measured on the rest.
    assert 0 < with_smoothing.agreement.samples < len(sentences)
    assert "held-out" in with_smoothing.agreement.probe
    assert with_smoothing.recipe["smooth"]["alpha"] == 0.5 and "smooth" not in without.recipe
    assert with_smoothing.agreement.mean > 0.99 > without.agreement.mean
    graph = onnx.load(str(smoothed / "int8" / ONNX_NAME), load_external_data=False)
    assert any(n.op_type == "Mul" and n.name.startswith("smooth_") for n in graph.graph.node)
    verify_module(smoothed, needed={"int8/model.onnx"})


def test_smoothing_needs_data_and_an_alpha_between_0_and_1(outlier_module: Path, tmp_path: Path) -> None:
    module = _copy(outlier_module, tmp_path)
    before = _snapshot(module)
    with pytest.raises(ManifestError, match=r"--calibration.*drop --smooth"):
        quantize_module(module, recipe=Recipe(method="dynamic", smooth=0.5))
    with pytest.raises(ManifestError, match="between 0 and 1"):
        quantize_module(module, calibration=list(TEXTS), recipe=Recipe(method="dynamic", smooth=1.5))
    assert _snapshot(module) == before


def test_cli_recipe_options(outlier_module: Path, tmp_path: Path) -> None:
    import onnx

    module = _copy(outlier_module, tmp_path)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"{t} {w}" for t in TEXTS for w in ("cat", "dog red", "the house")) + "\n")
    weights = {i.name for i in onnx.load(str(module / ONNX_NAME), load_external_data=False).graph.initializer}
    assert "model.down.weight" in weights
    down = "*down.weight"
    args = ["quantize", str(module), "--calibration", str(texts), "--method", "dynamic", "--quiet"]
    args += ["--smooth", "0.5", "--reduce-range", "--keep-float", down, "--float16-kept", "--floor", "-1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    recipe = read_manifest(module).variant("int8").recipe
    assert recipe["smooth"]["alpha"] == 0.5 and recipe["reduce_range"] is True
    assert recipe["kept_float"] and all(not n.startswith("smooth_") for n in recipe["kept_float"])
    assert recipe["kept_float_weights"].startswith("float16")
    bad = CliRunner().invoke(app, [*args[:2], "--smooth", "0.5", "--quiet"])
    assert bad.exit_code != 0 and "--calibration" in bad.output


def test_weights_kept_in_float_can_be_stored_as_float16(outlier_module: Path, tmp_path: Path) -> None:
    import onnx

    sizes, outputs = {}, {}
    for dtype in ("float32", "float16"):
        module = _copy(outlier_module, tmp_path / dtype)
        recipe = Recipe(
            method="dynamic", op_types=("MatMul", "Gemm"), exclude=("*up.weight",), float_weights=dtype
        )
        result = quantize_module(module, calibration=list(TEXTS), recipe=recipe, floor=-1.0)
        sizes[dtype] = result.variant_bytes
        graph = onnx.load(str(module / "int8" / ONNX_NAME))
        # (onnxruntime turns every Gemm into MatMul + Add, its weight into "<name>_Transposed".)
        [kept] = [i.data_type for i in graph.graph.initializer if i.name.startswith("model.up.weight")]
        casts = [
            n for n in graph.graph.node if n.op_type == "Cast" and n.output[0].startswith("model.up.weight")
        ]
        if dtype == "float16":
            assert kept == onnx.TensorProto.FLOAT16 and len(casts) == 1
            assert result.variant.recipe["kept_float_weights"].startswith("float16")
        else:
            assert kept == onnx.TensorProto.FLOAT and not casts
        outputs[dtype] = np.asarray(_load_int8(module, tmp_path / dtype)(list(TEXTS)))
    # up.weight is 64 x 16 float32 (4 KiB): half of it saved, the rest unchanged.
    assert sizes["float32"] - sizes["float16"] >= 64 * 16 * 2 - 256
    assert np.abs(outputs["float16"] - outputs["float32"]).max() < 0.02


def test_recipe_options_that_would_do_nothing_are_refused(outlier_module: Path, tmp_path: Path) -> None:
    module = _copy(outlier_module, tmp_path)
    before = _snapshot(module)
    # A --keep-float pattern that matches no node is a typo, not a recipe.
    with pytest.raises(ManifestError, match=r"\['\*no\.such\.weight'\] match no node"):
        quantize_module(module, recipe=Recipe(exclude=("*up.weight", "*no.such.weight")), floor=-1.0)
    with pytest.raises(ManifestError, match=r"--float16-kept.*--keep-float"):
        quantize_module(module, recipe=Recipe(float_weights="float16"), floor=-1.0)
    assert _snapshot(module) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
