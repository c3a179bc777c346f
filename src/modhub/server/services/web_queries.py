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
from modhub.server.models import Module, Publisher, Token
from modhub.server.services.visibility import may_read_private_of, readable


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


def visible_handles(session: Session, limit: int | None = 5, *, reader: Token | None = None) -> list[str]:
    """``publisher/name`` of visible modules, most downloaded first (``limit`` None: all)."""
    stmt = (
        select(Publisher.name, Module.name)
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None), readable(reader))
        .order_by(Module.downloads.desc(), Publisher.name, Module.name)
        .limit(limit)
    )
    return [f"{publisher}/{name}" for publisher, name in session.execute(stmt)]


class SuggestionIndex:
    """Every visible handle and publisher name in memory, for the 404 page's closest names.

    Private modules are kept apart, by publisher: each request matches against the
    public ones plus those its reader may see (services.visibility).

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
        # Visible public modules' handles, and the publishers that have one.
        self.handles: list[str] = []
        self.names: list[str] = []
        self.publishers: list[str] = []
        # Private modules' handles by publisher.
        self.private: dict[str, list[str]] = {}

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
        rows = session.execute(
            select(Publisher.name, Module.name, Module.private)
            .join(Module.publisher)
            .where(Module.latest_version.is_not(None))
            .order_by(Module.downloads.desc(), Publisher.name, Module.name)
        ).all()
        handles = [f"{p}/{m}" for p, m, private in rows if not private]
        private_handles: dict[str, list[str]] = {}
        for p, m, private in rows:
            if private:
                private_handles.setdefault(p, []).append(f"{p}/{m}")
        publishers = sorted({p for p, _m, private in rows if not private})
        with self._lock:
            self.handles, self.publishers, self.private = handles, publishers, private_handles
            self.names = [h.split("/", 1)[1] for h in handles]
            self._stamp, self._built = stamp, now
        return self

    def visible_to(self, reader: Token | None) -> tuple[list[str], list[str], list[str]]:
        """(handles, their module names, publishers) that ``reader`` may see."""
        shown = [p for p in self.private if may_read_private_of(reader, p)]
        if not shown:
            return self.handles, self.names, self.publishers
        extra = [h for p in shown for h in self.private[p]]
        return (
            self.handles + extra,
            self.names + [h.split("/", 1)[1] for h in extra],
            sorted(set(self.publishers) | set(shown)),
        )


def closest_handles(
    index: SuggestionIndex, wanted: str, n: int = 5, *, reader: Token | None = None
) -> list[str]:
    """Handles that look like ``wanted`` (a mistyped path), best first; also matches on the name alone."""
    wanted = wanted.strip("/").lower()[:200]
    if not wanted:
        return []
    parts = wanted.split("/")
    # A path with a version ("p/n/3") is compared without it.
    if len(parts) >= 3 and (is_version(parts[-1]) or parts[-1] == "latest"):
        parts = parts[:-1]
    wanted = "/".join(parts[:2])
    handles, names, _ = index.visible_to(reader)
    scores: dict[str, float] = {}
    for query, choices in ((wanted, handles), (parts[-1], names)):
        for _choice, score, i in process.extract(
            query, choices, scorer=fuzz.ratio, limit=4 * n, score_cutoff=50, processor=None
        ):
            scores[handles[i]] = max(scores.get(handles[i], 0.0), score)
    return sorted(scores, key=lambda h: (-scores[h], h))[:n]


def closest_publishers(
    index: SuggestionIndex, wanted: str, n: int = 3, *, reader: Token | None = None
) -> list[str]:
    """Publisher names that look like ``wanted`` (only those with a module ``reader`` may see)."""
    wanted = wanted.lower()[:100]
    if not wanted:
        return []
    found = process.extract(
        wanted, index.visible_to(reader)[2], scorer=fuzz.ratio, limit=n, score_cutoff=60, processor=None
    )
    return [choice for choice, _score, _i in sorted(found, key=lambda m: (-m[1], m[0]))]
