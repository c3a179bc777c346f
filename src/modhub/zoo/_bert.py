"""A small BERT encoder for sentence embeddings (all-MiniLM-L6-v2), loaded from safetensors.

It computes what sentence-transformers computes for this model: BERT with
token_type_ids all zero, masked mean pooling over the last layer, then L2
normalisation. HF ``transformers`` is not needed (and not imported).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        return cls.from_raw(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_raw(cls, raw: dict[str, Any], missing: int | None = None) -> BertConfig:
        """The fields of a parsed config.json; ``missing`` stands for absent ones (None: all required)."""
        fields = cls.__dataclass_fields__
        return cls(**{name: raw[name] if missing is None else raw.get(name, missing) for name in fields})


class _Embeddings(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # Single-segment input: every token_type_id is 0, so the graph needs no third input.
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)[None]
            + self.token_type_embeddings.weight[0]
        )
        return self.LayerNorm(x)


class _Layer(nn.Module):
    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attention_output = nn.Linear(h, h)
        self.attention_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(h, cfg.intermediate_size)
        self.output = nn.Linear(cfg.intermediate_size, h)
        self.output_norm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``x``: [batch * sequence, hidden], one row per token; ``bias``: [batch, 1 or heads,
        sequence, sequence], added to the attention scores (the padding mask, position bias).

        Tokens are rows of one matrix, so every linear layer is one matrix product with its
        bias (ONNX's Gemm in model.onnx); attention is one operator (ONNX's Attention at opset
        23: one onnxruntime kernel, no head-wise matmuls, scaling or softmax in between).
        """
        b, s, h = bias.shape[0], bias.shape[-1], x.shape[-1]

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, s, self.heads, h // self.heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x)), attn_mask=bias
        )
        x = self.attention_norm(x + self.attention_output(context.transpose(1, 2).reshape(b * s, h)))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


def encode_layers(layers: nn.ModuleList, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Run ``layers`` over embeddings ``x`` [batch, sequence, hidden]; ``bias`` broadcasts to
    [batch, heads, sequence, sequence] (given whole: the form onnxruntime's Attention accepts)."""
    b, s, h = x.shape
    bias = bias.expand(b, bias.shape[1], s, s)
    out = x.reshape(b * s, h)
    for layer in layers:
        out = layer(out, bias)
    return out.view(b, s, h)


class SentenceEncoder(nn.Module):
    """int64 input_ids, attention_mask [batch, sequence] -> L2-normalised embeddings [batch, hidden]."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.embeddings = _Embeddings(cfg)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.num_hidden_layers))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32)
        # Padding positions get the most negative float, as in HF's extended attention mask.
        mask_bias = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
        x = encode_layers(self.layers, self.embeddings(input_ids), mask_bias)
        weights = mask.unsqueeze(-1)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def _hf_name(name: str) -> str:
    """Our parameter name -> the name in a HF BertModel checkpoint."""
    if name.startswith("embeddings."):
        return name
    _, index, rest = name.split(".", 2)
    prefix = f"encoder.layer.{index}."
    table = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output.LayerNorm",
        "intermediate": "intermediate.dense",
        "output": "output.dense",
        "output_norm": "output.LayerNorm",
    }
    module, param = rest.split(".")
    return prefix + table[module] + "." + param


def load_sentence_encoder(model_dir: Path) -> SentenceEncoder:
    from safetensors.torch import load_file

    cfg = BertConfig.from_file(model_dir / "config.json")
    model = SentenceEncoder(cfg)
    tensors = load_file(str(model_dir / "model.safetensors"))
    model.load_state_dict({name: tensors[_hf_name(name)] for name in model.state_dict()})
    return model.eval()
