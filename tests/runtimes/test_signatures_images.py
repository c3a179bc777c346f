"""Photos into any image input: layout, dtype, value range, colour order, fixed or dynamic size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import modhub as hub
from modhub.format.manifest import ImagePreprocessing, TensorSpec
from modhub.runtimes.images import prepare_image_input


def _spec(**fields: object) -> TensorSpec:
    return TensorSpec.model_validate({"name": "image", "kind": "image", **fields})


def _photo(height: int = 6, width: int = 8) -> np.ndarray:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = 255  # red
    pixels[..., 2] = np.arange(width, dtype=np.uint8)[None, :] * 10
    return pixels


def test_float_nchw_in_its_value_range() -> None:
    spec = _spec(dtype="float32", shape=("batch", 3, 6, 8), layout="NCHW", value_range=(-1.0, 1.0))
    out = prepare_image_input(Image.fromarray(_photo()), spec, None)
    assert out.shape == (1, 3, 6, 8) and out.dtype == np.float32
    assert np.allclose(out[0, 0], 1.0) and np.allclose(out[0, 1], -1.0)
    assert np.allclose(out[0, 2, 0], np.arange(8) * 10 / 255 * 2 - 1, atol=1e-6)


def test_bgr_uint8_nhwc_keeps_pixels() -> None:
    spec = _spec(dtype="uint8", shape=("batch", 6, 8, 3), layout="NHWC", value_range=(0, 255), color="BGR")
    out = prepare_image_input([_photo(), _photo()], spec, None)
    assert out.shape == (2, 6, 8, 3) and out.dtype == np.uint8
    assert (out[..., 2] == 255).all() and (out[..., 0] == _photo()[..., 2]).all()


def test_one_image_int32_hwc_and_greyscale() -> None:
    spec = _spec(dtype="int32", shape=(6, 8, 1), layout="HWC", value_range=(0, 255))
    out = prepare_image_input(_photo(), spec, None)
    assert out.shape == (6, 8, 1) and out.dtype == np.int32
    assert out[0, 0, 0] == round(0.299 * 255)
    with pytest.raises(hub.InputError, match=r"takes one image \(HWC\), got 2"):
        prepare_image_input([_photo(), _photo()], spec, None)


def test_fixed_size_uses_the_resize_policy_dynamic_size_keeps_the_photo() -> None:
    fixed = _spec(dtype="float32", shape=("batch", 4, 4, 3), layout="NHWC", value_range=(0.0, 1.0))
    assert prepare_image_input(_photo(), fixed, None).shape == (1, 4, 4, 3)
    dynamic = _spec(
        dtype="float32", shape=("batch", "height", "width", 3), layout="NHWC", value_range=(0.0, 1.0)
    )
    assert prepare_image_input(_photo(), dynamic, None).shape == (1, 6, 8, 3)
    squash = ImagePreprocessing(height=5, width=5, resize="squash")
    assert prepare_image_input(_photo(), dynamic, squash).shape == (1, 5, 5, 3)


def test_ready_arrays_pass_unchanged() -> None:
    spec = _spec(dtype="float32", shape=("batch", 3, 6, 8), layout="NCHW", value_range=(0.0, 1.0))
    batch = np.random.default_rng(0).random((2, 3, 6, 8), dtype=np.float32)
    assert prepare_image_input(batch, spec, None) is batch
