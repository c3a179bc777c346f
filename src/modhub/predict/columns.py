"""Per-task Parquet columns: what ``modhub predict`` writes for each kind of output.

Every output keeps its name as a column; one row holds that output for one input, without
the batch dimension (a fixed batch of 1 included). On top of the raw values, outputs whose
``kind`` says what they are become columns a person can read:

    boxes / scores / classes   padding after ``num_detections`` (a kind="count" output) removed;
                               a classes output with ``labels`` gains ``<name>_labels`` (the names,
                               ``detection_classes`` -> ``detection_labels``)
    keypoints                  a list of {name, y, x, score} per keypoint, y and x in pixels of
                               the input photo (mapped back through the module's resize policy)
    mask                       a PNG at the photo's size (probability x 255, or class ids) in
                               ``<out>.<output name>/`` beside the Parquet (``out.parquet.mask/``);
                               the column holds its path relative to the Parquet's folder
                               (without a folder, e.g. on Ray: the PNG's bytes)
    image                      (style transfer, ...) a PNG the same way, at the output's own size
    per-frame outputs          (``frame_hop``) kept as lists, one item per frame; the first
                               audio output adds ``frame_times`` (seconds of each frame's start)
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modhub.format.manifest import TensorSpec

__all__ = ["ItemInfo", "TaskColumns", "labels_column_name"]


@dataclass
class ItemInfo:
    """What the columns need to know about one input: its key and, for photos, its size."""

    key: str
    photo_size: tuple[int, int] | None = None  # (width, height), as PIL gives it


def labels_column_name(name: str) -> str:
    """``detection_classes`` -> ``detection_labels``; ``classes`` -> ``labels``; else ``<name>_labels``."""
    if name.endswith("classes"):
        return name[: -len("classes")] + "labels"
    return f"{name}_labels"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class TaskColumns:
    """Turns the raw rows of a module's outputs into the per-task columns (see module doc)."""

    def __init__(
        self,
        module: Any,
        input_spec: TensorSpec,
        outputs: tuple[TensorSpec, ...],
        labels: dict[str, list[str]],
    ) -> None:
        self.outputs = outputs
        self.labels = labels
        self.out: Path | None = None
        manifest = module.manifest
        image = manifest.preprocessing.image
        self.resize = image.resize if image is not None else "crop"
        self.model_size = _model_size(input_spec, image) if input_spec.kind == "image" else None
        self.count = next((s.name for s in outputs if s.kind == "count"), None)
        self.frame_hop = next((s.frame_hop for s in outputs if s.frame_hop), None)
        self._used_names: set[tuple[str, str]] = set()

    def set_out(self, out: Path) -> None:
        """Write PNGs of masks and images to ``<out>.<output name>/`` (made for the first one)."""
        self.out = out

    def column_names(self) -> list[str]:
        names: list[str] = []
        for spec in self.outputs:
            names.append(spec.name)
            if spec.name in self.labels:
                names.append(labels_column_name(spec.name))
        if self.frame_hop is not None:
            names.append("frame_times")
        return names

    def convert(self, items: list[ItemInfo], raw: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Columns by name, one value per item, from the raw per-row arrays by output name."""
        columns: dict[str, list[Any]] = {name: [] for name in self.column_names()}
        for row, item in enumerate(items):
            values = {spec.name: np.asarray(raw[spec.name][row]) for spec in self.outputs}
            keep = None
            if self.count is not None:
                keep = int(np.asarray(values[self.count]).reshape(-1)[0])
            for spec in self.outputs:
                value = values[spec.name]
                if keep is not None and spec.kind in ("boxes", "scores", "classes") and value.ndim >= 1:
                    value = value[: max(0, keep)]
                if spec.kind == "keypoints":
                    columns[spec.name].append(self._keypoints(spec, value, item))
                elif spec.kind == "mask":
                    columns[spec.name].append(self._mask(spec, value, item))
                elif spec.kind == "image" and _image_rank(spec) == 3:
                    columns[spec.name].append(self._image(spec, value, item))
                elif spec.kind == "count" and value.size == 1:
                    columns[spec.name].append(value.reshape(()).item())
                else:
                    columns[spec.name].append(value)
                if spec.name in self.labels:
                    names = self.labels[spec.name]
                    columns[labels_column_name(spec.name)].append(_label_names(value, names))
            if self.frame_hop is not None:
                frames = next((np.asarray(values[s.name]).shape[0] for s in self.outputs if s.frame_hop), 0)
                columns["frame_times"].append(np.round(np.arange(frames) * self.frame_hop, 6))
        return columns

    def _keypoints(self, spec: TensorSpec, value: np.ndarray, item: ItemInfo) -> Any:
        from modhub.predict.draw import from_model_frame

        points = np.asarray(value, dtype=np.float64)
        if points.shape[-1] != 3:
            return value
        # Fixed person dimensions of 1 (single-pose models): one list of keypoints.
        squeeze = tuple(i for i, d in enumerate(self._person_dims(spec)) if d == 1)
        if squeeze and points.ndim == len(self._person_dims(spec)) + 2:
            points = points.squeeze(axis=squeeze)
        names = list(spec.keypoints or ())
        yx = points[..., :2]
        if item.photo_size is not None:
            yx = from_model_frame(yx, item.photo_size, self.model_size, self.resize)

        def one(person: np.ndarray, person_yx: np.ndarray) -> list[dict[str, Any]]:
            return [
                {
                    "name": names[k] if k < len(names) else str(k),
                    "y": float(person_yx[k, 0]),
                    "x": float(person_yx[k, 1]),
                    "score": float(person[k, 2]),
                }
                for k in range(person.shape[0])
            ]

        if points.ndim == 2:
            return one(points, yx)
        flat = points.reshape(-1, *points.shape[-2:])
        flat_yx = yx.reshape(-1, *yx.shape[-2:])
        return [one(p, q) for p, q in zip(flat, flat_yx, strict=True)]

    @staticmethod
    def _person_dims(spec: TensorSpec) -> tuple[int | str, ...]:
        """The dimensions of a keypoints output between its batch and its [K, 3]."""
        return tuple(spec.shape[1:-2])

    def arrow_type(self, pa: Any, name: str) -> Any:
        """The Parquet type of a derived column (None: the output's own dtype and rank)."""
        if name == "frame_times":
            return pa.list_(pa.float64())
        for spec in self.outputs:
            if name == spec.name and spec.kind == "keypoints" and spec.shape and spec.shape[-1] == 3:
                point = pa.struct(
                    [
                        ("name", pa.string()),
                        ("y", pa.float32()),
                        ("x", pa.float32()),
                        ("score", pa.float32()),
                    ]
                )
                people = [d for d in self._person_dims(spec) if d != 1]
                return pa.list_(pa.list_(point)) if people else pa.list_(point)
            png = (spec.kind == "mask" and _mask_rank(spec) == 2) or (
                spec.kind == "image" and _image_rank(spec) == 3
            )
            if name == spec.name and png:
                return pa.string() if self.out is not None else pa.binary()
            if name == spec.name and spec.kind == "count" and _size(spec) == 1:
                return None
            if spec.name in self.labels and name == labels_column_name(spec.name):
                label: Any = pa.string()
                for _ in range(max(0, len(spec.shape) - 1)):
                    label = pa.list_(label)
                return label
        return None

    def _mask(self, spec: TensorSpec, value: np.ndarray, item: ItemInfo) -> Any:
        from PIL import Image

        from modhub.predict.draw import mask_on_photo

        mask = np.asarray(value).squeeze()
        if mask.ndim != 2:
            return value  # several channels: kept as arrays
        if mask.dtype.kind == "f":
            low, high = spec.value_range or (0.0, 1.0)
            scaled = np.clip((mask.astype(np.float32) - low) / ((high - low) or 1.0), 0.0, 1.0)
            layer = Image.fromarray(np.round(scaled * 255).astype(np.uint8), mode="L")
            nearest = False
        else:
            layer = Image.fromarray(np.clip(mask, 0, 255).astype(np.uint8), mode="L")
            nearest = True
        if item.photo_size is not None:
            layer = mask_on_photo(layer, item.photo_size, self.model_size or mask.shape, self.resize, nearest)
        return self._png(spec, layer, item)

    def _image(self, spec: TensorSpec, value: np.ndarray, item: ItemInfo) -> Any:
        from modhub.predict.draw import image_of

        return self._png(spec, image_of(value, spec.layout, spec.value_range), item)

    def _png(self, spec: TensorSpec, picture: Any, item: ItemInfo) -> Any:
        """The PNG of ``picture``: its path relative to the Parquet's folder, or its bytes."""
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        if self.out is None:
            return buffer.getvalue()
        folder = self.out.parent / f"{self.out.name}.{spec.name}"
        folder.mkdir(parents=True, exist_ok=True)
        name = self._file_name(spec.name, item.key)
        (folder / name).write_bytes(buffer.getvalue())
        return f"{folder.name}/{name}"

    def _file_name(self, output: str, key: str) -> str:
        stem = _UNSAFE.sub("_", key.rsplit(".", 1)[0] if "." in key else key).strip("._") or "item"
        name, n = f"{stem}.png", 1
        while (output, name) in self._used_names:
            n += 1
            name = f"{stem}-{n}.png"
        self._used_names.add((output, name))
        return name


def _mask_rank(spec: TensorSpec) -> int:
    """The rank of one row of a mask output with its size-1 dimensions left out."""
    return sum(1 for d in spec.shape[1:] if d != 1)


def _image_rank(spec: TensorSpec) -> int:
    """The rank of one row of an image output (its batch dimension left out)."""
    layout = spec.layout or ("NHWC" if len(spec.shape) == 4 else "HWC")
    if len(layout) != len(spec.shape) or spec.shape[layout.index("C")] != 3:
        return 0  # not an RGB picture: kept as arrays
    return len(spec.shape) - 1 if layout.startswith("N") else len(spec.shape)


def _size(spec: TensorSpec) -> int | None:
    """The number of values of one row of ``spec``, None when a dimension is dynamic."""
    total = 1
    for d in spec.shape[1:]:
        if not isinstance(d, int):
            return None
        total *= d
    return total


def _label_names(value: np.ndarray, names: list[str]) -> Any:
    if value.ndim == 0:
        i = int(value)
        return names[i] if 0 <= i < len(names) else str(i)
    return [_label_names(v, names) for v in value]


def _model_size(spec: TensorSpec, image: Any) -> tuple[int, int] | None:
    """(height, width) of the model's input frame; None when photos go in at their own size."""
    layout = spec.layout or ("NHWC" if len(spec.shape) == 4 else "HWC")
    if len(layout) != len(spec.shape):
        return None
    height, width = spec.shape[layout.index("H")], spec.shape[layout.index("W")]
    if isinstance(height, int) and isinstance(width, int):
        return (height, width)
    if image is not None:
        return (image.height, image.width)
    return None
