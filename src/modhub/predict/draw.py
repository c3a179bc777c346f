"""Pictures of what a module found: boxes, a keypoint skeleton, a mask overlay, a stylised image.

Pillow only. The functions take the photo (a PIL image) and the module's outputs as numpy
arrays in the conventions of the task contracts (modhub.format.tasks): boxes as fractions of
the model's input frame in a stated corner order, keypoints ``[K, 3]`` as (y, x, score), masks
``[H, W]`` of probabilities. ``from_model_frame`` maps points from the model's input frame
(after the module's resize policy: squash, crop or pad) back onto the photo, so a picture of a
photo that was letterboxed or cropped to the model's size still lines up.

:func:`draw_result` picks the picture for a module's task; the zoo stores one per starter as
``assets/example.png`` and ``modhub predict --draw DIR`` writes one per input.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from modhub.format.manifest import Manifest
    from modhub.settings import Settings

__all__ = [
    "COCO_SKELETON",
    "EXAMPLE_ASSET",
    "draw_boxes",
    "draw_folder",
    "draw_keypoints",
    "draw_mask",
    "draw_result",
    "from_model_frame",
    "image_of",
    "mask_on_photo",
    "side_by_side",
]

# Where a module keeps the picture of its output on a sample (made at zoo build).
EXAMPLE_ASSET = "assets/example.png"
# Limbs between the 17 COCO keypoints, by name (MoveNet's drawing edges).
COCO_SKELETON: tuple[tuple[str, str], ...] = (
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
    ("nose", "left_shoulder"),
    ("nose", "right_shoulder"),
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)
_PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)
_LEFT, _RIGHT, _CENTRE = (0, 130, 200), (245, 130, 48), (255, 225, 25)


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _rgb(photo: PILImage) -> PILImage:
    return photo if photo.mode == "RGB" else photo.convert("RGB")


def _line_width(photo: PILImage) -> int:
    return max(2, round(max(photo.size) / 200))


def from_model_frame(
    points_yx: np.ndarray,
    photo_size: tuple[int, int],
    model_size: tuple[int, int] | None,
    resize: str = "squash",
) -> np.ndarray:
    """Pixel (y, x) on the photo of points given as fractions of the model's input frame.

    ``photo_size`` is (width, height) as PIL gives it; ``model_size`` the model's (height,
    width), None when the model took the photo at its own size; ``resize`` the module's
    policy (modhub.runtimes.images): "squash" stretches, "crop" cut the centre that covers
    the frame, "pad" fitted the photo inside the frame, centred.
    """
    points = np.asarray(points_yx, dtype=np.float64)
    width, height = photo_size
    if model_size is None or resize == "squash":
        return points * np.array([height, width], dtype=np.float64)
    model_h, model_w = model_size
    if resize == "crop":
        scale = max(model_h / height, model_w / width)
    elif resize == "pad":
        scale = min(model_h / height, model_w / width)
    else:
        raise ValueError(f"unknown resize policy {resize!r}")
    # The photo's extent in the model's frame, centred (as runtimes.images.fit_photo does).
    shown_h, shown_w = height * scale, width * scale
    top, left = (model_h - shown_h) / 2, (model_w - shown_w) / 2
    y = (points[..., 0] * model_h - top) / scale
    x = (points[..., 1] * model_w - left) / scale
    return np.stack([y, x], axis=-1)


def draw_boxes(
    photo: PILImage,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    box_format: str = "yxyx",
    normalized: bool = True,
    model_size: tuple[int, int] | None = None,
    resize: str = "squash",
    min_score: float = 0.3,
    max_boxes: int = 20,
) -> PILImage:
    """``photo`` with each box over ``min_score`` outlined and captioned "label score"."""
    from PIL import ImageDraw

    image = _rgb(photo).copy()
    draw = ImageDraw.Draw(image)
    width = _line_width(image)
    font = _font(max(12, round(max(image.size) / 40)))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1)
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= min_score][:max_boxes]
    for i in order:
        y0, x0, y1, x1 = _as_yxyx(boxes[i], box_format)
        corners = np.array([[y0, x0], [y1, x1]])
        if not normalized:
            size = model_size or (image.height, image.width)
            corners = corners / np.array(size, dtype=np.float64)
        (top, left), (bottom, right) = from_model_frame(corners, image.size, model_size, resize)
        cls = int(classes[i])
        colour = _PALETTE[cls % len(_PALETTE)]
        name = labels[cls] if labels is not None and 0 <= cls < len(labels) else f"class {cls}"
        draw.rectangle((left, top, right, bottom), outline=colour, width=width)
        caption = f"{name} {scores[i]:.2f}"
        text_box = draw.textbbox((left, top), caption, font=font)
        lift = text_box[3] - text_box[1] + 2 * width
        y_text = top - lift if top - lift >= 0 else top
        draw.rectangle(
            (left, y_text, left + text_box[2] - text_box[0] + 2 * width, y_text + lift), fill=colour
        )
        draw.text((left + width, y_text + width // 2), caption, fill=(0, 0, 0), font=font)
    return image


def _as_yxyx(box: np.ndarray, box_format: str) -> tuple[float, float, float, float]:
    a, b, c, d = (float(v) for v in box)
    if box_format == "yxyx":
        return a, b, c, d
    if box_format == "xyxy":
        return b, a, d, c
    if box_format == "xywh":
        return b, a, b + d, a + c
    if box_format == "cxcywh":
        return b - d / 2, a - c / 2, b + d / 2, a + c / 2
    raise ValueError(f"unknown box format {box_format!r}")


def draw_keypoints(
    photo: PILImage,
    keypoints: np.ndarray,
    names: Sequence[str] | None = None,
    *,
    model_size: tuple[int, int] | None = None,
    resize: str = "squash",
    min_score: float = 0.2,
) -> PILImage:
    """``photo`` with the keypoints ``[K, 3]`` (y, x, score) over ``min_score`` and the COCO skeleton."""
    from PIL import ImageDraw

    image = _rgb(photo).copy()
    draw = ImageDraw.Draw(image)
    points = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
    pixels = from_model_frame(points[:, :2], image.size, model_size, resize)
    score = points[:, 2]
    index = {name: i for i, name in enumerate(names or ())}
    width = _line_width(image)
    for a, b in COCO_SKELETON:
        i, j = index.get(a), index.get(b)
        if i is None or j is None or score[i] < min_score or score[j] < min_score:
            continue
        colour = _side_colour(a, b)
        draw.line([(pixels[i, 1], pixels[i, 0]), (pixels[j, 1], pixels[j, 0])], fill=colour, width=width)
    radius = width * 1.6
    for k, (y, x) in enumerate(pixels):
        if score[k] < min_score:
            continue
        name = names[k] if names is not None and k < len(names) else ""
        colour = _side_colour(name, name)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=(0, 0, 0))
    return image


def _side_colour(a: str, b: str) -> tuple[int, int, int]:
    if a.startswith("left") and b.startswith("left"):
        return _LEFT
    if a.startswith("right") and b.startswith("right"):
        return _RIGHT
    return _CENTRE


def draw_mask(
    photo: PILImage,
    mask: np.ndarray,
    *,
    colour: tuple[int, int, int] = (255, 0, 160),
    opacity: float = 0.55,
    model_size: tuple[int, int] | None = None,
    resize: str = "squash",
) -> PILImage:
    """``photo`` tinted with ``colour`` where the mask (probabilities ``[H, W]`` in the model's
    frame) is high; the mask is brought back onto the photo by the module's resize policy."""
    from PIL import Image

    image = _rgb(photo)
    values = np.clip(np.asarray(mask, dtype=np.float32).squeeze(), 0.0, 1.0)
    if values.ndim != 2:
        raise ValueError(f"a mask must be [H, W] (after squeezing), got shape {values.shape}")
    layer = Image.fromarray(np.round(values * 255).astype(np.uint8), mode="L")
    layer = mask_on_photo(layer, image.size, model_size or values.shape, resize)
    alpha = layer.point(lambda v: round(v * opacity))
    tint = Image.new("RGB", image.size, colour)
    return Image.composite(tint, image, alpha)


