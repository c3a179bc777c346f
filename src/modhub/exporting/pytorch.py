"""Export a PyTorch model as a modhub module directory.

``export`` traces the model with ``torch.export`` in eval mode (dynamic batch,
and dynamic sequence length for text), strips what a module must not carry
(sample inputs, source stack traces), checks the result against the task's
contract, verifies that the saved program reproduces the model, and writes the
directory atomically: it appears complete or not at all.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from modhub.errors import ExportError, HubError
from modhub.format.atomic import atomic_directory
from modhub.format.manifest import (
    ASSETS_DIR,
    CARD_NAME,
    GRAPH_NAME,
    ONNX_NAME,
    ImagePreprocessing,
    Manifest,
    Metadata,
    Preprocessing,
    Signature,
    TensorSpec,
    TokenizerSpec,
    detect_formats,
    list_files,
    write_manifest,
)
from modhub.format.modelcard import render_card
from modhub.format.tasks import check_contract, get_contract
from modhub.format.verify import read_module_file
from modhub.runtimes.preprocessing import TextEncoder, check_texts

__all__ = ["export"]

# Largest batch the exported graph accepts; the bound only keeps shape guards finite.
MAX_BATCH = 1 << 16
# Sentences added to text examples so the sequence dimension is never 0/1-specialised.
_TEXT_PADDING_EXAMPLES = (
    "modhub export example sentence.",
    "Another, somewhat longer example sentence here.",
)
VERIFY_ATOL = 1e-5


def export(
    model: torch.nn.Module,
    example_inputs: Any,
    out_dir: str | os.PathLike[str],
    *,
    task: str,
    license: str,
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    tokenizer: str | os.PathLike[str] | Any | None = None,
    max_length: int | None = None,
    padding: str = "longest",
    pad_id: int = 0,
    graph_inputs: Sequence[str] = ("input_ids", "attention_mask"),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    resize: str = "crop",
    metadata: Metadata | Mapping[str, Any] | None = None,
    card: str | None = None,
    name: str | None = None,
    assets: Mapping[str, str | os.PathLike[str] | bytes] | None = None,
    fine_tunable: bool = True,
    onnx: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a module directory at ``out_dir`` and return its path.

    Image tasks: ``example_inputs`` is a float32 tensor [B, 3, H, W] with RGB in
    [0, 1]; normalisation (``mean``/``std``, recorded for the card) must happen
    inside ``model``; ``resize`` is how the module fits photo inputs to H x W
    (``"squash"``, ``"crop"`` or ``"pad"``, see ``modhub.runtimes.images``).
    Text tasks: ``example_inputs`` is a list of strings,
    ``tokenizer`` a ``tokenizers`` JSON file or ``tokenizers.Tokenizer``, and
    ``model`` takes the int64 tensors named by ``graph_inputs``.

    The model must return one tensor (or a tuple/dict holding exactly one).
    """
    target = Path(out_dir)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise ExportError(
            f"{target} already exists and is not empty; choose a new directory or pass overwrite=True",
            path=target,
        )
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    contract = get_contract(task)
    meta = metadata if isinstance(metadata, Metadata) else Metadata(**dict(metadata or {}))

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Staged beside the target, which it then replaces in one step (never deleted first);
        # on any error the staging directory goes and the target is left as it was.
        with atomic_directory(target) as staging:
            (staging / ASSETS_DIR).mkdir()
            wrapped = _SingleOutput(model).eval()
            if contract.modality == "image":
                args, dynamic, graph_in, prep = _image_inputs(example_inputs, mean, std, resize)
                sig_inputs = graph_in
                tokenizer_spec = None
            else:
                tokenizer_spec = _write_tokenizer(
                    tokenizer, staging, max_length, padding, pad_id, tuple(graph_inputs)
                )
                encoder = TextEncoder(tokenizer_spec, staging / tokenizer_spec.file)
                texts = check_texts(example_inputs) + list(_TEXT_PADDING_EXAMPLES)
                args = encoder(texts)
                batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
                seq = torch.export.Dim("sequence", min=1, max=tokenizer_spec.max_length)
                dynamic = tuple({0: batch, 1: seq} for _ in args)
                graph_in = tuple(
                    TensorSpec(name=n, dtype="int64", shape=("batch", "sequence"), description=f"token {n}")
                    for n in tokenizer_spec.graph_inputs
                )
                sig_inputs = (
                    TensorSpec(
                        name="texts",
                        dtype="string",
                        shape=("batch",),
                        description="raw text, one string per example",
                    ),
                )
                prep = Preprocessing(tokenizer=tokenizer_spec)

            with torch.no_grad():
                expected = wrapped(*args)
            _check_output(expected)
            outputs = (
                TensorSpec(
                    name=contract.output_name,
                    dtype=_dtype_name(expected.dtype),
                    shape=("batch", *expected.shape[1:]),
                    description=_OUTPUT_MEANING.get(contract.output_name, ""),
                ),
            )
            program = _export_program(wrapped, args, dynamic)
            graph_path = staging / GRAPH_NAME
            torch.export.save(program, graph_path)
            _verify_saved(graph_path, args, expected)

            labels_path = _write_labels(labels, staging)
            _write_assets(assets, staging)
            if onnx:
                from modhub.exporting.onnx import export_onnx

                export_onnx(
                    program,
                    args,
                    expected,
                    staging / ONNX_NAME,
                    [s.name for s in graph_in],
                    contract.output_name,
                )

            signature = Signature(inputs=sig_inputs, outputs=outputs)
            # Not validated yet: its paths name files that are listed only below.
            manifest = Manifest.model_construct(
                task=task,
                torch_version=torch.__version__,
                signatures={"default": signature},
                graph_inputs=graph_in,
                graph_outputs=outputs,
                preprocessing=prep,
                labels=labels_path,
                license=license,
                fine_tunable=fine_tunable,
                metadata=meta,
                files=(),
            )
            (staging / CARD_NAME).write_text(
                render_card(manifest, card, name or target.name), encoding="utf-8"
            )
            if not any((staging / ASSETS_DIR).iterdir()):
                (staging / ASSETS_DIR).rmdir()
            # Validated again with the files listed (model_copy alone would skip validation).
            files = list_files(staging)
            formats = detect_formats(entry.path for entry in files)
            manifest = Manifest.model_validate({**manifest.model_dump(), "files": files, "formats": formats})
            labels = manifest.labels
            check_contract(
                manifest, {labels: read_module_file(staging, manifest.file(labels))} if labels else {}
            )
            write_manifest(staging, manifest)
    except HubError:
        raise
    except Exception as exc:
        raise ExportError(f"export failed: {type(exc).__name__}: {exc}", path=target) from exc
    return target


