"""Export a PyTorch model as a modhub module directory.

``export`` traces the model with ``torch.export`` in eval mode (dynamic batch,
dynamic sequence length for text, and any dimension the caller names), with
any number of named inputs and outputs (:mod:`modhub.exporting.tracing`),
strips what a module must not carry (sample inputs, source stack traces),
checks the result against the task's contract, verifies that the saved program
reproduces the model, and writes the directory atomically: it appears complete
or not at all. Extra signatures get graph files of their own under
``signatures/<name>/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from modhub.errors import ExportError, HubError
from modhub.exporting.labels import attach_labels, write_label_file
from modhub.exporting.onnx import required_onnxruntime
from modhub.exporting.tracing import (
    MAX_BATCH,
    NamedOutputs,
    TracedInputs,
    dtype_name,
    graph_specs,
    output_layout,
    spec,
    tensor_inputs,
)
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
    Requires,
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

# Sentences added to text examples so the sequence dimension is never 0/1-specialised.
_TEXT_PADDING_EXAMPLES = (
    "modhub export example sentence.",
    "Another, somewhat longer example sentence here.",
)
VERIFY_ATOL = 1e-5


# The tasks whose modules export takes in the original form: one image tensor [B, 3, H, W] or
# texts, and one float32 [B, D] output named by the task's contract.
_ORIGINAL_TASKS = {
    "image-feature-vector": "features",
    "image-classification": "logits",
    "text-embedding": "embeddings",
    "text-classification": "logits",
}
# Extra signatures: {"name": (model, example_inputs)} or {"name": {"model": ..., "example_inputs": ...,
# "output_names": ..., "dynamic": ..., "batch": ..., "meaning": ...}}.
ExtraSignature = tuple[torch.nn.Module, Any] | Mapping[str, Any]
# Where extra signatures keep their graph files (Signature.path).
SIGNATURES_DIR = "signatures"


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
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic: Mapping[str, Mapping[int, str]] | None = None,
    batch: bool | None = None,
    meaning: Mapping[str, Mapping[str, Any]] | None = None,
    signatures: Mapping[str, ExtraSignature] | None = None,
    metadata: Metadata | Mapping[str, Any] | None = None,
    card: str | None = None,
    name: str | None = None,
    assets: Mapping[str, str | os.PathLike[str] | bytes] | None = None,
    fine_tunable: bool = True,
    onnx: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a module directory at ``out_dir`` and return its path.

    Any model: ``example_inputs`` is a tensor, a tuple of tensors or a dict of
    name -> tensor (input names default to the parameters of ``forward``, or
    ``input_names=``); the model returns a tensor, a tuple (outputs
    ``output_0``, ... or ``output_names=``) or a dict (its keys name the
    outputs). The first dimension is a dynamic ``batch`` when every input has
    one of the same size (``batch=False`` turns it off); ``dynamic=`` names more
    dynamic dimensions, e.g. ``{"content": {2: "height", 3: "width"}}``.
    ``meaning=`` says what a tensor holds, by name, e.g.
    ``{"content": {"kind": "image", "layout": "NCHW", "value_range": (0, 1)}}``
    (an output's ``labels`` may be a list of class names). ``signatures=``
    adds named signatures, each with a graph of its own:
    ``{"style_vector": (model.style_net, (style,))}``.

    Image tasks of the original contract (image-feature-vector,
    image-classification): ``example_inputs`` is a float32 tensor [B, 3, H, W]
    with RGB in [0, 1]; normalisation (``mean``/``std``, recorded for the card)
    must happen inside ``model``; ``resize`` is how the module fits photo
    inputs to H x W (``"squash"``, ``"crop"`` or ``"pad"``, see
    ``modhub.runtimes.images``); the model returns one tensor [batch, size].
    Text (any task given ``tokenizer=``, and the text tasks): ``example_inputs``
    is a list of strings, ``tokenizer`` a ``tokenizers`` JSON file or
    ``tokenizers.Tokenizer``, and ``model`` takes the int64 tensors named by
    ``graph_inputs``.
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
    original = _ORIGINAL_TASKS.get(task)
    text = tokenizer is not None or (original is not None and task.startswith("text-"))
    meta = metadata if isinstance(metadata, Metadata) else Metadata(**dict(metadata or {}))

    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # Staged beside the target, which it then replaces in one step (never deleted first);
        # on any error the staging directory goes and the target is left as it was.
        with atomic_directory(target) as staging:
            (staging / ASSETS_DIR).mkdir()
            wanted = dict(meaning or {})
            if text:
                tokenizer_spec = _write_tokenizer(
                    tokenizer, staging, max_length, padding, pad_id, tuple(graph_inputs)
                )
                encoder = TextEncoder(tokenizer_spec, staging / tokenizer_spec.file)
                texts = check_texts(example_inputs) + list(_TEXT_PADDING_EXAMPLES)
                traced = TracedInputs(
                    args=tuple(encoder(texts)),
                    names=tuple(tokenizer_spec.graph_inputs),
                    dims=tuple({0: "batch", 1: "sequence"} for _ in tokenizer_spec.graph_inputs),
                    bounds={"batch": (1, MAX_BATCH), "sequence": (1, tokenizer_spec.max_length)},
                )
                sig_inputs: tuple[TensorSpec, ...] | None = (
                    spec(
                        "texts",
                        "string",
                        ("batch",),
                        "raw text, one string per example",
                        _meaning_for(wanted, "texts", {} if original else {"kind": "text"}),
                    ),
                )
                prep = Preprocessing(tokenizer=tokenizer_spec)
                described = {n: f"token {n}" for n in traced.names}
            elif original is not None:
                traced, image_spec, prep = _image_inputs(example_inputs, mean, std, resize)
                sig_inputs = None
                described = {"images": image_spec.description}
                wanted["images"] = {"layout": "NCHW", "value_range": (0.0, 1.0), **wanted.get("images", {})}
            else:
                traced = tensor_inputs(
                    model, example_inputs, input_names=input_names, dynamic=dynamic, batch=batch
                )
                sig_inputs, prep, described = None, Preprocessing(), {}
            labels_path = _write_labels(labels, staging)
            _write_output_labels(wanted, staging)
            general_labels = None if original else labels_path
            graph_in, outputs = _export_graph(
                model,
                traced,
                staging,
                single_name=original or _single_output_name(contract),
                output_names=output_names,
                meaning=wanted,
                described=described,
                original=original is not None,
                onnx=onnx,
            )
            if general_labels is not None:
                outputs = attach_labels(outputs, general_labels)
            if sig_inputs is None:
                sig_inputs = graph_in
            extra = _export_signatures(signatures or {}, staging, onnx=onnx)
            _check_meaning_names(wanted, sig_inputs, outputs, graph_in)
            _write_assets(assets, staging)

            signature = Signature(inputs=sig_inputs, outputs=outputs)
            # Not validated yet: its paths name files that are listed only below.
            manifest = Manifest.model_construct(
                task=task,
                framework="pytorch",
                torch_version=torch.__version__,
                signatures={"default": signature, **extra},
                graph_inputs=graph_in,
                graph_outputs=outputs,
                preprocessing=prep,
                labels=labels_path,
                license=license,
                fine_tunable=fine_tunable,
                metadata=meta,
                files=(),
                formats=(),
                # The oldest onnxruntime its model.onnx files need (their opset), for older clients.
                requires=Requires(onnxruntime=required_onnxruntime(staging)) if onnx else None,
            )
            (staging / CARD_NAME).write_text(
                render_card(manifest, card, name or target.name), encoding="utf-8"
            )
            if not any((staging / ASSETS_DIR).iterdir()):
                (staging / ASSETS_DIR).rmdir()
            # Validated again with the files listed (model_copy alone would skip validation).
            files = list_files(staging)
            formats = detect_formats(entry.path for entry in files)
            manifest = Manifest.model_validate(
                {**manifest.model_dump(exclude_none=True), "files": files, "formats": formats}
            )
            check_contract(manifest, _label_bytes(staging, manifest))
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


def _single_output_name(contract: Any) -> str:
    """A lone output's name: the task contract's, else ``output_0`` (as tuple outputs are named)."""
    return str(getattr(contract, "output_name", None) or "output_0")


def _meaning_for(
    wanted: Mapping[str, Mapping[str, Any]], name: str, default: Mapping[str, Any]
) -> dict[str, Any]:
    return {**default, **dict(wanted.get(name, {}))}


def _export_graph(
    model: torch.nn.Module,
    traced: TracedInputs,
    folder: Path,
    *,
    single_name: str,
    output_names: Sequence[str] | None,
    meaning: Mapping[str, Mapping[str, Any]],
    described: Mapping[str, str],
    original: bool,
    onnx: bool,
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Trace ``model`` on ``traced``, write ``folder/graph.pt2`` (and ``model.onnx``), check that both
    reproduce the model, and return the graph's input and output specs."""
    wrapped = NamedOutputs(model, traced.names, traced.keywords).eval()
    with torch.no_grad():
        out = wrapped.call(*traced.args)
    if original:
        out = _one_output(out)
        _check_output(out)
    layout = output_layout(out, output_names, single_name)
    wrapped.layout = layout
    expected = _flatten(out, layout)
    program = _export_program(wrapped, traced.args, traced.dynamic_shapes())
    in_shapes, out_shapes, out_dtypes = graph_specs(program, traced, layout)
    graph_in = tuple(
        spec(
            n,
            dtype_name(arg.dtype, f"input {n!r}"),
            shape,
            described.get(n, ""),
            meaning.get(n, {}),
        )
        for n, arg, shape in zip(traced.names, traced.args, in_shapes, strict=True)
    )
    outputs = tuple(
        spec(n, dtype, shape, _OUTPUT_MEANING.get(n, "") if original else "", meaning.get(n, {}))
        for n, dtype, shape in zip(layout.names, out_dtypes, out_shapes, strict=True)
    )
    folder.mkdir(parents=True, exist_ok=True)
    graph_path = folder / GRAPH_NAME
    torch.export.save(program, graph_path)
    _verify_saved(graph_path, traced.args, expected)
    if onnx:
        from modhub.exporting.onnx import export_onnx

        export_onnx(
            program,
            traced.args,
            expected,
            folder / ONNX_NAME,
            list(traced.names),
            list(layout.names),
            specs=(graph_in, outputs),
        )
    return graph_in, outputs


