"""Photos in: turn what a user has (PIL images, file paths, encoded bytes, uint8 arrays)
into the float32 [batch, 3, H, W] RGB batch in [0, 1] an image module's graph takes.

This module needs numpy and Pillow only (Pillow is imported when a photo is
first converted): the torch runtime, the onnx runtime and retraining all call
:func:`prepare_images`, so a module sees at inference exactly what it saw in training.

How a photo of any size becomes H x W is the module's *resize policy*, stored in
``modhub.json`` (``preprocessing.image.resize``):

- ``squash``: resize the whole photo to H x W; the aspect ratio is not kept, nothing is cut off.
- ``crop``: resize the shorter side to cover H x W, then cut the centre (the edges are lost).
- ``pad``: resize the longer side to fit H x W, then fill the borders with the module's
  normalisation mean (0 after normalisation; mid-grey when the module records no mean).

Every policy uses Pillow's antialiased bilinear resampling. Before resizing, the
EXIF orientation is applied, transparent images are composited on white, and
greyscale, palette, CMYK and 16-bit images become 8-bit RGB.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from modhub.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from modhub.format.manifest import ImagePreprocessing

__all__ = [
    "IMAGE_SUFFIXES",
    "RESIZE_POLICIES",
    "ResizePolicy",
    "check_batch_shape",
    "fit_photo",
    "is_photo_input",
    "open_photo",
    "photo_array",
    "prepare_images",
]

ResizePolicy = Literal["squash", "crop", "pad"]
RESIZE_POLICIES: tuple[str, ...] = get_args(ResizePolicy)
# Fill of the ``pad`` borders when the module records no normalisation mean.
# File suffixes read as photos in folders (retraining, batch prediction).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
PAD_FALLBACK = (0.5, 0.5, 0.5)

_ACCEPTED = (
    "a float32 array or tensor [batch, 3, H, W] with values in [0, 1], or photos: a PIL image, a file path, "
    "encoded bytes (JPEG, PNG, ...), a uint8 array [H, W, 3] (or [H, W], [H, W, 4], [batch, H, W, 3]), "
    "or a list of these"
)


def prepare_images(images: Any, spec: ImagePreprocessing) -> np.ndarray:
    """The module input for ``images``: float32 [batch, 3, spec.height, spec.width], RGB in [0, 1].

    A float batch (numpy, or anything with ``__array__``) is checked and passed
    through; photos are converted with the module's resize policy ``spec.resize``.
    Raises ``InputError`` saying what was wrong and what to pass instead.
    """
    if isinstance(images, np.ndarray) and images.dtype.kind == "f":
        check_batch_shape(tuple(images.shape), str(images.dtype), (3, spec.height, spec.width))
        return images
    photos = _as_photo_list(images)
    fill = spec.mean if spec.mean is not None else PAD_FALLBACK
    out = np.empty((len(photos), 3, spec.height, spec.width), dtype=np.float32)
    for i, item in enumerate(photos):
        pixels = photo_array(_open_item(item, i, len(photos)), spec.height, spec.width, spec.resize, fill)
        out[i] = pixels.transpose(2, 0, 1)
    out /= 255.0
    return out


def is_photo_input(images: Any) -> bool:
    """Whether ``images`` is photo input (not a ready float batch) that :func:`prepare_images` converts."""
    if isinstance(images, np.ndarray):
        return images.dtype.kind != "f"
    return isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, list, tuple)) or _is_pil(
        images
    )


def check_batch_shape(shape: tuple[int, ...], dtype: str, expected: tuple[int, int, int]) -> None:
    """Refuse a ready batch whose shape or dtype is not [batch, *expected] float32, with the fix."""
    want = ["batch", *expected]
    if len(shape) == 3:
        raise InputError(
            f"expected a batch of images {want}, got one image {list(shape)}: add a batch "
            "dimension (images[None] or tensor.unsqueeze(0)), or pass the photo itself"
        )
    if len(shape) != 4 or tuple(shape[1:]) != tuple(expected):
        hint = ""
        if len(shape) == 4 and shape[-1] == 3:
            hint = (
                " (channels last? use images.permute(0, 3, 1, 2) for a tensor, "
                "images.transpose(0, 3, 1, 2) for an array, or pass uint8 photos [batch, H, W, 3])"
            )
        elif len(shape) == 4 and shape[1] == 3:
            size = f"{expected[1]}x{expected[2]}"
            hint = f" (other size? pass the photos themselves and the module resizes them to {size})"
        raise InputError(f"expected images of shape {want}, got {list(shape)}{hint}")
    if dtype != "float32":
        hint = (
            " (uint8 pixels? use images.float() / 255, or pass them as photos [H, W, 3])"
            if dtype in ("uint8", "torch.uint8")
            else ""
        )
        raise InputError(f"expected float32 images in [0, 1], got {dtype}{hint}")


def _as_photo_list(images: Any) -> list[Any]:
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise InputError(f"expected {_ACCEPTED}; got an array of dtype {images.dtype}")
        if images.ndim == 4:
            if images.shape[1] in (1, 3, 4) and images.shape[-1] not in (1, 3, 4):
                raise InputError(
                    f"got a uint8 array {list(images.shape)}, channels first: pass photos as "
                    "[batch, H, W, 3] (images.transpose(0, 2, 3, 1)) or a float batch in [0, 1] "
                    "(images.astype(np.float32) / 255)"
                )
            return list(images)
        return [images]
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)) or _is_pil(images):
        return [images]
    if isinstance(images, Sequence):
        if not images:
            raise InputError("got an empty list of images; pass at least one photo")
        return list(images)
    raise InputError(f"expected {_ACCEPTED}; got {type(images).__name__}")


def _is_pil(value: Any) -> bool:
    # Pillow is only imported when needed: a PIL image exists only if the caller imported Pillow.
    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(value, module.Image)


def _open_item(item: Any, index: int, count: int) -> PILImage:
    where = f"item {index} of {count}" if count > 1 else "the photo"
    if isinstance(item, np.ndarray):
        return _from_array(item, where)
    if isinstance(item, str) and item.startswith(("http://", "https://")):
        raise InputError(f"{where} is a URL ({item}); download it first and pass the file path or bytes")
    if isinstance(item, (str, os.PathLike)):
        path = Path(item).expanduser()
        if not path.is_file():
            raise InputError(f"{where}: no such file {path}; pass an existing photo file", path=path)
        try:
            return open_photo(path.read_bytes())
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{where} ({path}) is not a readable image: {exc}", path=path) from exc
    if isinstance(item, (bytes, bytearray, memoryview)):
        try:
            return open_photo(bytes(item))
        except (OSError, ValueError, SyntaxError) as exc:
            raise InputError(f"{where} (bytes) is not a readable image: {exc}") from exc
    if _is_pil(item):
        return item  # type: ignore[no-any-return]
    raise InputError(f"{where} is a {type(item).__name__}; expected {_ACCEPTED}")


def _from_array(array: np.ndarray, where: str) -> PILImage:
    from PIL import Image

    if array.dtype != np.uint8:
        raise InputError(
            f"{where} is an array of dtype {array.dtype}; photos as arrays are uint8 [H, W, 3] "
            "(a float batch must be one float32 array [batch, 3, H, W])"
        )
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return Image.fromarray(array, mode="L")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(array), mode="RGB" if array.shape[-1] == 3 else "RGBA")
    hint = (
        " (channels first? use array.transpose(1, 2, 0))"
        if array.ndim == 3 and array.shape[0] in (1, 3, 4)
        else ""
    )
    raise InputError(
        f"{where} is a uint8 array of shape {list(array.shape)}; "
        f"expected [H, W, 3], [H, W, 4] or [H, W]{hint}"
    )


def open_photo(data: bytes) -> PILImage:
    """Decode encoded photo bytes fully (a truncated file raises here, not later)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.copy()


