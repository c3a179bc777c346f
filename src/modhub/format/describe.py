"""A tensor spec in words: what ``modhub show``, the module page and call errors print.

One wording for a signature's tensors wherever they are shown; the manifest itself
(:mod:`modhub.format.manifest`) only holds the data.
"""

from __future__ import annotations

from collections.abc import Iterable

from modhub.format.manifest import TensorSpec

__all__ = ["describe_spec", "meaning_parts", "shape_text"]

# A keypoints output names its points; past this many, the rest is elided.
_MAX_KEYPOINT_NAMES = 20


def shape_text(shape: Iterable[object]) -> str:
    """``[batch, 3, 224, 224]``: a shape with its named and fixed dimensions."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def describe_spec(spec: TensorSpec) -> str:
    """``float32 [batch, 3, 224, 224]``: a spec's dtype and shape as messages show them."""
    return f"{spec.dtype} {shape_text(spec.shape)}"


def meaning_parts(spec: TensorSpec) -> list[str]:
    """What a tensor holds beyond dtype and shape, one phrase per meaning the manifest gives
    (kind, layout and colour, value range, sample rate, boxes, keypoints, labels); the free-text
    ``description`` is left to the caller, which shows it where it fits."""
    parts: list[str] = []
    if spec.kind:
        parts.append(spec.kind)
    if spec.kind == "image":
        parts.append(f"{spec.color or 'RGB'}, {spec.layout or 'NCHW'}")
    else:
        parts += [p for p in (spec.layout, spec.color) if p]
    if spec.value_range is not None:
        parts.append(f"values in [{spec.value_range[0]:g}, {spec.value_range[1]:g}]")
    if spec.sample_rate:
        parts.append(f"{spec.sample_rate} Hz")
    if spec.frame_hop:
        parts.append(f"a frame every {spec.frame_hop:g} s")
    if spec.box_format:
        parts.append(f"boxes {spec.box_format}" + (", normalized" if spec.normalized else ""))
    if spec.keypoints:
        names = ", ".join(spec.keypoints[:_MAX_KEYPOINT_NAMES])
        more = ", ..." if len(spec.keypoints) > _MAX_KEYPOINT_NAMES else ""
        parts.append(f"{len(spec.keypoints)} keypoints: {names}{more}")
    if spec.labels:
        parts.append(f"labels in {spec.labels}")
    return parts
