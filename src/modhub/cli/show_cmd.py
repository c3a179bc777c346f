"""``modhub show``: what ``saved_model_cli show --all`` printed for TF Hub modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from modhub.cli._app import app
from modhub.cli._common import fail_on_hub_error, notes
from modhub.errors import HubError
from modhub.format.manifest import Manifest, TensorSpec


def describe(manifest: Manifest, module_dir: Path) -> dict[str, Any]:
    """The machine form of ``modhub show``: the manifest plus where the module lives."""
    return {"path": str(module_dir), **manifest.model_dump(mode="json")}


def _spec_line(spec: TensorSpec) -> str:
    shape = "[" + ", ".join(str(d) for d in spec.shape) + "]"
    extra = []
    if spec.layout:
        extra.append(spec.layout)
    if spec.value_range:
        extra.append(f"range [{spec.value_range[0]:g}, {spec.value_range[1]:g}]")
    suffix = f"  ({', '.join(extra)})" if extra else ""
    meaning = f"  # {spec.description}" if spec.description else ""
    return f"    {spec.name}: {spec.dtype} {shape}{suffix}{meaning}"


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
    for name, sig in manifest.signatures.items():
        lines.append(f"signature '{name}':")
        lines.append("  inputs:")
        lines += [_spec_line(s) for s in sig.inputs]
        lines.append("  outputs:")
        lines += [_spec_line(s) for s in sig.outputs]
    if manifest.graph_inputs != manifest.default_signature.inputs:
        lines.append("graph inputs (after preprocessing):")
        lines += [_spec_line(s) for s in manifest.graph_inputs]
    prep = manifest.preprocessing
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
