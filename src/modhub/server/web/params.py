"""The home page's query string, parsed leniently: a bad value falls back to its default.

A shared or hand-edited URL must never break the page, so ``page=-1``,
``page=abc``, ``per_page=10**9``, ``sort=evil``, repeated keys, control
characters or a megabyte of ``q`` all turn into a sane listing. The parsed
state also writes URLs back (pagination, removing one filter), so every
view of the listing stays shareable.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, cast
from urllib.parse import urlencode

from modhub.server.services.schemas import SearchQuery, SortKey

FILTERS = ("task", "format", "publisher", "license", "framework")
SORTS: dict[str, str] = {"downloads": "Most downloaded", "newest": "Newest", "name": "Name"}
DEFAULT_SORT: SortKey = "downloads"
PER_PAGE_CHOICES = (12, 24, 48, 96)
DEFAULT_PER_PAGE = 24
# Longest free-text query kept, and most words searched (each word is one LIKE).
MAX_Q_CHARS = 200
MAX_Q_WORDS = 8
# Longest filter value kept: longer ones cannot name anything (names are at most 64 characters).
MAX_FILTER_CHARS = 100
# Pages past this are not offered (a deep OFFSET costs the database for nothing).
MAX_PAGE = 10_000


def clean_text(value: str, limit: int) -> str:
    """Drop control, format (bidi overrides), surrogate and unassigned characters; squeeze spaces; cut."""
    kept = []
    for ch in value[: limit * 4]:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(" ")
        else:
            kept.append(ch)
    return " ".join("".join(kept).split())[:limit].strip()


def _int(value: str | None, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        return default
    return min(max(int(value), low), high)


@dataclass(frozen=True)
class Listing:
    """What the home page shows: search words, filters, sort and page."""

    q: str = ""
    task: str = ""
    format: str = ""
    publisher: str = ""
    license: str = ""
    framework: str = ""
    sort: SortKey = DEFAULT_SORT
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Listing:
        """From a query string (Starlette's QueryParams keep the last value of a repeated key)."""
        q = clean_text(params.get("q", ""), MAX_Q_CHARS)
        q = " ".join(q.split()[:MAX_Q_WORDS])
        filters = {key: clean_text(params.get(key, ""), MAX_FILTER_CHARS) for key in FILTERS}
        sort = params.get("sort", DEFAULT_SORT)
        per_page = _int(params.get("per_page"), DEFAULT_PER_PAGE, 1, max(PER_PAGE_CHOICES))
        return cls(
            q=q,
            sort=cast(SortKey, sort) if sort in SORTS else DEFAULT_SORT,
            page=_int(params.get("page"), 1, 1, MAX_PAGE),
            per_page=per_page,
            **filters,
        )

    @property
    def active_filters(self) -> list[tuple[str, str]]:
        return [(key, getattr(self, key)) for key in FILTERS if getattr(self, key)]

    @property
    def is_default_view(self) -> bool:
        return not self.q and not self.active_filters

    def search_query(self) -> SearchQuery:
        return SearchQuery(
            q=self.q,
            task=self.task or None,
            format=self.format or None,
            publisher=self.publisher or None,
            license=self.license or None,
            framework=self.framework or None,
            sort=self.sort,
            page=self.page,
            per_page=self.per_page,
        )

    def url(self, **changes: str | int) -> str:
        """The home-page URL of this listing with ``changes`` applied; defaults are left out."""
        state = replace(self, **changes)  # type: ignore[arg-type]
        pairs: list[tuple[str, str | int]] = []
        if state.q:
            pairs.append(("q", state.q))
        pairs += state.active_filters
        if state.sort != DEFAULT_SORT:
            pairs.append(("sort", state.sort))
        if state.per_page != DEFAULT_PER_PAGE:
            pairs.append(("per_page", state.per_page))
        if state.page != 1:
            pairs.append(("page", state.page))
        return "/" + ("?" + urlencode(pairs) if pairs else "")

    def without(self, key: Literal["q", "task", "format", "publisher", "license", "framework"]) -> str:
        """URL with one filter (or the search words) removed, back on page 1."""
        return self.url(**{key: ""}, page=1)


def page_numbers(page: int, pages: int, around: int = 2) -> list[int | None]:
    """Page links to show: first, last and ``around`` either side of ``page``; None marks a gap."""
    if pages <= 1:
        return [1] if pages == 1 else []
    shown = sorted({1, pages, *range(max(1, page - around), min(pages, page + around) + 1)})
    out: list[int | None] = []
    previous = 0
    for number in shown:
        if previous and number - previous > 1:
            out.append(None)
        out.append(number)
        previous = number
    return out
