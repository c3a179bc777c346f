"""``modhub predict`` per task (issue 25): boxes with label names, keypoints on the photo,
masks and images as PNG files beside the Parquet, per-frame audio outputs with their times,
a batch fixed to 1, a second input given once (``--input``), and ``--draw`` through the CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from PIL import Image
from torch import nn

import modhub as hub
from modhub.errors import InputError
from modhub.format.tasks import COCO_KEYPOINTS
from modhub.predict import predict
from tests.tiny_models import ARCHITECTURES, TinyPose


class _Mask(nn.Module):
    """A person mask [B, 1, H, W]: 1 on the left half of the frame, 0 on the right."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        width = images.shape[3]
        left = (torch.arange(width) < width // 2).to(images.dtype)
        return (images[:, :1] * 0 + left).clamp(0, 1)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    def make(name: str, model: nn.Module, example: object, **options: object) -> Path:
        torch.manual_seed(0)
        where = tmp_path_factory.mktemp(name)
        return hub.export(model, example, where / name, license="MIT", onnx=True, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(folder / "wide.png")
    Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / "tall.jpg")
    return folder


def _arch(name: str, export: Callable[..., Path]) -> Path:
    arch = ARCHITECTURES[name]()
    return export(name, arch.model, arch.example_inputs, **arch.options)


def test_detection_rows_name_their_classes(export: Callable[..., Path], photos: Path, tmp_path: Path) -> None:
    module = _arch("detector", export)
    predict(module, photos, tmp_path / "d.parquet", progress=False)
    table = pq.read_table(tmp_path / "d.parquet")
    assert table.column_names == [
        "key",
        "detection_boxes",
        "detection_scores",
        "detection_classes",
        "detection_labels",
    ]
    row = table.to_pylist()[0]
    assert np.asarray(row["detection_boxes"]).shape == (6, 4), "one row per photo: no batch dimension"
    names = ["cat", "dog", "car", "tree"]
    assert row["detection_labels"] == [names[c] for c in row["detection_classes"]]


def test_keypoints_are_named_and_on_the_photo_with_a_batch_fixed_to_one(
    export: Callable[..., Path], photos: Path, tmp_path: Path
) -> None:
    # A batch of exactly 1 (MoveNet's [1, H, W, 3]): predict feeds one photo per call.
    module = export(
        "pose1",
        TinyPose().eval(),
        torch.rand(1, 8, 8, 3),
        task="image-pose-detection",
        batch=False,
        output_names=["keypoints"],
        meaning={
            "image": {"kind": "image", "layout": "NHWC", "value_range": (0.0, 1.0)},
            "keypoints": {"kind": "keypoints", "keypoints": COCO_KEYPOINTS},
        },
    )
    assert hub.load(module).manifest.default_signature.inputs[0].shape[0] == 1
    predict(module, photos, tmp_path / "k.parquet", progress=False)
    rows = {row["key"]: row for row in pq.read_table(tmp_path / "k.parquet").to_pylist()}
    assert set(rows) == {"wide.png", "tall.jpg"}
    points = rows["wide.png"]["keypoints"]
    assert [p["name"] for p in points] == list(COCO_KEYPOINTS)
    with Image.open(photos / "wide.png") as photo:
        raw = hub.load(module)(photo)[0, 0]
    # y, x in pixels of the 60 x 40 photo (the module squashes it to 8 x 8... by "crop" policy
    # when it records none: the centre 40 x 40); compare with the raw fractions mapped back.
    from modhub.predict.draw import from_model_frame

    want = from_model_frame(raw[:, :2], (60, 40), (8, 8), "crop")
    got = np.array([[p["y"], p["x"]] for p in points])
    np.testing.assert_allclose(got, want, atol=1e-3)
    np.testing.assert_allclose([p["score"] for p in points], raw[:, 2], atol=1e-6)


def test_masks_are_png_files_beside_the_parquet(
    export: Callable[..., Path], photos: Path, tmp_path: Path
) -> None:
    module = export(
        "mask",
        _Mask().eval(),
        torch.rand(2, 3, 16, 16),
        task="image-segmentation",
        output_names=["mask"],
        meaning={
            "images": {"kind": "image", "layout": "NCHW", "value_range": (0.0, 1.0)},
            "mask": {"kind": "mask", "value_range": (0.0, 1.0)},
        },
    )
    out = tmp_path / "sub" / "m.parquet"
    predict(module, photos, out, progress=False)
    rows = {row["key"]: row["mask"] for row in pq.read_table(out).to_pylist()}
    assert rows["wide.png"] == "m.parquet.mask/wide.png"
    with Image.open(out.parent / rows["wide.png"]) as png:
        mask = np.asarray(png)
    assert mask.shape == (40, 60), "at the photo's size"
    # No preprocessing recorded: the "crop" policy fed the centre 40 x 40 (x 10-50) to the model,
    # whose left half is the person; outside that square the model saw nothing.
    assert mask[:, 12:28].min() > 200 and mask[:, 32:48].max() < 50
    assert mask[:, :8].max() == 0 and mask[:, 52:].max() == 0
    assert (out.parent / rows["tall.jpg"]).is_file()


def test_a_second_input_given_once_and_images_out_as_png(
    export: Callable[..., Path], photos: Path, tmp_path: Path
) -> None:
    module = _arch("style-transfer", export)
    style = tmp_path / "style.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(style)
    with pytest.raises(InputError, match="--input style=FILE"):
        predict(module, photos, tmp_path / "s.parquet", progress=False)
    predict(module, photos, tmp_path / "s.parquet", progress=False, extra_inputs={"style": str(style)})
    rows = {row["key"]: row["stylized_image"] for row in pq.read_table(tmp_path / "s.parquet").to_pylist()}
    with Image.open(tmp_path / rows["tall.jpg"]) as picture:
        assert picture.size == (20, 30), "the content's own size (dynamic height and width)"


def test_per_frame_audio_outputs_carry_their_frame_times(export: Callable[..., Path], tmp_path: Path) -> None:
    module = _arch("audio-classifier", export)
    folder = tmp_path / "sounds"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(folder / "a.wav", (rng.random(320) - 0.5).astype(np.float32), 16000)
    sf.write(folder / "b.wav", (rng.random(160) - 0.5).astype(np.float32), 16000)
    predict(module, folder, tmp_path / "a.parquet", progress=False)
    rows = {row["key"]: row for row in pq.read_table(tmp_path / "a.parquet").to_pylist()}
    assert np.asarray(rows["a.wav"]["scores"]).shape == (10, 5)
    assert rows["b.wav"]["frame_times"] == pytest.approx([i * 0.002 for i in range(5)])


def test_cli_draws_keypoints_and_stylised_images(
    export: Callable[..., Path], photos: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from modhub.cli import app

    pose = _arch("pose", export)
    result = CliRunner().invoke(
        app,
        ["predict", str(pose), str(photos), "-o", str(tmp_path / "p.parquet"), "--draw", str(tmp_path / "d")],
    )
    assert result.exit_code == 0, result.output
    assert "drew 2 picture(s)" in result.stdout
    with Image.open(tmp_path / "d" / "wide.png") as drawn:
        assert drawn.size == (60, 40), "drawn on the photo itself"

    style = tmp_path / "style.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(style)
    module = _arch("style-transfer", export)
    args = [
        "predict",
        str(module),
        str(photos),
        "-o",
        str(tmp_path / "s.parquet"),
        "--draw",
        str(tmp_path / "s"),
    ]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code != 0 and "--input style=" in refused.output
    result = CliRunner().invoke(app, [*args, "--input", f"style={style}"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "s" / "tall.png") as side:
        assert side.width > side.height, "content, style and result side by side"
