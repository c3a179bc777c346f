"""Turning examples into a module's inputs: decoded (and augmented) images, or token tensors."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from modhub.errors import InputError
from modhub.loading.layer import Layer
from modhub.retrain.data import Example
from modhub.runtimes.images import PAD_FALLBACK, open_photo, photo_array

__all__ = ["ImageInputs", "Inputs", "TextInputs", "augment_images"]

# Decoded training images are kept in memory (uint8) up to this size, so
# fine-tuning does not decode every photo again each epoch.
MEMORY_LIMIT = 1 << 30


class Inputs(Protocol):
    """Builds the backbone graph's positional inputs for a list of examples."""

    # What the feature cache key must include besides the module itself.
    cache_params: dict[str, Any]

    def __call__(self, examples: list[Example], augment: bool = False) -> tuple[torch.Tensor, ...]: ...


class ImageInputs:
    """Photos decoded by ``modhub.runtimes.images`` with resize policy ``resize``: the code the
    exported module runs on photo inputs, so training and inference see the same pixels."""

    def __init__(self, layer: Layer, seed: int, resize: str = "crop") -> None:
        image = layer.manifest.preprocessing.image
        if image is None:  # the image contracts require it; a guard for hand-made manifests
            raise InputError(f"{layer.path} has no preprocessing.image (height, width) in modhub.json")
        self.height, self.width = image.height, image.width
        self.resize = resize
        self._fill = image.mean if image.mean is not None else PAD_FALLBACK
        self.cache_params = {
            "decoder": f"modhub.runtimes.images-{resize}",
            "height": self.height,
            "width": self.width,
        }
        self._decoded: dict[str, np.ndarray] = {}
        self._budget = MEMORY_LIMIT
        self._generator = torch.Generator().manual_seed(seed)

    def _decode(self, example: Example) -> np.ndarray:
        cached = self._decoded.get(example.key)
        if cached is not None:
            return cached
        assert example.path is not None  # image examples always have a path
        photo = open_photo(example.path.read_bytes())
        array = photo_array(photo, self.height, self.width, self.resize, self._fill).transpose(2, 0, 1)
        array = np.ascontiguousarray(array)
        if array.nbytes <= self._budget:
            self._decoded[example.key] = array
            self._budget -= array.nbytes
        return array

    def __call__(self, examples: list[Example], augment: bool = False) -> tuple[torch.Tensor, ...]:
        batch = torch.from_numpy(np.stack([self._decode(ex) for ex in examples])).float() / 255.0
        if augment:
            batch = augment_images(batch, self._generator)
        return (batch,)


def augment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and random crop (70-100% of the area, aspect 3:4-4:3), resized back."""
    _, _, height, width = images.shape
    out = torch.empty_like(images)
    for i, image in enumerate(images):
        if torch.rand((), generator=generator) < 0.5:
            image = image.flip(-1)
        area = float(torch.empty(()).uniform_(0.7, 1.0, generator=generator))
        aspect = float(torch.empty(()).uniform_(np.log(3 / 4), np.log(4 / 3), generator=generator).exp())
        h = min(height, max(1, round(height * (area / aspect) ** 0.5)))
        w = min(width, max(1, round(width * (area * aspect) ** 0.5)))
        top = int(torch.randint(0, height - h + 1, (), generator=generator))
        left = int(torch.randint(0, width - w + 1, (), generator=generator))
        crop = image[:, top : top + h, left : left + w].unsqueeze(0)
        out[i] = torch.nn.functional.interpolate(
            crop, size=(height, width), mode="bilinear", align_corners=False
        )[0]
    return out


class TextInputs:
    def __init__(self, layer: Layer) -> None:
        self._layer = layer
        self.cache_params = {"inputs": "texts"}  # tokenizer settings are in modhub.json already

    def __call__(self, examples: list[Example], augment: bool = False) -> tuple[torch.Tensor, ...]:
        del augment
        return self._layer._graph_args([ex.text or "" for ex in examples])
