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

A photo is decoded only if its header says it has at most ``MAX_PHOTO_PIXELS`` pixels (and
its file is at most ``MAX_PHOTO_BYTES``): an image bomb (a small file that decodes to gigabytes)
is an ``InputError`` naming the item, never a ``DecompressionBombError`` or an exhausted machine.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from modhub.errors import InputError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from modhub.format.manifest import ImagePreprocessing, TensorSpec

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PHOTO_BYTES",
    "MAX_PHOTO_PIXELS",
    "RESIZE_POLICIES",
    "ResizePolicy",
    "check_batch_shape",
    "check_photo_size",
    "fit_photo",
    "is_photo_input",
    "open_photo",
    "photo_array",
    "prepare_image_input",
    "prepare_images",
    "read_photo_file",
]

ResizePolicy = Literal["squash", "crop", "pad"]
RESIZE_POLICIES: tuple[str, ...] = get_args(ResizePolicy)
# Fill of the ``pad`` borders when the module records no normalisation mean.
# File suffixes read as photos in folders (retraining, batch prediction).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
PAD_FALLBACK = (0.5, 0.5, 0.5)
# The largest photo decoded: 80 megapixels (width x height, read from the file's header before
# any pixel is decoded). A 61 MP camera or a 64 MP phone fits; decoded as RGB it is 240 MB. It is
# under Pillow's own bomb warning (89.5 MP), so Pillow's check never fires first.
MAX_PHOTO_PIXELS = 80_000_000
# The largest photo file read: an 80-megapixel uncompressed RGB BMP is 240 MB.
MAX_PHOTO_BYTES = 256 * 2**20
_SHRINK = "scale it down (e.g. PIL's Image.thumbnail((4096, 4096))) and pass the smaller photo"

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
        return read_photo_file(path, f"{where} ({path})")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return open_photo(bytes(item), f"{where} (bytes)")
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