def _one_output(out: Any) -> Any:
    """The original tasks' rule: one tensor, or a tuple/dict holding exactly one."""
    if isinstance(out, Mapping):
        out = tuple(out.values())
    if isinstance(out, (tuple, list)) and len(out) == 1:
        out = out[0]
    return out


def _flatten(out: Any, layout: Any) -> tuple[torch.Tensor, ...]:
    if layout.kind == "tensor":
        return (out.detach(),)
    values = [out[k] for k in layout.keys] if layout.kind == "dict" else list(out)
    return tuple(v.detach() for v in values)


def _export_signatures(
    signatures: Mapping[str, ExtraSignature], staging: Path, *, onnx: bool
) -> dict[str, Signature]:
    """Each extra signature traced and written to ``signatures/<name>/`` with its own graph files."""
    import re

    from modhub.format.manifest import SIGNATURE_NAME_PATTERN

    out: dict[str, Signature] = {}
    for sig_name, given in signatures.items():
        if sig_name == "default" or not re.match(SIGNATURE_NAME_PATTERN, sig_name):
            raise ExportError(
                f"signature name {sig_name!r} must be an identifier other than 'default' "
                "(the model itself is the default signature)"
            )
        options = dict(given) if isinstance(given, Mapping) else None
        if options is None:
            if not isinstance(given, tuple) or len(given) != 2:
                raise ExportError(
                    f"signatures[{sig_name!r}] must be (model, example_inputs) or a dict with model= and "
                    "example_inputs="
                )
            options = {"model": given[0], "example_inputs": given[1]}
        unknown = sorted(
            set(options)
            - {"model", "example_inputs", "input_names", "output_names", "dynamic", "batch", "meaning"}
        )
        if unknown or "model" not in options or "example_inputs" not in options:
            raise ExportError(
                f"signatures[{sig_name!r}] takes model, example_inputs and optionally input_names, "
                f"output_names, dynamic, batch, meaning; got {sorted(options)}"
            )
        sub_model = options["model"]
        if not isinstance(sub_model, torch.nn.Module):
            raise ExportError(
                f"signatures[{sig_name!r}]: the model must be a torch.nn.Module, "
                f"got {type(sub_model).__name__}"
            )
        traced = tensor_inputs(
            sub_model,
            options["example_inputs"],
            input_names=options.get("input_names"),
            dynamic=options.get("dynamic"),
            batch=options.get("batch"),
        )
        wanted = dict(options.get("meaning") or {})
        _write_output_labels(wanted, staging, prefix=f"{sig_name}_")
        path = f"{SIGNATURES_DIR}/{sig_name}"
        inputs, outputs = _export_graph(
            sub_model,
            traced,
            staging / path,
            single_name="output_0",
            output_names=options.get("output_names"),
            meaning=wanted,
            described={},
            original=False,
            onnx=onnx,
        )
        _check_meaning_names(wanted, inputs, outputs, inputs, where=f"signatures[{sig_name!r}]")
        out[sig_name] = Signature(inputs=inputs, outputs=outputs, path=path)
    return out


