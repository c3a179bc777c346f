"""Input preparation that runs inside a module call: tokenisation and input checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modhub.errors import InputError, ManifestError
from modhub.format.manifest import Manifest, TokenizerSpec


class TextEncoder:
    """Turns a list of strings into the graph's int64 [batch, sequence] inputs.

    The tokenizer file's own padding/truncation settings are replaced by the
    manifest's ``TokenizerSpec``, so the module behaves the same whatever the
    file carries.
    """

    def __init__(self, spec: TokenizerSpec, source: bytes | Path) -> None:
        """``source``: the verified bytes of the tokenizer file (or, at export, its path)."""
        from tokenizers import Tokenizer

        data = source.read_bytes() if isinstance(source, Path) else source
        try:
            tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ManifestError(f"cannot read tokenizer {spec.file}: {exc}", path=spec.file) from None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if spec.truncation:
            tokenizer.enable_truncation(max_length=spec.max_length)
        tokenizer.enable_padding(
            pad_id=spec.pad_id,
            length=spec.max_length if spec.padding == "max_length" else None,
        )
        self.spec = spec
        self.tokenizer = tokenizer

    def __call__(self, texts: Any) -> tuple[torch.Tensor, ...]:
        batch = check_texts(texts)
        encodings = self.tokenizer.encode_batch(batch)
        fields = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        tensors = []
        for name in self.spec.graph_inputs:
            array = np.asarray(fields[name], dtype=np.int64)
            if array.ndim != 2 or array.shape[1] == 0:
                # Every text was empty and the tokenizer added no special tokens.
                array = np.zeros((len(batch), 1), dtype=np.int64)
                if name == "input_ids":
                    array[:] = self.spec.pad_id
            tensors.append(torch.from_numpy(array))
        return tuple(tensors)


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str):
        raise InputError('text modules take a batch: pass a list of strings, e.g. module(["hello world"])')
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    if not isinstance(texts, Sequence) or not texts:
        raise InputError(f"expected a non-empty list of strings, got {type(texts).__name__}")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        raise InputError(f"expected a list of strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    return list(texts)


def check_images(images: Any, manifest: Manifest) -> torch.Tensor:
    """Accept a float32 tensor or array [B, 3, H, W] with values in [0, 1]; refuse anything else clearly."""
    spec = manifest.default_signature.inputs[0]
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise InputError(f"expected a float32 tensor [batch, 3, H, W], got {type(images).__name__}")
    expected = tuple(spec.shape)
    if images.dim() == 3:
        raise InputError(
            f"expected a batch of images {list(expected)}, got one image {list(images.shape)}: "
            "use images.unsqueeze(0)"
        )
    if images.dim() != len(expected) or any(
        isinstance(want, int) and got != want for got, want in zip(images.shape, expected, strict=True)
    ):
        hint = ""
        if images.dim() == 4 and images.shape[-1] == 3:
            hint = " (channels last? use images.permute(0, 3, 1, 2))"
        raise InputError(f"expected images of shape {list(expected)}, got {list(images.shape)}{hint}")
    if images.dtype != torch.float32:
        hint = " (uint8 pixels? use images.float() / 255)" if images.dtype == torch.uint8 else ""
        raise InputError(f"expected float32 images in [0, 1], got {images.dtype}{hint}")
    return images
