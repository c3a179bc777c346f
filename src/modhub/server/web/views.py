"""What the module page shows, built from the services' answers (no database access here).

The stored manifest is read as plain JSON, tolerantly: a page must render even
for a manifest a newer modhub wrote, so missing keys become empty values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modhub.format.describe import VariantSummary, describe_variants, meaning_parts, shape_text
from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME, TensorSpec
from modhub.server.services.schemas import CallSignature, ModuleDetail, VersionDetail
from modhub.server.web.cards import RenderedCard, render_card
from modhub.server.web.snippets import Snippet, usage_snippets
from modhub.server.web.vendor import MAX_DOWNLOAD_BYTES, SAMPLE_PHOTOS, WebRuntime, task_files

__all__ = ["ModulePage", "Snippet", "module_page", "signature_views", "usage_snippets"]


@dataclass(frozen=True)
class TensorRow:
    kind: str  # "input" or "output"
    name: str
    dtype: str
    shape: str
    description: str


@dataclass(frozen=True)
class SignatureView:
    name: str
    rows: list[TensorRow]
    # How Python calls it: ``module(content=..., style=...)``, ``module.signatures["x"](...)``.
    call: str = ""


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int | None
    sha256: str
    url: str


@dataclass(frozen=True)
class ModulePage:
    module: ModuleDetail
    version: VersionDetail
    # True when the URL named no version (the page shows the latest).
    is_latest_view: bool
    card: RenderedCard
    signatures: list[SignatureView]
    snippets: list[Snippet]
    files: list[FileRow]
    # The version's own title, else the module's.
    title: str = ""
    # (label, value) facts for the side panel, empty values left out.
    facts: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    # The module's picture of its output on a sample (assets/example.png), if it has one.
    example: ExamplePicture | None = None
    # The "try it" panel (the module has a model.onnx and the hub serves the browser runtime).
    tryit: TryIt | None = None
    # The module could be tried, but the hub serves no browser runtime (the page says how to add it).
    tryit_missing: bool = False
    # Reduced-precision variants (int8), with their size and measured agreement (_variants.html).
    variants: list[VariantSummary] = field(default_factory=list)


@dataclass(frozen=True)
class TryIt:
    """What module.html's ``<section id="tryit">`` tells static/tryit/core.js (data-* attributes)."""

    version_url: str  # the version's API URL (its manifest; files/<path> beside it)
    core_url: str  # static/tryit/core.js, versioned
    ort_url: str  # onnxruntime-web's ES module
    wasm_url: str  # the folder of its .wasm and .mjs (ort.env.wasm.wasmPaths)
    tokenizers_url: str  # @huggingface/tokenizers' ES module
    task_files: str  # the task scripts core.js imports, space-separated
    max_bytes: int  # the largest download the panel tries (MAX_DOWNLOAD_BYTES)
    samples_url: str  # folder of the sample photos ("" when the hub has none)


def tryit_panel(version: VersionDetail, files: list[FileRow], runtime: WebRuntime | None) -> TryIt | None:
    """The panel's settings, None when the module has no model.onnx or the hub no runtime."""
    if runtime is None or not any(f.path == "model.onnx" for f in files):
        return None
    from modhub.server.web.vendor import sample_photos_available

    return TryIt(
        version_url=f"/api/v1/modules/{quote(version.publisher)}/{quote(version.name)}/versions/{version.version}",
        # No ?v= here: the task scripts import "./core.js", which must be this very module.
        core_url="/static/tryit/core.js",
        ort_url=runtime.url("onnxruntime-web", "ort.wasm.min.mjs"),
        wasm_url=runtime.url("onnxruntime-web"),
        tokenizers_url=runtime.url("tokenizers", "tokenizers.min.mjs"),
        task_files=" ".join(task_files()),
        max_bytes=MAX_DOWNLOAD_BYTES,
        samples_url="/static/tryit/samples/" if sample_photos_available() and SAMPLE_PHOTOS else "",
    )


@dataclass(frozen=True)
class ExamplePicture:
    url: str  # the file's own download URL
    caption: str  # metadata.extra.example.caption, or ""


# Where a module keeps its picture of its output on a sample (made at zoo build).
EXAMPLE_PICTURE = "assets/example.png"


def example_picture(version: VersionDetail, files: list[FileRow]) -> ExamplePicture | None:
    """The module's example picture (a listed ``assets/example.png``) and its caption."""
    row = next((f for f in files if f.path == EXAMPLE_PICTURE), None)
    if row is None:
        return None
    extra = _dict(_dict(version.manifest.get("metadata")).get("extra"))
    caption = _dict(extra.get("example")).get("caption")
    return ExamplePicture(url=row.url, caption=str(caption) if isinstance(caption, str) else "")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def meaning(spec: TensorSpec) -> str:
    """What a tensor holds, in words: its description and every meaning the manifest gives."""
    return "; ".join(p for p in (spec.description, *meaning_parts(spec)) if p)


