"""What the module page shows, built from the services' answers (no database access here).

The stored manifest is read as plain JSON, tolerantly: a page must render even
for a manifest a newer modhub wrote, so missing keys become empty values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME
from modhub.server.services.schemas import ModuleDetail, VersionDetail
from modhub.server.web.cards import RenderedCard, render_card


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


@dataclass(frozen=True)
class FileRow:
    path: str
    size: int | None
    sha256: str
    url: str


@dataclass(frozen=True)
class Snippet:
    # Stable id for the copy button's target.
    id: str
    title: str
    code: str


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


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _shape(shape: Any) -> str:
    if not isinstance(shape, list | tuple):
        return str(shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"


def signature_views(manifest: dict[str, Any]) -> list[SignatureView]:
    """The default signature first, then the others by name."""
    signatures = _dict(manifest.get("signatures"))
    names = sorted(signatures, key=lambda n: (n != "default", n))
    views = []
    for name in names:
        sig = _dict(signatures[name])
        rows = []
        for kind in ("inputs", "outputs"):
            for spec in _list(sig.get(kind)):
                if not isinstance(spec, dict):
                    continue
                description = str(spec.get("description") or "")
                value_range = spec.get("value_range")
                if value_range and not description:
                    description = f"values in [{value_range[0]}, {value_range[1]}]"
                rows.append(
                    TensorRow(
                        kind=kind[:-1],
                        name=str(spec.get("name", "")),
                        dtype=str(spec.get("dtype", "")),
                        shape=_shape(spec.get("shape", [])),
                        description=description,
                    )
                )
        views.append(SignatureView(name=name, rows=rows))
    return views


def _example_call(manifest: dict[str, Any]) -> str:
    pre = _dict(manifest.get("preprocessing"))
    if pre.get("tokenizer"):
        return 'out = module(["The quick brown fox.", "A lazy dog sleeps."])'
    image = _dict(pre.get("image"))
    if image or str(manifest.get("task", "")).startswith("image"):
        h, w = image.get("height", 224), image.get("width", 224)
        return f"images = torch.rand(2, 3, {h}, {w})  # RGB, values in [0, 1]\nout = module(images)"
    return "out = module(inputs)  # see the signature above"


def _output_width(manifest: dict[str, Any]) -> int | None:
    """Size of the last dimension of the default signature's first output, when fixed."""
    try:
        shape = manifest["signatures"]["default"]["outputs"][0]["shape"]
        width = shape[-1]
    except (KeyError, IndexError, TypeError):
        return None
    return width if isinstance(width, int) and width > 0 else None


def usage_snippets(manifest: dict[str, Any], handle_url: str) -> list[Snippet]:
    """Copy-paste code for ``hub.load`` and ``hub.Layer``; the handle is the page's own URL."""
    call = _example_call(manifest)
    imports = "import torch\nimport modhub as hub\n\n" if "torch." in call else "import modhub as hub\n\n"
    load = f'{imports}module = hub.load("{handle_url}")\n{call}\nprint(out.shape)\n'
    hint = (
        "    # trainable=True fine-tunes the module's weights as well\n"
        if manifest.get("fine_tunable", True)
        else "    # this module is not meant to be fine-tuned: keep trainable=False\n"
    )
    width = _output_width(manifest)
    head = f"torch.nn.Linear({width}, 10)" if width else "torch.nn.LazyLinear(10)"
    layer = (
        "import torch\nimport modhub as hub\n\n"
        "model = torch.nn.Sequential(\n"
        f"{hint}"
        f'    hub.Layer("{handle_url}", trainable=False),\n'
        f"    {head},  # your own head\n"
        ")\n"
    )
    snippets = [
        Snippet(id="snippet-load", title="Load and call", code=load),
        Snippet(id="snippet-layer", title="Use as a layer", code=layer),
    ]
    if manifest.get("framework") == "tensorflow":
        snippets = []
    if "savedmodel" in _list(manifest.get("formats")):
        snippets.append(tensorflow_snippet(manifest, handle_url))
    return snippets


_FORMAT_NAMES = {
    "pt2": "PyTorch (graph.pt2)",
    "onnx": "ONNX",
    "savedmodel": "TensorFlow SavedModel",
    "tflite": "TFLite",
}


def tensorflow_snippet(manifest: dict[str, Any], handle_url: str) -> Snippet:
    """tensorflow_hub code: the module's own URL is a TF Hub handle (?tf-hub-format=compressed)."""
    text = str(manifest.get("task", "")).startswith("text")
    layer = (
        f'hub.KerasLayer("{handle_url}", input_shape=[], dtype=tf.string)'
        if text
        else f'hub.KerasLayer("{handle_url}", trainable=False)'
    )
    code = (
        "import tensorflow as tf\nimport tensorflow_hub as hub\nimport tf_keras\n\n"
        "model = tf_keras.Sequential([\n"
        f"    {layer},\n"
        '    tf_keras.layers.Dense(10, activation="softmax"),  # your own head\n'
        "])\n"
    )
    return Snippet(id="snippet-tensorflow", title="TensorFlow (tensorflow_hub)", code=code)


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


def module_page(
    module: ModuleDetail, version: VersionDetail, *, base_url: str, is_latest_view: bool
) -> ModulePage:
    handle_url = f"{base_url.rstrip('/')}/{version.handle}"
    meta = _dict(version.manifest.get("metadata"))
    return ModulePage(
        module=module,
        version=version,
        is_latest_view=is_latest_view,
        card=render_card(version.card),
        signatures=signature_views(version.manifest),
        snippets=usage_snippets(version.manifest, handle_url),
        files=file_rows(version),
        title=str(meta.get("title") or module.title),
        facts=_facts(version),
        tags=[str(t) for t in _list(meta.get("tags"))],
    )