def mask_on_photo(
    layer: PILImage,
    photo_size: tuple[int, int],
    model_size: tuple[int, int],
    resize: str,
    nearest: bool = False,
) -> Any:
    """The mask (in the model's frame) resampled onto the photo's pixels (``nearest`` for class ids)."""
    from PIL import Image

    width, height = photo_size
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    if resize == "squash" or (layer.height, layer.width) == (height, width):
        return layer.resize((width, height), method)
    # The model's frame in the photo's pixels (it overhangs the photo for "crop", falls inside
    # it for "pad"): the mask resized to that rectangle and pasted onto a blank photo-sized one.
    model_h, model_w = model_size
    scale = (
        max(model_h / height, model_w / width) if resize == "crop" else min(model_h / height, model_w / width)
    )
    top, left = (model_h - height * scale) / 2, (model_w - width * scale) / 2
    y0, x0 = round(-top / scale), round(-left / scale)
    y1, x1 = round((model_h - top) / scale), round((model_w - left) / scale)
    canvas = Image.new("L", (width, height), 0)
    canvas.paste(layer.resize((max(1, x1 - x0), max(1, y1 - y0)), method), (x0, y0))
    return canvas


def side_by_side(images: Sequence[PILImage], captions: Sequence[str] = (), height: int = 384) -> PILImage:
    """The images scaled to one ``height`` in a row, each captioned below."""
    from PIL import Image, ImageDraw

    scaled = [_rgb(im).resize((max(1, round(im.width * height / im.height)), height)) for im in images]
    font = _font(max(12, height // 20))
    caption_h = height // 12 + 8 if captions else 0
    gap = 8
    total = sum(im.width for im in scaled) + gap * (len(scaled) - 1)
    canvas = Image.new("RGB", (total, height + caption_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for k, im in enumerate(scaled):
        canvas.paste(im, (x, 0))
        if k < len(captions):
            draw.text((x + 4, height + 4), captions[k], fill=(0, 0, 0), font=font)
        x += im.width + gap
    return canvas


def image_of(
    array: np.ndarray, layout: str | None = None, value_range: tuple[float, float] | None = None
) -> PILImage:
    """An image array ([1,] H, W, 3, or channels first for a ``layout`` "NCHW"/"CHW") as a PIL
    image; floats in ``value_range`` (default [0, 1]), integers as 0-255 pixels."""
    from PIL import Image

    values = np.asarray(array)
    if layout in ("NCHW", "CHW"):
        values = np.moveaxis(values, -3, -1)
    values = values.reshape(values.shape[-3:])
    if values.dtype.kind == "f":
        low, high = value_range or (0.0, 1.0)
        scaled = (values.astype(np.float32) - low) / ((high - low) or 1.0)
        values = np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    elif values.dtype != np.uint8:
        values = np.clip(values, 0, 255).astype(np.uint8)
    return Image.fromarray(values, mode="RGB")


def draw_result(
    manifest: Manifest,
    photos: Mapping[str, PILImage],
    outputs: Mapping[str, np.ndarray],
    labels: Mapping[str, Sequence[str]] | None = None,
) -> PILImage:
    """The picture of one call of a module's default signature, chosen by its task.

    ``photos``: the photo given for each image input, by input name; ``outputs``: the
    outputs (numpy) by name; ``labels``: the lines of each output's label file, by output name.
    """
    sig = manifest.default_signature
    image_inputs = [spec for spec in sig.inputs if spec.kind == "image"]
    if not image_inputs:
        raise ValueError(f"{manifest.task} modules take no image; there is nothing to draw on")
    first = image_inputs[0]
    photo = photos[first.name]
    model_size = _model_size(first)
    resize = manifest.preprocessing.image.resize if manifest.preprocessing.image is not None else "crop"
    labels = labels or {}
    by_kind = {spec.kind: spec for spec in sig.outputs if spec.kind is not None}
    if manifest.task == "image-style-transfer":
        out = sig.outputs[0]
        styled = image_of(outputs[out.name], out.layout, out.value_range)
        shown = [photos[spec.name] for spec in image_inputs] + [styled]
        names = [spec.name.replace("_image", "") for spec in image_inputs] + ["stylised"]
        return side_by_side(shown, names)
    if "keypoints" in by_kind:
        spec = by_kind["keypoints"]
        points = np.asarray(outputs[spec.name]).reshape(-1, 3)
        return draw_keypoints(photo, points, spec.keypoints, model_size=model_size, resize=resize)
    if "mask" in by_kind:
        spec = by_kind["mask"]
        mask = np.asarray(outputs[spec.name]).squeeze()
        return draw_mask(photo, mask, model_size=model_size, resize=resize)
    boxes = next((spec for spec in sig.outputs if spec.kind == "boxes" or spec.box_format), None)
    if boxes is not None:
        scores = by_kind.get("scores") or next(s for s in sig.outputs if s.name == "detection_scores")
        classes = by_kind.get("classes") or next(s for s in sig.outputs if s.name == "detection_classes")
        return draw_boxes(
            photo,
            np.asarray(outputs[boxes.name]).reshape(-1, 4),
            np.asarray(outputs[scores.name]).reshape(-1),
            np.asarray(outputs[classes.name]).reshape(-1),
            labels.get(classes.name),
            box_format=boxes.box_format or "yxyx",
            normalized=bool(boxes.normalized) if boxes.normalized is not None else True,
            model_size=model_size,
            resize=resize,
        )
    raise ValueError(f"no picture is defined for {manifest.task} modules")


def _model_size(spec: Any) -> tuple[int, int] | None:
    """(height, width) of an image input with fixed sizes; None for a dynamic one."""
    layout = spec.layout or ("NHWC" if len(spec.shape) == 4 else "HWC")
    height, width = spec.shape[layout.index("H")], spec.shape[layout.index("W")]
    return (height, width) if isinstance(height, int) and isinstance(width, int) else None


def draw_folder(
    handle: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    extra_inputs: Mapping[str, str] | None = None,
) -> list[Path]:
    """Run the module on each photo of ``inputs`` (a folder, searched recursively, or one photo)
    and write the picture of its result to ``out_dir/<photo's path>.png``; return the pictures.

    For the image tasks with something to draw (detection, pose, segmentation, style transfer).
    ``extra_inputs``: a photo by input name for every image input but one (the style picture
    of a style-transfer module), the same for every photo. A photo that cannot be read is an
    ``InputError`` naming it; nothing is drawn for it.
    """
    from modhub.errors import InputError
    from modhub.format.manifest import is_hidden
    from modhub.format.tasks import parse_labels
    from modhub.loading.loader import load
    from modhub.runtimes.images import IMAGE_SUFFIXES, read_photo_file

    module = load(handle, output="numpy", settings=settings)
    manifest: Manifest = module.manifest
    sig = manifest.default_signature
    extra = dict(extra_inputs or {})
    images = [spec for spec in sig.inputs if spec.kind == "image"]
    fed = [spec for spec in sig.inputs if spec.name not in extra]
    if len(fed) != 1 or fed[0].kind != "image" or not set(extra) <= {spec.name for spec in images}:
        wanted = " ".join(f"--input {spec.name}=PHOTO" for spec in images[1:])
        raise InputError(
            f"--draw draws the results of modules fed one photo per row; this {manifest.task} module "
            f"takes {', '.join(spec.name for spec in sig.inputs)}"
            + (f": give the others with {wanted}" if wanted and len(images) == len(sig.inputs) else "")
            + ", or call it from Python and use modhub.predict.draw.draw_result"
        )
    given = {
        name: read_photo_file(Path(path).expanduser(), f"--input {name}={path}")
        for name, path in extra.items()
    }
    source = Path(inputs).expanduser()
    if source.is_dir():
        photos = sorted(
            p
            for p in source.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not is_hidden(p.relative_to(source))
        )
        names = [p.relative_to(source).with_suffix(".png") for p in photos]
    elif source.is_file():
        photos, names = [source], [Path(source.stem + ".png")]
    else:
        raise InputError(f"{source} is neither a folder of photos nor a photo", path=source)
    labels = {
        spec.name: parse_labels((Path(module.path) / spec.labels).read_bytes(), spec.labels)
        for spec in sig.outputs
        if spec.labels is not None
    }
    target = Path(out_dir).expanduser()
    written = []
    for path, name in zip(photos, names, strict=True):
        photo = read_photo_file(path)
        feeds = {fed[0].name: photo, **given}
        result = module(**feeds) if extra else module(photo)
        outputs = result if isinstance(result, dict) else {sig.outputs[0].name: result}
        picture = draw_result(manifest, feeds, outputs, labels)
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        picture.save(dest, format="PNG")
        written.append(dest)
    return written
