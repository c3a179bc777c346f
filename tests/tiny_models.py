"""Tiny models that tests export as modules. Loading must never need this file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


LABELS = ["ant", "bee", "cat", "dog", "eel"]
TEXTS = ["the cat sat on the mat", "a dog ran fast", "red car"]
IMAGE_TASKS = ("image-classification", "image-feature-vector")


def make_module(
    task: str,
    out: Path,
    *,
    model: nn.Module | None = None,
    seed: int = 0,
    classes: int = 5,
    license: str = "Apache-2.0",
    **options: Any,
) -> Path:
    """A tiny module for ``task`` made by ``modhub.export`` into ``out``: a TinyCNN (``classes``
    outputs, seeded with ``seed``, 32x32 inputs; an image classifier gets LABELS) or a
    TinyTextEncoder with its word-level tokenizer. ``options`` go to ``export`` as they are."""
    import modhub as hub

    example: Any
    torch.manual_seed(seed)
    if task in IMAGE_TASKS:
        model = model if model is not None else TinyCNN(classes=classes).eval()
        if task == "image-classification":
            options.setdefault("labels", LABELS[:classes])
        example = torch.rand(2, 3, 32, 32)
    elif task == "text-embedding":
        model = model if model is not None else TinyTextEncoder(vocab=len(WORDS) + 2).eval()
        # The tokenizer lives beside the module, not in it: export copies it in.
        src = out.parent / f"{out.name}-src"
        src.mkdir(parents=True, exist_ok=True)
        make_tokenizer(src / "tokenizer.json")
        options = {"tokenizer": src / "tokenizer.json", "max_length": 32, **options}
        example = TEXTS
    else:
        raise ValueError(f"no tiny model for task {task!r}: use one of {[*IMAGE_TASKS, 'text-embedding']}")
    return hub.export(model, example, out, task=task, license=license, **options)
