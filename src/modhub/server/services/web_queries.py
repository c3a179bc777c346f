"""Read-side queries only the website needs: filter facets and the handles a 404 page suggests.

The JSON API's queries live in ``queries``; these complement them and, like
them, consider only visible modules (at least one non-yanked version).
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modhub.handles import is_version
from modhub.server.models import Module, Publisher, Token
from modhub.server.services.visibility import readable

# The 404 page compares the requested path with at most this many handles (by downloads).
MAX_SUGGESTION_POOL = 5000


@dataclass(frozen=True)
class Facet:
    """One filterable value and how many visible modules have it."""

    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    """Every value each home-page filter can take, most common first."""

    task: list[Facet] = field(default_factory=list)
    format: list[Facet] = field(default_factory=list)
    publisher: list[Facet] = field(default_factory=list)
    license: list[Facet] = field(default_factory=list)
    framework: list[Facet] = field(default_factory=list)


def _sorted(counts: Counter[str]) -> list[Facet]:
    return [Facet(v, n) for v, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])) if v]


def _grouped(session: Session, column, reader: Token | None) -> Counter[str]:  # type: ignore[no-untyped-def]
    stmt = (
        select(column, func.count())
        .select_from(Module)
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None), readable(reader))
        .group_by(column)
    )
    return Counter({str(value): int(n) for value, n in session.execute(stmt) if value})


def facets(session: Session, *, reader: Token | None = None) -> Facets:
    """Counts per task, format, publisher, licence and framework over all visible modules."""
    formats: Counter[str] = Counter()
    for packed, n in _grouped(session, Module.formats, reader).items():
        for fmt in packed.split():
            formats[fmt] += n
    return Facets(
        task=_sorted(_grouped(session, Module.task, reader)),
        format=_sorted(formats),
        publisher=_sorted(_grouped(session, Publisher.name, reader)),
        license=_sorted(_grouped(session, Module.license, reader)),
        framework=_sorted(_grouped(session, Module.framework, reader)),
    )


def visible_handles(
    session: Session, limit: int = MAX_SUGGESTION_POOL, *, reader: Token | None = None
) -> list[str]:
    """``publisher/name`` of visible modules, most downloaded first."""
    stmt = (
        select(Publisher.name, Module.name)
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None), readable(reader))
        .order_by(Module.downloads.desc(), Publisher.name, Module.name)
        .limit(limit)
    )
    return [f"{publisher}/{name}" for publisher, name in session.execute(stmt)]


def closest_handles(session: Session, wanted: str, n: int = 5, *, reader: Token | None = None) -> list[str]:
    """Handles that look like ``wanted`` (a mistyped path), best first; also matches on the name alone."""
    wanted = wanted.strip("/").lower()[:200]
    if not wanted:
        return []
    parts = wanted.split("/")
    # A path with a version ("p/n/3") is compared without it.
    if len(parts) >= 3 and (is_version(parts[-1]) or parts[-1] == "latest"):
        parts = parts[:-1]
    wanted = "/".join(parts[:2])
    handles = visible_handles(session, reader=reader)
    scores: dict[str, float] = {}
    matcher = difflib.SequenceMatcher()
    for handle in handles:
        best = 0.0
        name = handle.split("/", 1)[1]
        for candidate, target in ((wanted, handle), (parts[-1], name)):
            matcher.set_seqs(candidate, target)
            if matcher.real_quick_ratio() >= 0.5 and matcher.quick_ratio() >= 0.5:
                best = max(best, matcher.ratio())
        if best >= 0.5:
            scores[handle] = best
    return sorted(scores, key=lambda h: (-scores[h], h))[:n]


def closest_publishers(
    session: Session, wanted: str, n: int = 3, *, reader: Token | None = None
) -> list[str]:
    """Publisher names that look like ``wanted`` (only those with a module ``reader`` may see)."""
    wanted = wanted.lower()[:100]
    if not wanted:
        return []
    shown = select(Module.publisher_id).where(readable(reader))
    names = session.scalars(
        select(Publisher.name)
        .where(Publisher.id.in_(shown))
        .order_by(Publisher.name)
        .limit(MAX_SUGGESTION_POOL)
    ).all()
    return difflib.get_close_matches(wanted, list(names), n=n, cutoff=0.6)
