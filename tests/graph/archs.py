"""Tiny versions of the architectures people publish, for the operator allow-list.

Same layers as the real families (no weights, small sizes): each is exported
the way ``modhub.export`` does and must load through ``modhub.graph`` and
match eager output. timm/torchvision do not import here, so the blocks are
written out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

BATCH = torch.export.Dim("batch", min=1, max=1024)
SEQ = torch.export.Dim("sequence", min=2, max=64)


def _images(size: int = 16) -> tuple[torch.Tensor, ...]:
    return (torch.rand(2, 3, size, size),)


def _tokens(vocab: int = 40, seq: int = 7) -> tuple[torch.Tensor, ...]:
    ids = torch.randint(0, vocab, (2, seq))
    mask = torch.ones(2, seq, dtype=torch.long)
    mask[-1, -2:] = 0
    return ids, mask


def _sequence(features: int = 8, seq: int = 7) -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, seq, features),)


class VGGish(nn.Module):
    """Plain conv stack: conv, ReLU, max pool, dropout, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.down(x))


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layers = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 16, 2))
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.pool(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Bottleneck(nn.Module):
    """ResNet-50-style 1x1/3x3/1x1 with grouped 3x3 (ResNeXt)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.c = nn.Sequential(nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.c(self.b(self.a(x))))


class ResNeXtTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1)
        self.block = Bottleneck(16)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.block(self.stem(x)).mean((2, 3)))


class InvertedResidual(nn.Module):
    """MobileNetV2: expand 1x1, depthwise 3x3, project 1x1, ReLU6, residual."""

    def __init__(self, c: int, expand: int = 4) -> None:
        super().__init__()
        h = c * expand
        self.body = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(inplace=True),
            nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class MobileNetV2Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(c, max(1, c // 4), 1)
        self.expand = nn.Conv2d(max(1, c // 4), c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class EfficientNetTiny(nn.Module):
    """MBConv with SiLU (swish), squeeze-and-excitation, hardswish/hardsigmoid (MobileNetV3)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False), nn.BatchNorm2d(8), nn.SiLU())
        self.se = SqueezeExcite(8)
        self.proj = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.v3 = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Hardswish(), nn.Conv2d(8, 8, 1), nn.Hardsigmoid())
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.proj(self.se(self.dw(x)))
        x = x * self.v3(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Norms(nn.Module):
    """Group, instance and layer norm over feature maps; average pool; bilinear/nearest interpolation."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.ln = nn.LayerNorm([8, 8, 8])
        self.pool = nn.AvgPool2d(2)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.gn(self.conv(x)), 0.1)
        y = F.elu(self.inorm(y))
        y = self.ln(self.pool(y))
        up = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
        near = F.interpolate(y, size=(16, 16), mode="nearest")
        return self.out(up + near).flatten(1)


class UNetTiny(nn.Module):
    """Encoder/decoder with skip concatenation and a transposed convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU())
        self.mid = nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.Tanh())
        self.up = nn.ConvTranspose2d(8, 8, 2, 2)
        self.out = nn.Conv2d(11, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.mid(self.down(x)))
        return F.log_softmax(self.out(torch.cat([x, y], dim=1)), dim=1).mean((2, 3))


class ViTTiny(nn.Module):
    """Patch embedding, class token, learned positions, pre-norm blocks with SDPA, GELU MLP."""

    def __init__(self, dim: int = 16, heads: int = 2, patch: int = 4, size: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        b, n, d = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp(self.ln2(x))
        return self.head(self.norm(x)[:, 0])


class TransformerEncoderText(nn.Module):
    """nn.TransformerEncoder (post-norm, ReLU) over embeddings with a padding mask; mean pooling."""

    def __init__(self, vocab: int = 40, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(ids), src_key_padding_mask=mask == 0)
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class PreNormGeluEncoder(nn.Module):
    """TransformerEncoderLayer with norm_first and GELU (BERT/ViT-style), causal SDPA."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.inp = nn.Linear(8, dim)
        self.layer = nn.TransformerEncoderLayer(
            dim, 4, 32, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layer(self.inp(x))
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], is_causal=True)
        return out.squeeze(1).amax(1)


class MultiheadAttentionPool(nn.Module):
    """nn.MultiheadAttention with attention weights, a learned query (attention pooling)."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(1, 1, dim))
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, weights = self.attn(self.query.expand(x.shape[0], -1, -1), x, x)
        return torch.cat([pooled.squeeze(1), weights.squeeze(1).max(-1, keepdim=True).values], dim=-1)


class LSTMTagger(nn.Module):
    """Embedding + bidirectional two-layer LSTM, last step and max over time."""

    def __init__(self, vocab: int = 40) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, 8, num_layers=2, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(ids) * mask.unsqueeze(-1).to(torch.float32))
        return self.fc(out[:, -1] + out.max(1).values)


class GRUModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(8, 12, batch_first=True)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.gru(x)
        return self.fc(torch.tanh(h[-1]) + out.mean(1))


class EmbeddingBagText(nn.Module):
    """Word-vector module (GloVe/NNLM style): embedding lookup, masked mean, L2 normalise."""

    def __init__(self, vocab: int = 40) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = (mask > 0).unsqueeze(-1)
        v = torch.where(m, self.embed(ids), torch.zeros((), dtype=torch.float32))
        s = v.sum(1) / m.sum(1).clamp(min=1).to(torch.float32)
        return F.normalize(s, p=2.0, dim=-1)


class MLPMixerTiny(nn.Module):
    """Token/channel mixing MLPs with layer norm; softplus, mish and softmax heads."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 8, 4, 4)
        self.ln = nn.LayerNorm(8)
        self.token = nn.Linear(16, 16)
        self.channel = nn.Sequential(nn.Linear(8, 16), nn.Mish(), nn.Linear(16, 8))
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2)  # [B, C, N]
        x = x + self.token(x)
        x = x.transpose(1, 2)
        x = x + self.channel(self.ln(x))
        return F.softmax(self.head(F.softplus(x).mean(1)), dim=-1)


class Conv1dAudio(nn.Module):
    """1-D convolutions, batch norm 1d, max/avg pool 1d, PReLU, sqrt/abs/clamp pointwise ops."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.act = nn.PReLU()
        self.pool = nn.MaxPool1d(2)
        self.c2 = nn.Conv1d(8, 4, 3, padding=1, dilation=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.act(self.bn(self.c1(x.transpose(1, 2)))))
        y = F.avg_pool1d(self.c2(y), 2)
        return (
            torch.sqrt(y.abs() + 1e-6).clamp(max=10.0).flatten(1).std(-1, keepdim=True)
            + y.mean((1, 2))[:, None]
        )


def _seq_even() -> tuple[torch.Tensor, ...]:
    return (torch.randn(2, 8, 8),)


# name -> (factory, example inputs, dynamic shapes); every model is in eval mode when exported.
ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], Callable[[], tuple[torch.Tensor, ...]], tuple]] = {
    "vgg": (VGGish, _images, ({0: BATCH},)),
    "resnet": (ResNetTiny, _images, ({0: BATCH},)),
    "resnext-grouped": (ResNeXtTiny, _images, ({0: BATCH},)),
    "mobilenet-v2": (MobileNetV2Tiny, _images, ({0: BATCH},)),
    "efficientnet-mobilenet-v3": (EfficientNetTiny, _images, ({0: BATCH},)),
    "norms-interpolate": (Norms, _images, ({0: BATCH},)),
    "unet": (UNetTiny, _images, ({0: BATCH},)),
    "vit": (ViTTiny, _images, ({0: BATCH},)),
    "mlp-mixer": (MLPMixerTiny, _images, ({0: BATCH},)),
    "transformer-encoder": (TransformerEncoderText, _tokens, ({0: BATCH, 1: SEQ}, {0: BATCH, 1: SEQ})),
    "pre-norm-gelu-sdpa": (PreNormGeluEncoder, _sequence, ({0: BATCH, 1: SEQ},)),
    "multihead-attention": (MultiheadAttentionPool, _sequence, ({0: BATCH, 1: SEQ},)),
    # Recurrent layers export with a fixed sequence length (torch.export specialises it).
    "lstm": (LSTMTagger, _tokens, ({0: BATCH}, {0: BATCH})),
    "gru": (GRUModel, _sequence, ({0: BATCH},)),
    "embedding-bag": (EmbeddingBagText, _tokens, ({0: BATCH, 1: SEQ}, {0: BATCH, 1: SEQ})),
    "conv1d": (Conv1dAudio, _seq_even, ({0: BATCH},)),
}
