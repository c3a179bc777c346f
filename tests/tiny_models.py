"""Tiny models that tests export as modules. Loading must never need this file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    """Conv + BatchNorm + dropout + linear: exercises every mode-dependent op."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(8, classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(images - self.mean)))
        return self.head(self.drop(x.mean((2, 3))))


class TinyTextEncoder(nn.Module):
    """Embedding + one transformer layer + masked mean pooling, dynamic sequence length."""

    def __init__(self, vocab: int, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(64, dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True, dropout=0.1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.embed(input_ids) + self.pos(positions)
        attended, _ = self.attn(x, x, x, key_padding_mask=attention_mask == 0, need_weights=False)
        x = self.norm(x + attended)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return nn.functional.normalize(pooled, dim=-1)


WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "ran",
    "fast",
    "slow",
    "red",
    "blue",
    "house",
    "tree",
    "car",
]


def make_tokenizer(path: Path):  # type: ignore[no-untyped-def]
    """A word-level ``tokenizers`` tokenizer over WORDS, written to ``path``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return tok