def _to_rgb(img: PILImage) -> PILImage:
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16/32-bit or float greyscale: scale to 8 bits before RGB conversion.
        array = np.asarray(img, dtype=np.float64)
        top = array.max() or 1.0
        img = Image.fromarray(np.clip(array / top * 255, 0, 255).astype(np.uint8), mode="L")
    return img.convert("RGB")


def fit_photo(
    img: PILImage,
    height: int,
    width: int,
    resize: str,
    fill: Sequence[float] = PAD_FALLBACK,
) -> PILImage:
    """``img`` as an 8-bit RGB image of exactly width x height, by the resize policy ``resize``."""
    from PIL import Image

    rgb = _to_rgb(img)
    bilinear = Image.Resampling.BILINEAR
    w, h = rgb.size
    if resize == "squash":
        return rgb if (w, h) == (width, height) else rgb.resize((width, height), bilinear)
    if resize == "crop":
        # The centre box of the source with the target's aspect ratio, resized in one step.
        scale = max(height / h, width / w)
        box_w, box_h = width / scale, height / scale
        # Clamped: rounding must not push the box a hair outside the photo (Pillow refuses that).
        left, top = max(0.0, (w - box_w) / 2), max(0.0, (h - box_h) / 2)
        box = (left, top, min(float(w), left + box_w), min(float(h), top + box_h))
        return rgb.resize((width, height), bilinear, box=box)
    if resize == "pad":
        scale = min(height / h, width / w)
        size = (max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale))))
        inner = rgb if size == (w, h) else rgb.resize(size, bilinear)
        colour = tuple(round(255 * c) for c in fill)
        canvas = Image.new("RGB", (width, height), colour)  # type: ignore[arg-type]
        canvas.paste(inner, ((width - size[0]) // 2, (height - size[1]) // 2))
        return canvas
    raise InputError(f"unknown resize policy {resize!r}; use one of {', '.join(RESIZE_POLICIES)}")


def photo_array(
    img: PILImage,
    height: int,
    width: int,
    resize: str,
    fill: Sequence[float] = PAD_FALLBACK,
) -> np.ndarray:
    """``img`` fitted to height x width (see :func:`fit_photo`) as uint8 [height, width, 3]."""
    return np.asarray(fit_photo(img, height, width, resize, fill), dtype=np.uint8)
