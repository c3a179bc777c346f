"""``modhub show``: what ``saved_model_cli show --all`` printed for TF Hub modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error, notes
from modhub.errors import HubError
from modhub.format.describe import describe_spec, describe_variants, meaning_parts
from modhub.format.manifest import GRAPH_NAME, ONNX_NAME, Manifest, TensorSpec


def describe(manifest: Manifest, module_dir: Path) -> dict[str, Any]:
    """The machine form of ``modhub show``: the manifest plus where the module lives."""
    # As modhub.json writes it (fields without a value left out).
    return {"path": str(module_dir), **json.loads(manifest.to_json())}


def _spec_line(spec: TensorSpec, indent: str = "    ") -> str:
    """``name: dtype [shape]  (meaning)  # description``: one tensor of a signature."""
    extra = meaning_parts(spec)
    suffix = f"  ({', '.join(extra)})" if extra else ""
    meaning = f"  # {spec.description}" if spec.description else ""
    return f"{indent}{spec.name}: {describe_spec(spec)}{suffix}{meaning}"


def signature_lines(manifest: Manifest) -> list[str]:
    """Every signature, as ``saved_model_cli show --all`` prints a SavedModel's SignatureDefs:
    its name, its inputs and outputs (dtype, shape, meaning), the graph inputs behind it when
    they differ, where its graph files are, and how to call it."""
    lines = []
    for name, sig in manifest.signatures.items():
        graph_files = [sig.file(f) for f in (GRAPH_NAME, ONNX_NAME) if manifest.has_file(sig.file(f))]
        lines.append(f"signature_def[{name!r}]:")
        lines.append("  The given signature contains the following input(s):")
        lines += [_spec_line(s) for s in sig.inputs]
        lines.append("  The given signature contains the following output(s):")
        lines += [_spec_line(s) for s in sig.outputs]
        graph_inputs = manifest.graph_inputs_of(name)
        if graph_inputs != sig.inputs:
            lines.append("  graph inputs (after preprocessing):")
            lines += [_spec_line(s) for s in graph_inputs]
        if graph_files:
            lines.append(f"  graph files: {', '.join(graph_files)}")
        call = "m" if name == "default" else f"m.signatures[{name!r}]"
        args = ", ".join(s.name for s in sig.inputs)
        result = sig.outputs[0].name if len(sig.outputs) == 1 else "{" + ", ".join(sig.output_names) + "}"
        lines.append(f"  call: {call}({args}) -> {result}")
    return lines


def variant_lines(manifest: Manifest) -> list[str]:
    """The reduced-precision variants: precision, method, size, agreement, how to load one."""
    from modhub.cli.client_cmds import _size

    variants = describe_variants(manifest)
    if not variants:
        return []
    lines = ["variants (hub.load(h, precision=...); the exact graph stays the default):"]
    for v in variants:
        lines.append(f"  {v.precision}: {v.method} quantization, {_size(v.size)} in {v.path}/")
        lines.append(f"    {v.agreement_text}")
    return lines


def render_text(manifest: Manifest, module_dir: Path) -> str:
    md = manifest.metadata
    lines = [
        f"module: {module_dir}",
        f"title: {md.title}" if md.title else None,
        f"task: {manifest.task}",
        (
            f"framework: {manifest.framework} (exported with torch {manifest.torch_version})"
            if manifest.torch_version
            else f"framework: {manifest.framework}"
        ),
        f"formats: {', '.join(manifest.formats)}" if manifest.formats else None,
        f"license: {manifest.license}",
        f"fine-tunable: {'yes' if manifest.fine_tunable else 'no'}",
    ]
    lines += signature_lines(manifest)
    prep = manifest.preprocessing
    if prep.image or prep.tokenizer:
        lines.append("preprocessing:")
    if prep.image:
        img = prep.image
        lines.append(f"  image: {img.height}x{img.width} RGB in [0, 1]; {img.resize}")
        if img.mean and img.std:
            lines.append(f"  normalisation inside the module: mean {list(img.mean)}, std {list(img.std)}")
    if prep.tokenizer:
        tok = prep.tokenizer
        lines.append(
            f"  tokenizer: {tok.file}, max_length {tok.max_length}, padding {tok.padding}, "
            f"truncation {'on' if tok.truncation else 'off'}, feeds {', '.join(tok.graph_inputs)}"
        )
    if manifest.labels:
        lines.append(f"labels: {manifest.labels}")
    for key, value in (
        ("architecture", md.architecture),
        ("dataset", md.dataset),
        ("base module", md.base_module),
        ("source", md.source),
    ):
        if value:
            lines.append(f"{key}: {value}")
    if md.tags:
        lines.append(f"tags: {', '.join(md.tags)}")
    lines += variant_lines(manifest)
    saved_model = _saved_model_text(manifest, module_dir)
    if saved_model:
        lines += ["SavedModel (saved_model/), as saved_model_cli show --all prints it:", saved_model.rstrip()]
    lines.append("files:")
    width = max((len(f.path) for f in manifest.files), default=0)
    for entry in manifest.files:
        lines.append(f"  {entry.path:<{width}}  {entry.size:>12,d} B  sha256:{entry.sha256}")
    return "\n".join(line for line in lines if line is not None)


def _saved_model_text(manifest: Manifest, module_dir: Path) -> str | None:
    """The SignatureDefs of ``saved_model/`` (read with protobuf; TensorFlow is not needed)."""
    from modhub.format.manifest import SAVED_MODEL_DIR, SAVED_MODEL_PB

    if SAVED_MODEL_PB not in {entry.path for entry in manifest.files}:
        return None
    try:
        from modhub.format.savedmodel import read_saved_model, render_signature_defs

        return render_signature_defs(read_saved_model(module_dir / SAVED_MODEL_DIR))
    except HubError as exc:
        return f"(cannot read the SavedModel: {exc})"


@app.command()
def show(
    handle: Annotated[str, typer.Argument(help="publisher/name/version, a hub URL, or a module directory")],
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON for machines")] = False,
) -> None:
    """Show a module's task, signatures (dtypes, shapes), preprocessing, files and licence."""
    from modhub.format.manifest import read_manifest
    from modhub.handles import is_local

    with fail_on_hub_error(), notes():
        if is_local(handle):
            module_dir = Path(handle).expanduser()
        else:
            from modhub.client.resolve import resolve

            module_dir = resolve(handle)
        manifest = read_manifest(module_dir)
    if as_json:
        typer.echo(json.dumps(describe(manifest, module_dir), indent=2, sort_keys=True))
    else:
        typer.echo(render_text(manifest, module_dir))