def open_photo(data: bytes, where: str = "the photo") -> PILImage:
    """Decode encoded photo bytes fully (a truncated file raises here, not later).

    The size in the header is checked against ``MAX_PHOTO_PIXELS`` before any pixel is decoded.
    Raises ``InputError`` (starting with ``where``) for bytes that are not a readable photo.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Pillow warns from 89.5 megapixels on; modhub's own cap (below) decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))
        with opened as img:
            check_photo_size(img.size, where)
            img.load()
            return img.copy()
    except InputError:
        raise
    except Image.DecompressionBombError as exc:  # over twice Pillow's limit: refused by Image.open
        raise InputError(
            f"{where} is over the limit of {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels per photo "
            f"(Pillow: {exc}); {_SHRINK}"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError) as exc:
        # Pillow reports broken files with several exception types (SyntaxError for some PNGs).
        raise InputError(f"{where} is not a readable image ({type(exc).__name__}: {exc})") from exc


def check_photo_size(size: tuple[int, int], where: str = "the photo") -> None:
    """Refuse a photo over ``MAX_PHOTO_PIXELS`` pixels (from its header), before it is decoded."""
    width, height = size
    if width * height > MAX_PHOTO_PIXELS:
        raise InputError(
            f"{where} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), over the "
            f"limit of {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels per photo; {_SHRINK}"
        )


def read_photo_file(path: Path, where: str | None = None) -> PILImage:
    """:func:`open_photo` on the file at ``path`` (named ``where`` in errors, default the path);
    a file over ``MAX_PHOTO_BYTES`` is refused unread."""
    where = str(path) if where is None else where
    try:
        size = path.stat().st_size
        if size > MAX_PHOTO_BYTES:
            raise InputError(
                f"{where} is a {size / 2**20:.0f} MiB file, over the limit of "
                f"{MAX_PHOTO_BYTES // 2**20} MiB per photo; {_SHRINK}",
                path=path,
            )
        return open_photo(path.read_bytes(), where)
    except InputError as exc:
        exc.path = path
        raise
    except OSError as exc:
        raise InputError(f"{where}: cannot read the file ({exc})", path=path) from exc


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


# ------------------------------------------------------- any image input of a signature

_BATCHED_LAYOUTS = ("NCHW", "NHWC")


def prepare_image_input(value: Any, spec: TensorSpec, preprocessing: ImagePreprocessing | None) -> Any:
    """The value of a ``kind="image"`` input of any signature, in that input's layout, dtype and range.

    ``spec.layout``: "NCHW"/"NHWC" (a batch) or "CHW"/"HWC" (one image; None: channels
    last); dtype float (values scaled to ``spec.value_range``, default [0, 1]) or integer
    (pixels, default [0, 255]); ``spec.color`` "BGR" swaps the channels. Fixed height and
    width: photos are fitted by the module's resize policy (``preprocessing.resize``,
    "crop" when the module records none); dynamic ones: photos keep their own size (or
    ``preprocessing``'s height x width when the module gives one), so photos of different
    sizes are passed one call each. A ready array or tensor of the input's dtype and rank
    is passed on unchanged (the caller's checks against the spec follow).
    """
    layout = spec.layout or ("NHWC" if len(spec.shape) == 4 else "HWC")
    batched = layout in _BATCHED_LAYOUTS
    if len(spec.shape) != (4 if batched else 3):
        return value  # not an image layout the photos can be fitted to: checked as a plain tensor
    is_float = spec.dtype.startswith(("float", "bfloat"))
    if _is_ready(value, spec, is_float):
        return value
    photos = _as_photo_list(value)
    if not batched and len(photos) != 1:
        raise InputError(
            f"input {spec.name!r} takes one image ({layout}), got {len(photos)}: "
            "call the module once per photo"
        )
    channels_axis = layout.index("C")
    hw_axes = [layout.index("H"), layout.index("W")]
    channels = spec.shape[channels_axis]
    height, width = (spec.shape[axis] for axis in hw_axes)
    if not isinstance(height, int) or not isinstance(width, int):
        if preprocessing is not None:
            height, width = preprocessing.height, preprocessing.width
        else:
            height = width = None  # type: ignore[assignment]
    resize = preprocessing.resize if preprocessing is not None else "crop"
    mean = preprocessing.mean if preprocessing is not None else None
    fill = mean if mean is not None else PAD_FALLBACK
    arrays = []
    for i, item in enumerate(photos):
        img = _open_item(item, i, len(photos))
        if height is None or width is None:
            arrays.append(np.asarray(_to_rgb(img), dtype=np.uint8))
        else:
            arrays.append(photo_array(img, int(height), int(width), resize, fill))
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        raise InputError(
            f"input {spec.name!r} takes images of any size, but one batch holds one size; got photos of "
            f"{len(sizes)} sizes ({', '.join(f'{h}x{w}' for h, w in sorted(sizes))}): pass them one call each"
        )
    pixels = np.stack(arrays)  # uint8 [batch, H, W, 3], RGB
    if spec.color == "BGR":
        pixels = pixels[..., ::-1]
    if channels == 1:
        pixels = np.round(pixels @ np.array([0.299, 0.587, 0.114]))[..., None].astype(np.uint8)
    elif isinstance(channels, int) and channels != 3:
        raise InputError(f"input {spec.name!r} takes {channels} channels; photos have 3 (RGB): pass an array")
    out = _scale(pixels, spec, is_float)
    if layout in ("NCHW", "CHW"):
        out = out.transpose(0, 3, 1, 2)
    out = np.ascontiguousarray(out)
    return out if batched else out[0]


def _is_ready(value: Any, spec: TensorSpec, is_float: bool) -> bool:
    """Whether ``value`` is an array or tensor to check as it is (not photos to convert)."""
    torch = sys.modules.get("torch")  # a tensor exists only if the caller imported torch
    if torch is not None and isinstance(value, torch.Tensor):
        return True
    if not isinstance(value, np.ndarray):
        return False
    if value.dtype.kind == "f" or is_float:
        # Floats are never photos; integer pixels for a float input are (as for the original tasks).
        return value.dtype.kind == "f"
    # An integer input: an array of its rank and size is the tensor itself, else photos.
    fixed = all(isinstance(d, str) or d == got for d, got in zip(spec.shape, value.shape, strict=False))
    return value.ndim == len(spec.shape) and fixed and (value.dtype != np.uint8 or spec.dtype == "uint8")


def _scale(pixels: np.ndarray, spec: TensorSpec, is_float: bool) -> np.ndarray:
    """uint8 pixels as the input's dtype, scaled from [0, 255] to its value range."""
    low, high = spec.value_range if spec.value_range is not None else ((0.0, 1.0) if is_float else (0, 255))
    dtype = np.float32 if spec.dtype == "bfloat16" else np.dtype(spec.dtype)
    if (low, high) == (0, 255):
        return pixels.astype(dtype)
    scaled = pixels.astype(np.float32) * np.float32((high - low) / 255.0) + np.float32(low)
    return scaled.astype(dtype) if is_float else np.round(scaled).astype(dtype)
