"""Photo inputs: modhub.runtimes.images.prepare_images and image modules that take photos."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import modhub as hub
from modhub.format.manifest import ImagePreprocessing, parse_manifest
from modhub.runtimes.images import fit_photo, prepare_images

SPEC = ImagePreprocessing(height=32, width=32, resize="squash")


def _stripes(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: which half survives shows what a policy did."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2, 0] = 255
    array[:, width // 2 :, 2] = 255
    return Image.fromarray(array)


def test_squash_keeps_the_whole_photo() -> None:
    out = np.asarray(fit_photo(_stripes(200, 50), 20, 20, "squash"))
    assert out.shape == (20, 20, 3)
    assert out[:, :8, 0].min() > 250 and out[:, 12:, 2].min() > 250


def test_crop_cuts_the_edges_and_pad_fills_them() -> None:
    wide = Image.new("RGB", (300, 100), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 50, 100))  # a white strip at the far left edge
    cropped = np.asarray(fit_photo(wide, 30, 30, "crop"))
    assert cropped.max() == 0  # the centre square never sees the strip
    padded = np.asarray(fit_photo(wide, 30, 30, "pad", fill=(1.0, 0.0, 0.0)))
    assert padded.shape == (30, 30, 3)
    assert tuple(padded[0, 15]) == (255, 0, 0)  # top border filled with the given colour
    assert padded[15, 1].min() > 200  # the strip is kept, at the left
    assert padded[15, 20].max() == 0


@pytest.mark.parametrize("policy", ["squash", "crop", "pad"])
@pytest.mark.parametrize("size", [(7, 3), (32, 32), (640, 480), (1, 1)])
def test_every_policy_gives_the_module_size(policy: str, size: tuple[int, int]) -> None:
    spec = ImagePreprocessing(height=24, width=32, resize=policy)  # type: ignore[arg-type]
    batch = prepare_images(_stripes(*size), spec)
    assert batch.shape == (1, 3, 24, 32) and batch.dtype == np.float32
    assert batch.min() >= 0.0 and batch.max() <= 1.0


def test_modes_rgba_on_white_and_greyscale_to_rgb() -> None:
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    half = Image.new("RGBA", (10, 10), (0, 0, 0, 128))
    grey = Image.new("L", (10, 10), 100)
    palette = Image.new("P", (10, 10), 0)
    sixteen = Image.fromarray(np.full((10, 10), 4000, dtype=np.uint16))
    batch = prepare_images([clear, half, grey, palette, sixteen], SPEC)
    assert batch.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(batch[0], 1.0)  # white, not red
    assert 0.45 < batch[1].mean() < 0.55  # half-transparent black over white
    np.testing.assert_allclose(batch[2], 100 / 255, atol=1e-6)
    assert np.allclose(batch[2][0], batch[2][1])  # grey stays grey in all channels
    np.testing.assert_allclose(batch[4], 1.0)  # 16-bit scaled to its own maximum


def test_paths_bytes_arrays_and_pil_give_the_same_batch(tmp_path: Path) -> None:
    photo = _stripes(64, 48)
    path = tmp_path / "photo.png"
    photo.save(path)
    buf = io.BytesIO()
    photo.save(buf, format="PNG")
    array = np.asarray(photo)
    reference = prepare_images(photo, SPEC)
    for value in (path, str(path), buf.getvalue(), array, [photo], array[None], (array,)):
        np.testing.assert_array_equal(prepare_images(value, SPEC), reference)


def test_exif_orientation_is_applied() -> None:
    photo = _stripes(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", exif=exif, quality=95)
    out = np.asarray(fit_photo(Image.open(io.BytesIO(buf.getvalue())), 40, 20, "squash"))
    # Shown upright, the photo is 20 wide and 40 tall with red on top.
    assert out[:10, :, 0].mean() > 200 and out[30:, :, 2].mean() > 200


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "empty list"),
        ("no/such/photo.jpg", "no such file"),
        (b"not an image", "not a readable image"),
        (np.zeros((3, 8, 8), dtype=np.uint8), "channels first"),
        (np.zeros((8, 8, 3), dtype=np.int32), "dtype int32"),
        ([1.5], "is a float"),
        ("https://example.org/cat.jpg", "download it first"),
        (np.zeros((2, 3, 16, 16), dtype=np.float32), "resizes them to 32x32"),
        (np.zeros((2, 3, 32, 32), dtype=np.float64), "float32"),
        (object(), "got object"),
    ],
)
def test_bad_inputs_say_what_to_pass(value: object, message: str) -> None:
    with pytest.raises(hub.InputError, match=message):
        prepare_images(value, SPEC)


def test_module_takes_photos_with_its_policy(image_module: Path, tmp_path: Path) -> None:
    spec = hub.load(image_module).manifest.preprocessing.image
    assert spec is not None and spec.resize == "crop"
    photo = _stripes(90, 30)
    path = tmp_path / "p.png"
    photo.save(path)
    for runtime in ("torch", "onnx"):
        module = hub.load(image_module, runtime=runtime)
        expected = np.asarray(module(prepare_images(photo, spec)))
        for value in (photo, [photo, photo], path, np.asarray(photo)):
            out = np.asarray(module(value))
            np.testing.assert_allclose(out[0], expected[0], atol=1e-5)
    layer = hub.Layer(image_module)
    out = layer([photo])
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out[0].detach().numpy(), expected[0], atol=1e-5)


def test_legacy_resize_sentence_reads_as_crop(image_module: Path) -> None:
    text = (
        (image_module / "modhub.json")
        .read_text()
        .replace('"resize": "crop"', '"resize": "resize shorter side, centre crop"')
    )
    assert "centre crop" in text
    assert parse_manifest(text).preprocessing.image.resize == "crop"  # type: ignore[union-attr]


def test_images_module_imports_no_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from modhub.runtimes.images import prepare_images\n"
        "from modhub.format.manifest import ImagePreprocessing\n"
        "out = prepare_images(np.zeros((5, 7, 3), np.uint8), ImagePreprocessing(height=4, width=4))\n"
        "assert out.shape == (1, 3, 4, 4)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@settings(max_examples=80, deadline=None)
@given(
    size=st.tuples(st.integers(1, 700), st.integers(1, 700)),
    target=st.tuples(st.integers(1, 300), st.integers(1, 300)),
    policy=st.sampled_from(["squash", "crop", "pad"]),
)
def test_any_photo_size_fits_any_module_size(
    size: tuple[int, int], target: tuple[int, int], policy: str
) -> None:
    height, width = target
    out = fit_photo(Image.new("RGB", size, (10, 20, 30)), height, width, policy)
    assert out.size == (width, height) and out.mode == "RGB"