def _write_output_labels(
    wanted: dict[str, Mapping[str, Any]], staging: Path, prefix: str = ""
) -> dict[str, str]:
    """Class names given as ``meaning={"classes": {"labels": [...]}}`` written to ``assets/``;
    the meaning then names the file. Returns output name -> written path."""
    written = {}
    for tensor, fields in list(wanted.items()):
        value = dict(fields).get("labels")
        if value is None or (isinstance(value, str) and value.startswith(f"{ASSETS_DIR}/")):
            continue
        rel = f"{ASSETS_DIR}/{prefix}{tensor}_labels.txt"
        written[tensor] = write_label_file(value, staging, rel)
        wanted[tensor] = {**dict(fields), "labels": rel}
    return written


def _check_meaning_names(
    wanted: Mapping[str, Any],
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    graph_in: tuple[TensorSpec, ...],
    where: str = "meaning=",
) -> None:
    known = {s.name for s in (*inputs, *outputs, *graph_in)}
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise ExportError(
            f"{where} names {unknown}, which are not inputs or outputs; they are {sorted(known)}"
        )


def _label_bytes(staging: Path, manifest: Manifest) -> dict[str, bytes]:
    """The label files the contract reads (the manifest's and every output's), read back verified."""
    paths = {manifest.labels} if manifest.labels else set()
    for sig in manifest.signatures.values():
        paths |= {s.labels for s in sig.outputs if s.labels}
    return {p: read_module_file(staging, manifest.file(p)) for p in sorted(paths)}


