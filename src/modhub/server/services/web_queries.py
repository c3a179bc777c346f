"""Read-side queries only the website needs: filter facets and the handles a 404 page suggests.

The JSON API's queries live in ``queries``; these complement them and, like
them, consider only visible modules (at least one non-yanked version).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from modhub.handles import is_version
from modhub.server.models import Module, Publisher


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


def _grouped(session: Session, column) -> Counter[str]:  # type: ignore[no-untyped-def]
    stmt = (
        select(column, func.count())
        .select_from(Module)
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None))
        .group_by(column)
    )
    return Counter({str(value): int(n) for value, n in session.execute(stmt) if value})


def facets(session: Session) -> Facets:
    """Counts per task, format, publisher, licence and framework over all visible modules."""
    formats: Counter[str] = Counter()
    for packed, n in _grouped(session, Module.formats).items():
        for fmt in packed.split():
            formats[fmt] += n
    return Facets(
        task=_sorted(_grouped(session, Module.task)),
        format=_sorted(formats),
        publisher=_sorted(_grouped(session, Publisher.name)),
        license=_sorted(_grouped(session, Module.license)),
        framework=_sorted(_grouped(session, Module.framework)),
    )


def visible_handles(session: Session, limit: int | None = 5) -> list[str]:
    """``publisher/name`` of visible modules, most downloaded first (``limit`` None: all)."""
    stmt = (
        select(Publisher.name, Module.name)
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None))
        .order_by(Module.downloads.desc(), Publisher.name, Module.name)
        .limit(limit)
    )
    return [f"{publisher}/{name}" for publisher, name in session.execute(stmt)]


class SuggestionIndex:
    """Every visible handle and publisher name in memory, for the 404 page's closest names.

    Rebuilt when a module or publisher is added or changed (two indexed MAX()
    lookups per request tell), and at least every ``ttl`` seconds (a yank
    changes no timestamp). Matching is rapidfuzz's C implementation of the
    same similarity difflib computes, so 100,000 modules stay cheap (see
    bench/bench_suggest.py).
    """

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._built = 0.0
        self.handles: list[str] = []
        self.names: list[str] = []
        self.publishers: list[str] = []

    def refresh(self, session: Session) -> SuggestionIndex:
        stamp = tuple(
            session.execute(
                select(
                    select(func.max(Module.id)).scalar_subquery(),
                    select(func.max(Module.updated_at)).scalar_subquery(),
                    select(func.max(Publisher.id)).scalar_subquery(),
                )
            ).one()
        )
        now = time.monotonic()
        with self._lock:
            if stamp == self._stamp and now - self._built < self.ttl:
                return self
        handles = visible_handles(session, limit=None)
        publishers = list(session.scalars(select(Publisher.name).order_by(Publisher.name)))
        with self._lock:
            self.handles = handles
            self.names = [h.split("/", 1)[1] for h in handles]
            self.publishers = publishers
            self._stamp, self._built = stamp, now
        return self


def closest_handles(index: SuggestionIndex, wanted: str, n: int = 5) -> list[str]:
    """Handles that look like ``wanted`` (a mistyped path), best first; also matches on the name alone."""
    wanted = wanted.strip("/").lower()[:200]
    if not wanted:
        return []
    parts = wanted.split("/")
    # A path with a version ("p/n/3") is compared without it.
    if len(parts) >= 3 and (is_version(parts[-1]) or parts[-1] == "latest"):
        parts = parts[:-1]
    wanted = "/".join(parts[:2])
    handles, names = index.handles, index.names
    scores: dict[str, float] = {}
    for query, choices in ((wanted, handles), (parts[-1], names)):
        for _choice, score, i in process.extract(
            query, choices, scorer=fuzz.ratio, limit=4 * n, score_cutoff=50, processor=None
        ):
            scores[handles[i]] = max(scores.get(handles[i], 0.0), score)
    return sorted(scores, key=lambda h: (-scores[h], h))[:n]


def closest_publishers(index: SuggestionIndex, wanted: str, n: int = 3) -> list[str]:
    """Publisher names that look like ``wanted``."""
    wanted = wanted.lower()[:100]
    if not wanted:
        return []
    found = process.extract(
        wanted, index.publishers, scorer=fuzz.ratio, limit=n, score_cutoff=60, processor=None
    )
    return [choice for choice, _score, _i in sorted(found, key=lambda m: (-m[1], m[0]))]
