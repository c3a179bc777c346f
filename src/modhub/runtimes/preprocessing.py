"""Input preparation that runs inside a module call: tokenisation and input checks.

Nothing here imports torch: the onnx runtime uses this module in processes
that never load torch. Batches are numpy arrays; ``TextEncoder.__call__``
(used by the torch runtime and ``Layer``) wraps them as tensors without copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modhub.errors import InputError, ManifestError
from modhub.format.manifest import ImagePreprocessing, Manifest, TokenizerSpec
from modhub.runtimes.tokenizer_guard import check_text_lengths, encode_or_input_error, is_panic

if TYPE_CHECKING:
    import torch


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
        except BaseException as exc:  # a bare Exception on bad JSON; a Rust panic is a BaseException
            if not (isinstance(exc, Exception) or is_panic(exc)):
                raise
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

    def encode(self, texts: Any) -> tuple[np.ndarray, ...]:
        """The graph inputs for ``texts`` as int64 numpy arrays, in graph input order."""
        batch = check_texts(texts)
        encodings = encode_or_input_error(self.tokenizer.encode_batch, batch, self.spec.file)
        fields = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        arrays = []
        for name in self.spec.graph_inputs:
            array = np.asarray(fields[name], dtype=np.int64)
            if array.ndim != 2 or array.shape[1] == 0:
                # Every text was empty and the tokenizer added no special tokens.
                array = np.zeros((len(batch), 1), dtype=np.int64)
                if name == "input_ids":
                    array[:] = self.spec.pad_id
            arrays.append(array)
        return tuple(arrays)

    def __call__(self, texts: Any) -> tuple[torch.Tensor, ...]:
        """As ``encode``, as torch tensors sharing the arrays' memory."""
        import torch

        return tuple(torch.from_numpy(array) for array in self.encode(texts))


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
    batch = list(texts)
    check_text_lengths(batch)
    return batch


def is_torch_tensor(value: Any) -> bool:
    """True for a ``torch.Tensor``, without importing torch (a tensor means torch is loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def check_images(images: Any, manifest: Manifest) -> Any:
    """The graph input for ``images``: float32 [B, 3, H, W] in [0, 1], a numpy array or a torch tensor.

    A float tensor or array is checked and returned unchanged (a tensor that carries
    gradients keeps them; each runtime converts to what its graph takes). Photos (PIL
    images, paths, bytes, uint8 arrays, lists of them) are converted by
    :func:`modhub.runtimes.images.prepare_images` with the module's resize policy, into numpy.
    """
    from modhub.runtimes.images import check_batch_shape, prepare_images

    spec = manifest.preprocessing.image
    if spec is None:
        expected = manifest.default_signature.inputs[0].shape
        spec = ImagePreprocessing(height=int(expected[2]), width=int(expected[3]))
    if is_torch_tensor(images):
        dtype = str(images.dtype).removeprefix("torch.")
        check_batch_shape(tuple(images.shape), dtype, (3, spec.height, spec.width))
        return images
    return prepare_images(images, spec)