def _check_output(out: Any) -> None:
    if not isinstance(out, torch.Tensor):
        raise ExportError(
            f"the model must return one tensor (or a tuple/dict with exactly one), got {type(out).__name__}"
        )
    if out.dim() != 2:
        raise ExportError(f"the model must return [batch, size], got shape {list(out.shape)}")


def _image_inputs(
    example: Any, mean: Sequence[float] | None, std: Sequence[float] | None, resize: str = "crop"
) -> tuple[TracedInputs, TensorSpec, Preprocessing]:
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
    traced = TracedInputs(
        args=(example,), names=("images",), dims=({0: "batch"},), bounds={"batch": (1, MAX_BATCH)}
    )
    return traced, spec, prep


def _export_program(model: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamic: Any) -> Any:
    try:
        # forward(*args) takes its dynamic shapes as one tuple.
        program = torch.export.export(model, args, dynamic_shapes=(dynamic,), strict=False)
    except ExportError:
        raise
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


def _verify_saved(
    graph_path: Path, args: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]
) -> None:
    from modhub.graph import build_graph_module

    # The same steps as hub.load: a graph that export writes, load can read.
    module = build_graph_module(graph_path.read_bytes())
    with torch.no_grad():
        got = module(*args)
    got = got if isinstance(got, (tuple, list)) else (got,)
    for index, (value, want) in enumerate(zip(got, expected, strict=True)):
        diff = max_diff(value, want)
        if value.shape != want.shape or value.dtype != want.dtype or diff > VERIFY_ATOL:
            raise ExportError(
                f"the exported graph does not reproduce the model (output {index}: max abs diff {diff:.3g}); "
                "the model may depend on state torch.export cannot capture"
            )


def max_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    """Largest absolute difference (0 for empty tensors; exact for integers and booleans)."""
    if got.shape != want.shape or not got.numel():
        return 0.0 if got.shape == want.shape else float("inf")
    if want.dtype == torch.bool:
        return float((got != want).any().item())
    return (got.double() - want.double()).abs().max().item()


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
    return write_label_file(labels, staging, f"{ASSETS_DIR}/labels.txt")


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
