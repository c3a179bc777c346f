"""Model cards (README.md) rendered to HTML that is safe to put on the page.

A card is written by whoever published the module, so it is untrusted input.
Markdown is rendered with markdown-it-py (raw HTML allowed, as on the HF Hub
and GitHub: cards often use ``<img>`` or ``<details>``), then the HTML goes
through nh3 (ammonia) with an allow-list: no ``<script>``, ``<style>``,
``<iframe>``, ``<form>``, no ``on*`` attributes, no ``style``, and only
http(s)/mailto URLs. Links get ``rel="nofollow noopener noreferrer"``. The
pages also send a Content-Security-Policy that forbids inline script, so a
sanitiser bug alone would not run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt

from modhub.errors import ManifestError
from modhub.format.modelcard import split_front_matter

# Cards bigger than this are cut before rendering (a card is documentation, not a data dump).
MAX_CARD_CHARS = 300_000

_TAGS = (set(nh3.ALLOWED_TAGS) - {"area", "map"}) | {"details", "summary", "picture", "source"}
_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title", "hreflang"},
    "source": {"srcset", "media", "type"},
    "code": {"class"},
    "details": {"open"},
}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
        strip_comments=True,
        # Only markdown-it's "language-xxx" classes on code blocks survive.
        attribute_filter=_filter_attribute,
    )


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        classes = [c for c in value.split() if c.startswith("language-") and c[9:].isalnum()]
        return " ".join(classes) or None
    return value


def sanitize_html(html: str) -> str:
    """Allow-listed HTML only (see module docstring)."""
    return _cleaner().clean(html)


def markdown_to_html(text: str) -> str:
    return sanitize_html(_markdown().render(text[:MAX_CARD_CHARS]))


@dataclass(frozen=True)
class RenderedCard:
    # Sanitised HTML of the Markdown body ("" for no card).
    html: str
    # The YAML front matter ({} when absent or unreadable).
    meta: dict[str, Any]
    # Why the front matter could not be read, shown to the reader; "" when fine.
    problem: str = ""


@lru_cache(maxsize=256)
def render_card(text: str) -> RenderedCard:
    """Front matter apart, body to safe HTML. A broken front matter is reported, not fatal."""
    if not text.strip():
        return RenderedCard(html="", meta={})
    try:
        meta, body = split_front_matter(text)
    except ManifestError as exc:
        return RenderedCard(html=markdown_to_html(text), meta={}, problem=str(exc))
    return RenderedCard(html=markdown_to_html(body), meta=meta)
