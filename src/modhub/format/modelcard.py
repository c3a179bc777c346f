"""The model card: ``README.md`` with YAML front matter, as on tfhub.dev and the HF Hub."""

from __future__ import annotations

from typing import Any

import yaml

from modhub.errors import ManifestError
from modhub.format.manifest import Manifest


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Return (front matter, Markdown body). A card without front matter has an empty dict."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        raise ManifestError("README.md opens a YAML front matter block (---) but never closes it")
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as exc:
        raise ManifestError(f"README.md front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ManifestError("README.md front matter must be a YAML mapping")
    body = text[end + 4 :].lstrip("-").lstrip("\n")
    return meta, body


def front_matter(manifest: Manifest) -> dict[str, Any]:
    return {
        "task": manifest.task,
        "license": manifest.license,
        "framework": manifest.framework,
        "library": "modhub",
        "tags": list(manifest.metadata.tags),
        "fine_tunable": manifest.fine_tunable,
        **({"base_module": manifest.metadata.base_module} if manifest.metadata.base_module else {}),
        **({"dataset": manifest.metadata.dataset} if manifest.metadata.dataset else {}),
    }


def render_card(manifest: Manifest, body: str | None, title: str) -> str:
    """Front matter from the manifest + the author's Markdown (or a generated one)."""
    meta = yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True)
    if body is None:
        md = manifest.metadata
        title = md.title or title
        parts = [f"# {title}", "", md.description or f"A `{manifest.task}` module."]
        if md.architecture:
            parts += ["", f"**Architecture:** {md.architecture}"]
        if md.dataset:
            parts += [f"**Trained on:** {md.dataset}"]
        if md.source:
            parts += [f"**Weights from:** {md.source}"]
        # No usage snippet: the hub handle is not known yet, and the hub's module
        # page shows the signatures and snippets for the published handle.
        parts += ["", "Run `modhub show` on the module for its signatures and files."]
        parts += ["", "## Licence", "", manifest.license]
        body = "\n".join(parts) + "\n"
    return f"---\n{meta}---\n\n{body}"