def _call(name: str, sig: CallSignature) -> str:
    names = [spec.name for spec in sig.inputs]
    args = "..." if len(names) == 1 else ", ".join(f"{n}=..." for n in names)
    target = "module" if name == "default" else f'module.signatures["{name}"]'
    return f"{target}({args})"


def signature_views(signatures: dict[str, CallSignature]) -> list[SignatureView]:
    """Every signature (the default first, then the others by name), as saved_model_cli shows them."""
    names = sorted(signatures, key=lambda n: (n != "default", n))
    views = []
    for name in names:
        sig = signatures[name]
        rows = [
            TensorRow(
                kind=kind,
                name=spec.name,
                dtype=spec.dtype,
                shape=shape_text(spec.shape),
                description=meaning(spec),
            )
            for kind, specs in (("input", sig.inputs), ("output", sig.outputs))
            for spec in specs
        ]
        views.append(SignatureView(name=name, rows=rows, call=_call(name, sig)))
    return views


_FORMAT_NAMES = {
    "pt2": "PyTorch (graph.pt2)",
    "onnx": "ONNX",
    "savedmodel": "TensorFlow SavedModel",
    "tflite": "TFLite",
    "tfjs": "TF.js (tfjs/model.json)",
}


def file_rows(version: VersionDetail) -> list[FileRow]:
    base = (
        f"/api/v1/modules/{quote(version.publisher)}/{quote(version.name)}/versions/{version.version}/files/"
    )
    rows = [FileRow(path=MANIFEST_NAME, size=None, sha256=version.manifest_sha256, url=base + MANIFEST_NAME)]
    if version.signature is not None:
        sig = version.signature
        rows.append(FileRow(path=SIGNATURE_NAME, size=sig.size, sha256=sig.sha256, url=base + SIGNATURE_NAME))
    for entry in _list(version.manifest.get("files")):
        if isinstance(entry, dict) and "path" in entry:
            path = str(entry["path"])
            rows.append(
                FileRow(
                    path=path,
                    size=entry["size"] if isinstance(entry.get("size"), int) else None,
                    sha256=str(entry.get("sha256", "")),
                    url=base + quote(path),
                )
            )
    return rows


def _facts(version: VersionDetail) -> list[tuple[str, str]]:
    m = version.manifest
    meta = _dict(m.get("metadata"))
    pre = _dict(m.get("preprocessing"))
    image = _dict(pre.get("image"))
    tokenizer = _dict(pre.get("tokenizer"))
    facts = [
        ("Task", str(m.get("task", ""))),
        ("Licence", str(m.get("license", ""))),
        ("Framework", f"{m.get('framework', '')} {m.get('torch_version', '')}".strip()),
        ("Fine-tunable", "yes" if m.get("fine_tunable", True) else "no"),
        ("Formats", ", ".join(_FORMAT_NAMES.get(str(f), str(f)) for f in _list(m.get("formats")))),
        ("Architecture", str(meta.get("architecture", ""))),
        ("Trained on", str(meta.get("dataset", ""))),
        ("Base module", str(meta.get("base_module") or "")),
        ("Input size", f"{image['height']} \u00d7 {image['width']}" if image.get("height") else ""),
        ("Max tokens", str(tokenizer.get("max_length", "")) if tokenizer else ""),
        ("Weights from", str(meta.get("source", ""))),
    ]
    return [(label, value) for label, value in facts if value]


def variant_rows(version: VersionDetail) -> list[VariantSummary]:
    """The version's variants; none when its manifest does not parse here (a newer modhub's)."""
    from pydantic import ValidationError

    from modhub.format.manifest import Manifest

    if not version.manifest.get("variants"):
        return []
    try:
        return describe_variants(Manifest.model_validate(version.manifest))
    except (ValidationError, KeyError, ValueError):
        return []


def module_page(
    module: ModuleDetail,
    version: VersionDetail,
    *,
    base_url: str,
    is_latest_view: bool,
    runtime: WebRuntime | None = None,
) -> ModulePage:
    handle_url = f"{base_url.rstrip('/')}/{version.handle}"
    meta = _dict(version.manifest.get("metadata"))
    files = file_rows(version)
    return ModulePage(
        module=module,
        version=version,
        is_latest_view=is_latest_view,
        card=render_card(version.card),
        signatures=signature_views(version.signatures),
        snippets=usage_snippets(version.signatures, version.manifest, handle_url),
        files=files,
        title=str(meta.get("title") or module.title),
        facts=_facts(version),
        tags=[str(t) for t in _list(meta.get("tags"))],
        example=example_picture(version, files),
        tryit=tryit_panel(version, files, runtime),
        tryit_missing=runtime is None and any(f.path == "model.onnx" for f in files),
        variants=variant_rows(version),
    )