_OUTPUT_MEANING = {
    "features": "feature vector per image",
    "logits": "unnormalised class scores (apply softmax for probabilities)",
    "embeddings": "embedding vector per text",
}


class _SingleOutput(torch.nn.Module):
    """Wraps a model so the exported graph returns exactly one tensor."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.model(*args)
        if isinstance(out, Mapping):
            out = tuple(out.values())
        if isinstance(out, (tuple, list)) and len(out) == 1:
            out = out[0]
        return out


def _check_output(out: Any) -> None:
    if not isinstance(out, torch.Tensor):
        raise ExportError(
            f"the model must return one tensor (or a tuple/dict with exactly one), got {type(out).__name__}"
        )
    if out.dim() != 2:
        raise ExportError(f"the model must return [batch, size], got shape {list(out.shape)}")


def _dtype_name(dtype: torch.dtype) -> Any:
    names = {
        torch.float32: "float32",
        torch.float16: "float16",
        torch.bfloat16: "bfloat16",
        torch.int64: "int64",
        torch.int32: "int32",
        torch.bool: "bool",
    }
    if dtype not in names:
        raise ExportError(f"unsupported output dtype {dtype}")
    return names[dtype]


def _image_inputs(
    example: Any, mean: Sequence[float] | None, std: Sequence[float] | None, resize: str = "crop"
) -> tuple[tuple[torch.Tensor, ...], Any, tuple[TensorSpec, ...], Preprocessing]:
    from modhub.runtimes.images import RESIZE_POLICIES

    if resize not in RESIZE_POLICIES:
        raise ExportError(f"unknown resize policy {resize!r}; use one of {', '.join(RESIZE_POLICIES)}")
    if isinstance(example, (tuple, list)) and len(example) == 1:
        example = example[0]
    if not isinstance(example, torch.Tensor) or example.dim() != 4 or example.shape[1] != 3:
        raise ExportError(
            "image modules take one float32 tensor [batch, 3, H, W] (RGB in [0, 1]) as example_inputs"
        )
    if example.dtype != torch.float32:
        raise ExportError(f"example images must be float32 in [0, 1], got {example.dtype}")
    if example.shape[0] < 2:
        # A batch of one would let torch.export specialise the batch dimension to 1.
        example = torch.cat([example, example.flip(-1)])
    height, width = int(example.shape[2]), int(example.shape[3])
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    spec = TensorSpec(
        name="images",
        dtype="float32",
        shape=("batch", 3, height, width),
        description="RGB images, channels first, values in [0, 1]",
        layout="NCHW",
        value_range=(0.0, 1.0),
    )
    prep = Preprocessing(
        image=ImagePreprocessing(
            height=height,
            width=width,
            mean=tuple(mean) if mean is not None else None,  # type: ignore[arg-type]
            std=tuple(std) if std is not None else None,  # type: ignore[arg-type]
            resize=resize,  # type: ignore[arg-type]
        )
    )
    return (example,), ({0: batch},), (spec,), prep


def _export_program(model: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: Any) -> Any:
    try:
        # forward(*args) takes its dynamic shapes as one tuple.
        program = torch.export.export(model, args, dynamic_shapes=(dynamic,), strict=False)
    except Exception as exc:
        raise ExportError(
            f"torch.export could not trace the model: {type(exc).__name__}: {exc}\n"
            "Make the forward pass free of data-dependent Python control flow, or check that "
            "the batch (and sequence) dimension can vary."
        ) from exc
    for node in program.graph.nodes:
        # Stack traces carry the exporter's file paths: private and not reproducible.
        node.meta.pop("stack_trace", None)
    # Sample inputs are pickled by torch.export.save; a module carries none.
    program._example_inputs = None
    return program


def _verify_saved(graph_path: Path, args: tuple[torch.Tensor, ...], expected: torch.Tensor) -> None:
    from modhub.graph import build_graph_module

    # The same steps as hub.load: a graph that export writes, load can read.
    module = build_graph_module(graph_path.read_bytes())
    with torch.no_grad():
        got = module(*args)
    diff = (got - expected).abs().max().item() if got.numel() else 0.0
    if got.shape != expected.shape or diff > VERIFY_ATOL:
        raise ExportError(
            f"the exported graph does not reproduce the model (max abs diff {diff:.3g}); "
            "the model may depend on state torch.export cannot capture"
        )


def _write_tokenizer(
    tokenizer: Any,
    staging: Path,
    max_length: int | None,
    padding: str,
    pad_id: int,
    graph_inputs: tuple[str, ...],
) -> TokenizerSpec:
    if tokenizer is None:
        raise ExportError("text modules need tokenizer= (a tokenizers JSON file or tokenizers.Tokenizer)")
    if max_length is None:
        raise ExportError("text modules need max_length= (the longest token sequence the model takes)")
    dest = staging / ASSETS_DIR / "tokenizer.json"
    if isinstance(tokenizer, (str, os.PathLike)):
        shutil.copyfile(tokenizer, dest)
    elif hasattr(tokenizer, "to_str"):
        dest.write_text(tokenizer.to_str(), encoding="utf-8")
    else:
        raise ExportError(f"tokenizer must be a path or tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    try:
        return TokenizerSpec(
            file=f"{ASSETS_DIR}/tokenizer.json",
            max_length=max_length,
            padding=padding,  # type: ignore[arg-type]
            pad_id=pad_id,
            graph_inputs=graph_inputs,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        raise ExportError(f"invalid tokenizer settings: {exc}") from exc


def _write_labels(labels: Sequence[str] | str | os.PathLike[str] | None, staging: Path) -> str | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        lines = Path(labels).read_text(encoding="utf-8").splitlines()
    else:
        lines = [str(label) for label in labels]
    if any("\n" in line for line in lines):
        raise ExportError("labels must not contain newlines")
    (staging / ASSETS_DIR / "labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"{ASSETS_DIR}/labels.txt"


def _write_assets(assets: Mapping[str, str | os.PathLike[str] | bytes] | None, staging: Path) -> None:
    from modhub.format.manifest import check_relative_path

    for rel, source in (assets or {}).items():
        try:
            check_relative_path(rel)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc
        dest = staging / ASSETS_DIR / rel
        if dest.exists():
            raise ExportError(f"asset {rel!r} clashes with a file modhub writes itself")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            dest.write_bytes(source)
        else:
            shutil.copyfile(source, dest)
