"""Small models whose exported graphs cover what modhub's zoo exports.

A CNN with BatchNorm and dropout, a BERT-like text encoder (embeddings,
attention mask, multi-head attention by matmul/softmax, GELU, masked mean
pooling, L2 normalisation), an encoder built on ``nn.MultiheadAttention``,
a model doing SymInt shape arithmetic, and an embedding bag (GloVe-style).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

BATCH = torch.export.Dim("batch", min=1, max=1024)
SEQ = torch.export.Dim("sequence", min=1, max=64)


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(8, 5)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(images - self.mean)))
        return self.fc(self.drop(F.adaptive_avg_pool2d(x, 1).flatten(1)))


class BertLike(nn.Module):
    def __init__(
        self, vocab: int = 100, dim: int = 32, heads: int = 4, layers: int = 2, max_len: int = 64
    ) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.typ = nn.Embedding(2, dim)
        self.norm = nn.LayerNorm(dim)
        self.heads = heads
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "q": nn.Linear(dim, dim),
                    "k": nn.Linear(dim, dim),
                    "v": nn.Linear(dim, dim),
                    "o": nn.Linear(dim, dim),
                    "ln1": nn.LayerNorm(dim),
                    "f1": nn.Linear(dim, 4 * dim),
                    "f2": nn.Linear(4 * dim, dim),
                    "ln2": nn.LayerNorm(dim),
                }
            )
            for _ in range(layers)
        )
        self.register_buffer("position_ids", torch.arange(max_len)[None], persistent=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        b, s = input_ids.shape
        h = self.tok(input_ids) + self.pos(self.position_ids[:, :s]) + self.typ(torch.zeros_like(input_ids))
        h = self.norm(h)
        extended = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        head_dim = h.shape[-1] // self.heads
        for blk in self.blocks:

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(b, s, self.heads, head_dim).permute(0, 2, 1, 3)

            q, k, v = split(blk["q"](h)), split(blk["k"](h)), split(blk["v"](h))
            att = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim) + extended, dim=-1)
            ctx = (att @ v).permute(0, 2, 1, 3).contiguous().view(b, s, -1)
            h = blk["ln1"](h + blk["o"](ctx))
            h = blk["ln2"](h + blk["f2"](F.gelu(blk["f1"](h))))
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


class MHAEncoder(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(64, dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True, dropout=0.1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        attended, _ = self.attn(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
        x = self.norm(x + attended)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        return F.normalize((x * mask).sum(1) / mask.sum(1).clamp(min=1.0), dim=-1)


class ShapeArithmetic(nn.Module):
    """view/reshape with SymInt products, arange on a dynamic size, floor division, cat, expand."""

    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(12)
        self.fc = nn.Linear(12, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], x.shape[1]
        y = F.gelu(self.fc(self.ln(x + torch.arange(s, device=x.device).to(x.dtype)[None, :, None])))
        y = y.reshape(b, s, 3, 4).transpose(1, 2).reshape(b * 3, s, 4)
        y = F.softmax(y, dim=-1).view(b, 3, s, 4).permute(0, 2, 1, 3).reshape(b, s, -1)
        flat = y.view(y.shape[0], -1)
        h = torch.cat([flat[:, : s * 6], flat[:, s * 6 :]], dim=1).view(b, s, 12)
        padded = torch.cat([h, torch.zeros(b, s // 2 + 1, 12)], dim=1)  # floordiv, add
        scale = torch.full((b, max(s, 4)), 1.0).sum(1, keepdim=True)  # torch.sym_max
        m = torch.ones(b, s, 1).expand(b, s, 12)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9) + padded.mean(1) / scale
        return F.normalize(pooled, dim=-1)


class WordBag(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.EmbeddingBag(50, 8, mode="mean")

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.emb(ids, offsets), dim=-1)


def text_inputs(batch: int = 2, seq: int = 7, vocab: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, vocab, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[-1, seq - 2 :] = 0
    return ids, mask


def export_archive(model: nn.Module, args: tuple, dynamic: tuple, path: Path) -> Path:
    """Export like modhub does: eval mode, dynamic dims, sample inputs stripped."""
    program = torch.export.export(model.eval(), args, dynamic_shapes=dynamic, strict=False)
    program._example_inputs = None
    torch.export.save(program, path)
    return path


# name -> (model factory, example args, dynamic shapes)
CASES = {
    "cnn": (ConvNet, lambda: (torch.rand(2, 3, 16, 16),), ({0: BATCH},)),
    "bert-like": (BertLike, text_inputs, ({0: BATCH, 1: SEQ}, {0: BATCH, 1: SEQ})),
    "mha-encoder": (MHAEncoder, text_inputs, ({0: BATCH, 1: SEQ}, {0: BATCH, 1: SEQ})),
    "shape-arithmetic": (ShapeArithmetic, lambda: (torch.randn(2, 6, 12),), ({0: BATCH, 1: SEQ},)),
    "word-bag": (
        WordBag,
        lambda: (torch.randint(0, 50, (9,)), torch.tensor([0, 4])),
        ({0: torch.export.Dim("tokens", min=2, max=4096)}, {0: BATCH}),
    ),
}
