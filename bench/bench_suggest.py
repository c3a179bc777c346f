"""The 404 page's "closest names" with 100,000 modules: difflib over every handle vs the index.

Builds a hub database with ``--modules`` visible modules (bulk insert), then times, per
mistyped path, (a) the old way: load every handle and run difflib's SequenceMatcher over
each, and (b) ``SuggestionIndex`` (built once, then two indexed MAX() lookups per request)
with rapidfuzz. Prints the medians and the ratio. The machine may be shared: compare the
ratio, not the absolute numbers.

    python bench/bench_suggest.py [--modules 100000] [--queries 20]
"""

from __future__ import annotations

import argparse
import difflib
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.models import Module, Publisher, utcnow
from modhub.server.services.web_queries import SuggestionIndex, closest_handles, visible_handles

WORDS = [
    "efficient",
    "mobile",
    "net",
    "bert",
    "mini",
    "glove",
    "vision",
    "text",
    "image",
    "audio",
    "speech",
    "tiny",
    "large",
    "base",
    "small",
]


def _populate(hub: object, modules: int, rng: random.Random) -> list[str]:
    publishers = [f"team-{i}" for i in range(max(1, modules // 50))]
    now = utcnow()
    names: list[str] = []
    with hub.db.write_session() as session:  # type: ignore[attr-defined]
        session.execute(insert(Publisher), [{"name": p, "created_at": now} for p in publishers])
        rows = []
        for i in range(modules):
            name = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}-{i}"
            publisher_id = i % len(publishers) + 1
            names.append(f"{publishers[publisher_id - 1]}/{name}")
            rows.append(
                {
                    "publisher_id": publisher_id,
                    "name": name,
                    "folded": f"{publisher_id}/{name}",
                    "created_at": now,
                    "updated_at": now,
                    "downloads": rng.randrange(1000),
                    "latest_version": 1,
                    "task": "image-feature-vector",
                    "framework": "torch",
                    "license": "Apache-2.0",
                    "formats": " pt2 ",
                    "title": name,
                    "description": "",
                    "tags": [],
                    "search_text": name,
                }
            )
        session.execute(insert(Module), rows)
        session.commit()
    return names


def _old_closest(session: object, wanted: str, n: int = 5) -> list[str]:
    """The previous implementation: difflib over every handle (no pool limit)."""
    wanted = wanted.strip("/").lower()
    parts = wanted.split("/")
    wanted = "/".join(parts[:2])
    scores: dict[str, float] = {}
    matcher = difflib.SequenceMatcher()
    for handle in visible_handles(session, limit=None):  # type: ignore[arg-type]
        best = 0.0
        name = handle.split("/", 1)[1]
        for candidate, target in ((wanted, handle), (parts[-1], name)):
            matcher.set_seqs(candidate, target)
            if matcher.real_quick_ratio() >= 0.5 and matcher.quick_ratio() >= 0.5:
                best = max(best, matcher.ratio())
        if best >= 0.5:
            scores[handle] = best
    return sorted(scores, key=lambda h: (-scores[h], h))[:n]


def _typo(handle: str, rng: random.Random) -> str:
    chars = list(handle)
    i = rng.randrange(len(chars))
    chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return "/" + "".join(chars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--old-queries", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        hub = create_hub(ServerSettings(data_dir=Path(tmp) / "hub"))
        start = time.perf_counter()
        handles = _populate(hub, args.modules, rng)
        print(f"{args.modules} modules inserted in {time.perf_counter() - start:.1f} s")
        queries = [_typo(rng.choice(handles), rng) for _ in range(args.queries)]
        index = SuggestionIndex()
        old_times, new_times, agree = [], [], 0
        with hub.db.session() as session:
            start = time.perf_counter()
            index.refresh(session)
            build = time.perf_counter() - start
            news = []
            for query in queries:
                start = time.perf_counter()
                news.append(closest_handles(index.refresh(session), query))
                new_times.append(time.perf_counter() - start)
            # The old way costs seconds per page: time only the first few.
            for query, new in list(zip(queries, news, strict=True))[: args.old_queries]:
                start = time.perf_counter()
                old = _old_closest(session, query)
                old_times.append(time.perf_counter() - start)
                agree += bool(old and new and old[0] == new[0])
        hub.db.dispose()
    old_ms, new_ms = statistics.median(old_times) * 1000, statistics.median(new_times) * 1000
    print(f"index build (once, then on change): {build * 1000:.0f} ms")
    print(f"| per 404 page, {args.modules} modules | median |")
    print("|---|---|")
    print(f"| difflib over every handle (before) | {old_ms:.1f} ms |")
    print(f"| SuggestionIndex + rapidfuzz (now) | {new_ms:.2f} ms |")
    print(f"| ratio before/now | {old_ms / new_ms:.0f}x |")
    print(f"same best suggestion: {agree}/{len(old_times)}")


if __name__ == "__main__":
    main()
