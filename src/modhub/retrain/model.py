"""The retrained classifier as one ``torch.nn.Module``: the module's graph and the new head.

Exported with ``modhub.export`` this becomes a single graph (backbone and head
together) that loads without modhub's retrain code.
"""

from __future__ import annotations

import torch
from torch import nn

from modhub.loading.layer import Layer

__all__ = ["ImageClassifier", "TextClassifier"]


class ImageClassifier(nn.Module):
    """images [B, 3, H, W] in [0, 1] → logits [B, C]."""

    def __init__(self, backbone: Layer, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # The graph directly, not Layer.forward: the input checks are the caller's job.
        return self.head(self.backbone.graph(images))


class TextClassifier(nn.Module):
    """The backbone's token tensors (input_ids, attention_mask, ...) → logits [B, C].

    The exported module re-uses the backbone's tokenizer and its settings, so
    it takes strings like the backbone did.
    """

    def __init__(self, backbone: Layer, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, *tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.graph(*tokens))
