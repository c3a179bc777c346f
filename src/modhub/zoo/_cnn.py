"""Inverted-residual CNNs (EfficientNet-Lite, MobileNetV2) built from their own state dicts.

Both families are a stem convolution, a chain of inverted-residual blocks
(optional 1x1 expansion, depthwise kxk, 1x1 linear projection, each with
BatchNorm, ReLU6 after all but the projection) and a 1x1 head convolution to
1280 channels, average-pooled into a linear classifier. The state dict fixes
every block's channels, kernel size and whether it expands; only the strides
and the padding convention are not in the weights, so they come from the
family (:class:`CnnSpec`). Loading is strict: every tensor of the checkpoint is
matched to a parameter of the same shape, in order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from modhub.errors import ZooError

_BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class CnnSpec:
    """What the weights do not say about the architecture."""

    # Stride of the first block of each stage; a stage starts where the block output width changes.
    stage_strides: tuple[int, ...]
    # TensorFlow "SAME" padding (EfficientNet-Lite, trained in TF) or PyTorch's symmetric k // 2.
    same_padding: bool
    bn_eps: float


EFFICIENTNET_LITE = CnnSpec(stage_strides=(1, 2, 2, 2, 1, 2, 1), same_padding=True, bn_eps=1e-3)
MOBILENET_V2 = CnnSpec(stage_strides=(1, 2, 2, 2, 1, 2, 1), same_padding=False, bn_eps=1e-5)


class ConvBN(nn.Module):
    def __init__(
        self, weight_shape: torch.Size, stride: int, spec: CnnSpec, *, act: bool, depthwise: bool
    ) -> None:
        super().__init__()
        cout, cin_per_group, k, _ = weight_shape
        groups = cout if depthwise else 1
        self.kernel, self.stride = k, stride
        # TF SAME with stride 1 and an odd kernel is symmetric: let the convolution pad.
        self.pad_in_forward = spec.same_padding and stride > 1
        padding = 0 if self.pad_in_forward else k // 2
        self.conv = nn.Conv2d(cin_per_group * groups, cout, k, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=spec.bn_eps)
        self.act = nn.ReLU6() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad_in_forward:
            # TF "SAME": output = ceil(input / stride), the extra padding goes right/bottom.
            pads = []
            for size in (x.shape[-1], x.shape[-2]):
                total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return self.act(self.bn(self.conv(x)))


class Block(nn.Module):
    def __init__(self, convs: list[torch.Size], stride: int, spec: CnnSpec) -> None:
        super().__init__()
        *expand, depthwise, project = convs
        self.expand = ConvBN(expand[0], 1, spec, act=True, depthwise=False) if expand else None
        self.depthwise = ConvBN(depthwise, stride, spec, act=True, depthwise=True)
        self.project = ConvBN(project, 1, spec, act=False, depthwise=False)
        cin = expand[0][1] if expand else depthwise[0]
        self.residual = stride == 1 and cin == project[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class InvertedResidualNet(nn.Module):
    """``features(x)`` -> [B, 1280, h, w]; ``forward(x)`` -> ImageNet logits."""

    def __init__(self, groups: list[list[torch.Size]], classes: int, spec: CnnSpec) -> None:
        super().__init__()
        stem, *blocks, head = groups
        self.stem = ConvBN(stem[0], 2, spec, act=True, depthwise=False)
        layers, width, stage = [], stem[0][0], -1
        for convs in blocks:
            out = convs[-1][0]
            first = stage < 0 or out != width
            if first:
                stage += 1
                if stage >= len(spec.stage_strides):
                    raise ZooError(
                        f"the checkpoint has more stages than the {len(spec.stage_strides)} expected"
                    )
            layers.append(Block(convs, spec.stage_strides[stage] if first else 1, spec))
            width = out
        self.blocks = nn.Sequential(*layers)
        self.head = ConvBN(head[0], 1, spec, act=True, depthwise=False)
        self.classifier = nn.Linear(head[0][0], classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def _conv_groups(state: Mapping[str, torch.Tensor]) -> tuple[list[list[torch.Size]], int]:
    """Conv weight shapes grouped per stem / block / head, and the number of classes."""
    groups: dict[str, list[torch.Size]] = {}
    linear = [v for v in state.values() if v.dim() == 2]
    for key, value in state.items():
        if value.dim() != 4:
            continue
        parts = key.split(".")
        # lukemelas: _conv_stem, _blocks.N._*, _conv_head; torchvision: features.N.*
        owner = ".".join(parts[:2]) if parts[0] in ("_blocks", "features") else parts[0]
        groups.setdefault(owner, []).append(value.shape)
    if len(linear) != 1 or len(groups) < 3:
        raise ZooError("the checkpoint is not an EfficientNet-Lite / MobileNetV2 ImageNet classifier")
    return list(groups.values()), linear[0].shape[0]


def load_inverted_residual_net(state: Mapping[str, torch.Tensor], spec: CnnSpec) -> InvertedResidualNet:
    groups, classes = _conv_groups(state)
    model = InvertedResidualNet(groups, classes, spec)
    target = model.state_dict()
    source = list(state.values())
    # Same tensors in the same order (conv, its BatchNorm, ..., classifier); only names differ.
    if len(source) != len(target) or any(
        a.shape != b.shape for a, b in zip(source, target.values(), strict=True)
    ):
        raise ZooError(
            "the checkpoint's tensors do not match the architecture built from it, tensor by tensor"
        )
    model.load_state_dict(dict(zip(target, source, strict=True)))
    return model.eval()
