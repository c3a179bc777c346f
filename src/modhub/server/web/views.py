"""What the module page shows, built from the services' answers (no database access here).

The stored manifest is read as plain JSON, tolerantly: a page must render even
for a manifest a newer modhub wrote, so missing keys become empty values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modhub.format.manifest import MANIFEST_NAME
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
    # (label, value) facts for the side panel, empty values left out.
    facts: list[tuple[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _shape(shape: Any) -> str:
    if not isinstance(shape, list | tuple):
        return str(shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"


def signature_views(manifest: dict[str, Any]) -> list[SignatureView]:
    """The default signature first, then the others by name."""
    signatures = manifest.get("signatures") or {}
    if not isinstance(signatures, dict):
        return []
    names = sorted(signatures, key=lambda n: (n != "default", n))
    views = []
    for name in names:
        sig = signatures[name] or {}
        rows = []
        for kind in ("inputs", "outputs"):
            for spec in sig.get(kind) or []:
                if not isinstance(spec, dict):
                    continue
                description = str(spec.get("description") or "")
                value_range = spec.get("value_range")
                if value_range and "range" not in description.lower():
                    description = (description + f" (values in [{value_range[0]}, {value_range[1]}])").strip()
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
    pre = manifest.get("preprocessing") or {}
    if pre.get("tokenizer"):
        return 'out = module(["The quick brown fox.", "A lazy dog sleeps."])'
    image = pre.get("image") or {}
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
    hint = "  # True to fine-tune" if manifest.get("fine_tunable", True) else ""
    width = _output_width(manifest)
    head = f"torch.nn.Linear({width}, 10)" if width else "torch.nn.LazyLinear(10)"
    layer = (
        "import torch\nimport modhub as hub\n\n"
        "model = torch.nn.Sequential(\n"
        f'    hub.Layer("{handle_url}", trainable=False),{hint}\n'
        f"    {head},  # your own head\n"
        ")\n"
    )
    return [
        Snippet(id="snippet-load", title="Load and call", code=load),
        Snippet(id="snippet-layer", title="Use as a layer", code=layer),
    ]


def file_rows(version: VersionDetail) -> list[FileRow]:
    base = (
        f"/api/v1/modules/{quote(version.publisher)}/{quote(version.name)}/versions/{version.version}/files/"
    )
    rows = [FileRow(path=MANIFEST_NAME, size=None, sha256=version.manifest_sha256, url=base + MANIFEST_NAME)]
    for entry in version.manifest.get("files") or []:
        if isinstance(entry, dict) and "path" in entry:
            path = str(entry["path"])
            rows.append(
                FileRow(
                    path=path,
                    size=int(entry.get("size", 0)),
                    sha256=str(entry.get("sha256", "")),
                    url=base + quote(path),
                )
            )
    return rows


def _facts(version: VersionDetail) -> list[tuple[str, str]]:
    m = version.manifest
    meta = m.get("metadata") or {}
    pre = m.get("preprocessing") or {}
    image = pre.get("image") or {}
    tokenizer = pre.get("tokenizer") or {}
    facts = [
        ("Task", str(m.get("task", ""))),
        ("Licence", str(m.get("license", ""))),
        ("Framework", f"{m.get('framework', '')} {m.get('torch_version', '')}".strip()),
        ("Fine-tunable", "yes" if m.get("fine_tunable", True) else "no"),
        ("Architecture", str(meta.get("architecture", ""))),
        ("Trained on", str(meta.get("dataset", ""))),
        ("Base module", str(meta.get("base_module") or "")),
        ("Input size", f"{image['height']} × {image['width']}" if image.get("height") else ""),
        ("Max tokens", str(tokenizer.get("max_length", "")) if tokenizer else ""),
        ("Weights from", str(meta.get("source", ""))),
    ]
    return [(label, value) for label, value in facts if value]


def module_page(module: ModuleDetail, version: VersionDetail, *, base_url: str, is_latest_view: bool) -> ModulePage:
    handle_url = f"{base_url.rstrip('/')}/{version.handle}"
    meta = version.manifest.get("metadata") or {}
    return ModulePage(
        module=module,
        version=version,
        is_latest_view=is_latest_view,
        card=render_card(version.card),
        signatures=signature_views(version.manifest),
        snippets=usage_snippets(version.manifest, handle_url),
        files=file_rows(version),
        facts=_facts(version),
        tags=[str(t) for t in meta.get("tags") or []],
    )
