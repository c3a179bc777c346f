"""A tensor spec in words: what ``modhub show``, the module page and call errors print.

One wording for a signature's tensors wherever they are shown; the manifest itself
(:mod:`modhub.format.manifest`) only holds the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from modhub.format.manifest import Agreement, Manifest, TensorSpec

__all__ = [
    "VariantSummary",
    "agreement_text",
    "describe_spec",
    "describe_variants",
    "meaning_parts",
    "shape_text",
]

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


@dataclass(frozen=True)
class VariantSummary:
    """One reduced-precision variant as ``modhub show`` and the module page list it."""

    precision: str
    method: str
    path: str
    # Bytes of the variant's files (graphs and their data).
    size: int
    agreement: Agreement
    # The agreement in words (:func:`agreement_text`).
    agreement_text: str


def agreement_text(agreement: Agreement) -> str:
    """``cosine to the exact graph: mean 0.9991, minimum 0.9950 over 64 samples (probe)``."""
    if agreement.metric == "cosine":
        low = "" if agreement.minimum is None else f", minimum {agreement.minimum:.4f}"
        what = f"cosine to the exact graph: mean {agreement.mean:.4f}{low}"
    else:
        what = f"top-1 agreement with the exact graph: {agreement.mean * 100:.1f}%"
    return (
        f"{what} over {agreement.samples} samples ({agreement.probe}); "
        f"largest difference {agreement.max_abs_diff:.3g}"
    )


def describe_variants(manifest: Manifest) -> list[VariantSummary]:
    """The module's variants, by precision, with their size and agreement."""
    sizes = {entry.path: entry.size for entry in manifest.files}
    return [
        VariantSummary(
            precision=precision,
            method=variant.method,
            path=variant.path,
            size=sum(sizes[path] for path in manifest.variant_files(precision)),
            agreement=variant.agreement,
            agreement_text=agreement_text(variant.agreement),
        )
        for precision, variant in sorted((manifest.variants or {}).items())
    ]
