"""Torch side of the image starters: load the real weights, wrap with normalisation, export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from modhub.errors import ZooError
from modhub.zoo import packages
from modhub.zoo._cnn import (
    EFFICIENTNET_LITE,
    MOBILENET_V2,
    CnnSpec,
    InvertedResidualNet,
    load_inverted_residual_net,
)
from modhub.zoo.cards import handle_of

if TYPE_CHECKING:
    from modhub.zoo.image import CnnFamily, CnnStarter

ARCHITECTURES: dict[str, CnnSpec] = {"efficientnet-lite": EFFICIENTNET_LITE, "mobilenet-v2": MOBILENET_V2}


class ImageModel(nn.Module):
    """RGB in [0, 1] -> normalise -> CNN body -> global average pool [-> linear classifier]."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        body: InvertedResidualNet,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        classifier: nn.Linear | None,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.body = body
        self.classifier = classifier

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = (images - self.mean) / self.std
        return self.body.features(x).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        return features if self.classifier is None else self.classifier(features)


def load_body(family: CnnFamily) -> InvertedResidualNet:
    """The network with the package's ImageNet weights."""
    state = torch.load(family.weights.path(family.weights_file), map_location="cpu", weights_only=True)
    return load_inverted_residual_net(state, ARCHITECTURES[family.arch])


def build_model(family: CnnFamily, *, classify: bool) -> ImageModel:
    body = load_body(family)
    classifier = body.classifier if classify else None
    # features() does not use the body's own classifier; keep each weight in one place.
    body.classifier = None  # type: ignore[assignment]
    return ImageModel(body, family.mean, family.std, classifier).eval()


def imagenet_labels() -> list[str]:
    """1000 readable ImageNet class names, in the usual class-index order (timm's data files)."""
    info = packages.TIMM.path("data", "_info")
    synsets = (info / "imagenet_synsets.txt").read_text(encoding="utf-8").split()
    lemmas = dict(
        line.split("\t", 1)
        for line in (info / "imagenet_synset_to_lemma.txt").read_text(encoding="utf-8").splitlines()
        if "\t" in line
    )
    if len(synsets) != 1000:
        raise ZooError(f"timm's imagenet_synsets.txt has {len(synsets)} lines, expected 1000")
    return [lemmas[s].split(",")[0].strip() for s in synsets]


def example_images(size: int) -> torch.Tensor:
    # Fixed inputs keep the export reproducible.
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, size, size, generator=generator)


def build_cnn(starter: CnnStarter, out_dir: Path) -> Path:
    from modhub.exporting.pytorch import export

    family = starter.family
    classify = starter.task == "image-classification"
    model = build_model(family, classify=classify)
    return export(
        model,
        example_images(family.image_size),
        out_dir,
        task=starter.task,
        license=family.license,
        labels=imagenet_labels() if classify else None,
        mean=family.mean,
        std=family.std,
        metadata={
            "title": f"{family.title} {'classifier' if classify else 'feature vector'}",
            "description": starter.summary,
            "architecture": f"{family.title}: inverted-residual CNN, ReLU6, {family.features}-d head",
            "dataset": "ImageNet-1k (ILSVRC-2012)",
            "tags": ["image", "imagenet", family.key, "cnn", "mobile"],
            "source": family.weights.source(family.weights_file),
            "extra": {"image_size": family.image_size, "features": family.features},
        },
        card=starter.card(),
        name=handle_of(starter.name),
        fine_tunable=True,
        onnx=True,
        overwrite=True,
    )
