"""Torch side of the text starters: MiniLM (own BERT encoder) and GloVe (word-vector mean)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from modhub.errors import ZooError
from modhub.zoo import packages
from modhub.zoo.cards import handle_of
from modhub.zoo.text import GLOVE_MAX_LENGTH, MINILM_MAX_LENGTH

if TYPE_CHECKING:
    from modhub.zoo.mpnet import MPNetStarter
    from modhub.zoo.text import GloveStarter, MiniLMStarter

# Used to trace the graph; the exporter adds its own. The long one (> 128 word
# pieces) makes sure the 256-token limit is what the graph is traced with.
EXAMPLE_TEXTS = (
    "A man is eating food.",
    "The cat sat on the mat.",
    " ".join(["Stock markets fell sharply after the central bank raised interest rates again."] * 12),
)

PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
# Id of the first real word: 0 is [PAD], 1 is [UNK].
FIRST_WORD_ID = 2
# GloVe's (Stanford PTB-style) tokens: ellipsis and dashes, abbreviations such as u.s.,
# clitics split off (do|n't, economy|'s), numbers and hyphenated words kept whole,
# every other non-space character on its own.
GLOVE_TOKEN_PATTERN = (
    r"\.\.\.|--|(?:\p{L}\.){2,}|\p{L}+(?=n't\b)|n't\b|'(?:s|re|ve|m|ll|d)\b"
    r"|[\p{L}\p{N}]+(?:[.,\-][\p{L}\p{N}]+)*|\S"
)


def export_text_starter(
    starter: MiniLMStarter | GloveStarter | MPNetStarter,
    model: nn.Module,
    out_dir: Path,
    *,
    license: str,
    tokenizer: Any,
    max_length: int,
    pad_id: int,
    metadata: dict[str, Any],
    examples: tuple[str, ...] = EXAMPLE_TEXTS,
    onnx: bool = True,
) -> Path:
    """Export a text starter as every one is: traced on ``examples``, a batch padded to its longest
    text, token ids and attention mask into the graph, fine-tunable, replacing ``out_dir``."""
    from modhub.exporting.pytorch import export

    return export(
        model,
        list(examples),
        out_dir,
        task=starter.task,
        license=license,
        tokenizer=tokenizer,
        max_length=max_length,
        padding="longest",
        pad_id=pad_id,
        graph_inputs=("input_ids", "attention_mask"),
        metadata=metadata,
        card=starter.card(),
        name=handle_of(starter.name),
        fine_tunable=True,
        onnx=onnx,
        overwrite=True,
    )


def minilm_dir() -> Path:
    return packages.MINILM_L6.path("model")


def build_minilm(starter: MiniLMStarter, out_dir: Path) -> Path:
    from modhub.zoo._bert import load_sentence_encoder

    model_dir = minilm_dir()
    return export_text_starter(
        starter,
        load_sentence_encoder(model_dir),
        out_dir,
        license="Apache-2.0",
        tokenizer=model_dir / "tokenizer.json",
        max_length=MINILM_MAX_LENGTH,
        pad_id=0,
        metadata={
            "title": "all-MiniLM-L6-v2 sentence embedding",
            "description": starter.summary,
            "architecture": "MiniLM-L6-H384 (BERT, 6 layers, 12 heads, 384 hidden) + mean pooling + L2 norm",
            "dataset": "1B+ sentence pairs (sentence-transformers training data)",
            "tags": ["text", "sentence-embedding", "english", "bert", "minilm", "semantic-search"],
            "source": packages.MINILM_L6.source("model/model.safetensors, model/tokenizer.json"),
            "extra": {"dimension": 384, "max_length": MINILM_MAX_LENGTH, "normalized": True},
        },
    )


class WordVectorMean(nn.Module):
    """Mean of the vectors of known words; [PAD] and [UNK] are masked out; no known word -> 0."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.embeddings = nn.Embedding.from_pretrained(table, freeze=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        known = ((attention_mask > 0) & (input_ids >= FIRST_WORD_ID)).to(torch.float32).unsqueeze(-1)
        total = (self.embeddings(input_ids) * known).sum(1)
        return total / known.sum(1).clamp(min=1.0)


def glove_files() -> tuple[Path, Path]:
    data = packages.GLOVE_6B_50D.path("data")
    return data / "glove_6B_index.parquet", data / "glove_6B_50d_emb.npy"


def glove_words(index_file: Path) -> list[str]:
    import pyarrow.parquet as pq

    table = pq.read_table(index_file)
    words = table.column(0).to_pylist()
    if len(set(words)) != len(words) or any(not isinstance(w, str) or not w for w in words):
        raise ZooError(f"{index_file} must list distinct non-empty words", path=index_file)
    return words


def glove_tokenizer(words: list[str]) -> Any:
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    vocab = {PAD_TOKEN: 0, UNK_TOKEN: 1}
    vocab.update((word, i) for i, word in enumerate(words, start=FIRST_WORD_ID))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # invert=True: the pattern describes the tokens; the text between them (spaces) is dropped.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(
        Regex(GLOVE_TOKEN_PATTERN), behavior="removed", invert=True
    )
    return tokenizer


def glove_table(vectors_file: Path, words: int) -> torch.Tensor:
    # Memory-mapped: the 80 MB table is copied once, into the tensor with the two zero rows.
    vectors = np.load(vectors_file, mmap_mode="r")
    if vectors.ndim != 2 or vectors.shape[0] != words or vectors.dtype != np.float32:
        raise ZooError(
            f"{vectors_file} holds {vectors.shape} {vectors.dtype}, expected ({words}, D) float32",
            path=vectors_file,
        )
    table = torch.zeros(words + FIRST_WORD_ID, vectors.shape[1], dtype=torch.float32)
    table[FIRST_WORD_ID:] = torch.from_numpy(np.ascontiguousarray(vectors))
    return table


def build_glove_model() -> tuple[WordVectorMean, Any]:
    index_file, vectors_file = glove_files()
    words = glove_words(index_file)
    return WordVectorMean(glove_table(vectors_file, len(words))).eval(), glove_tokenizer(words)


def build_glove(starter: GloveStarter, out_dir: Path) -> Path:
    model, tokenizer = build_glove_model()
    dim = model.embeddings.embedding_dim
    return export_text_starter(
        starter,
        model,
        out_dir,
        license="PDDL-1.0",
        tokenizer=tokenizer,
        max_length=GLOVE_MAX_LENGTH,
        pad_id=0,
        metadata={
            "title": "GloVe 6B 50d text embedding",
            "description": starter.summary,
            "architecture": "word-level lookup (400,000 x 50) + mean of known words",
            "dataset": "Wikipedia 2014 + Gigaword 5 (6B tokens)",
            "tags": ["text", "word-embedding", "english", "glove", "bag-of-words"],
            "source": packages.GLOVE_6B_50D.source("data/glove_6B_50d_emb.npy, data/glove_6B_index.parquet"),
            "extra": {
                "dimension": dim,
                "vocabulary": model.embeddings.num_embeddings - FIRST_WORD_ID,
                "combiner": "mean",
                "oov": "ignored ([UNK] masked out)",
            },
        },
    )
