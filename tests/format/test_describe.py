"""A tensor spec in words: one wording for ``modhub show``, the module page and messages."""

from __future__ import annotations

from modhub.format.describe import describe_spec, meaning_parts, shape_text
from modhub.format.manifest import TensorSpec


def test_dtype_and_shape_with_named_dimensions() -> None:
    spec = TensorSpec(name="images", dtype="float32", shape=("batch", 3, 224, 224))
    assert shape_text(spec.shape) == "[batch, 3, 224, 224]"
    assert describe_spec(spec) == "float32 [batch, 3, 224, 224]"
    assert meaning_parts(spec) == []


def test_every_meaning_in_one_phrase_each() -> None:
    image = TensorSpec(name="x", dtype="uint8", shape=(1, "h", "w", 3), kind="image", layout="NHWC")
    assert meaning_parts(image) == ["image", "RGB, NHWC"]  # the colour an image defaults to
    boxes = TensorSpec(
        name="boxes", dtype="float32", shape=("batch", 6, 4), box_format="yxyx", normalized=True
    )
    assert meaning_parts(boxes) == ["boxes yxyx, normalized"]
    scores = TensorSpec(
        name="scores",
        dtype="float32",
        shape=("batch", "frames"),
        value_range=(0, 1),
        frame_hop=0.032,
        labels="assets/labels.txt",
    )
    assert meaning_parts(scores) == [
        "values in [0, 1]",
        "a frame every 0.032 s",
        "labels in assets/labels.txt",
    ]


def test_a_long_keypoint_list_is_elided() -> None:
    names = tuple(f"p{i}" for i in range(25))
    spec = TensorSpec(name="k", dtype="float32", shape=(1, 25, 3), kind="keypoints", keypoints=names)
    (_, points) = meaning_parts(spec)
    assert points.startswith("25 keypoints: p0, p1") and points.endswith("p19, ...")
