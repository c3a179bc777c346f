"""The hub under load: 50 concurrent readers + 4 concurrent publishers while a big upload runs.

Starts its own hub (``modhub serve`` on a loopback port, fresh data directory), publishes a
few tiny modules, then for ``--seconds`` runs, with one bounded async httpx client:

* 50 readers, each looping over: search API, home page, module page, version API,
  a Range download of a file, with a think time between requests (``--think``: uniform
  between 0.5x and 1.5x of it, like locust's ``between``), so that the load is bounded
  as real users bound it; ``--think 0`` runs them back to back, which measures the
  hub's saturation throughput rather than its latency;
* 4 publishers, each publishing new versions of its own module;
* uploads of a ``--upload-mb`` module (default 1024 MB of random bytes), one after another,
  from start to end (new versions of the same bytes: the hub keeps one blob).

Prints requests/s, p50/p99 latency per kind, and errors (any 5xx, transport error, or an
unexpected status). The machine may be shared with other work: read the numbers as a
bound, and compare metadata latency with and without the big upload (``--upload-mb 0``).

    python bench/bench_hub_load.py [--seconds 30] [--readers 50] [--think 1.0] [--publishers 4]
        [--upload-mb 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

API = "/api/v1"


def _module(work: Path) -> Path:
    import torch
    from tests.tiny_models import TinyCNN

    import modhub as hub

    torch.manual_seed(0)
    return hub.export(
        TinyCNN(classes=6).eval(),
        torch.rand(2, 3, 32, 32),
        work / "tiny",
        task="image-feature-vector",
        license="Apache-2.0",
        metadata={"title": "Tiny", "description": "load bench", "tags": ["bench"]},
    )


def _big(tiny: Path, work: Path, mb: int) -> Path:
    from tests.server.conftest import relist

    big = work / "big"
    shutil.copytree(tiny, big)
    (big / "assets").mkdir(exist_ok=True)
    with open(big / "assets" / "weights.bin", "wb") as fh:
        for _ in range(mb):
            fh.write(os.urandom(1 << 20))
    return relist(big)


def _parts(module: Path) -> list[tuple[str, Any]]:
    from modhub.format.manifest import MANIFEST_NAME, read_manifest

    parts: list[tuple[str, Any]] = [("manifest", (MANIFEST_NAME, (module / MANIFEST_NAME).read_bytes()))]
    for entry in read_manifest(module).files:
        parts.append(("files", (entry.path, (module / entry.path).read_bytes())))
    return parts


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: list[str] = []

    async def timed(self, kind: str, call: Any, ok: tuple[int, ...] = (200,)) -> httpx.Response | None:
        start = time.perf_counter()
        try:
            response: httpx.Response = await call
        except httpx.HTTPError as exc:
            self.errors[kind] += 1
            self.examples.append(f"{kind}: {type(exc).__name__} {exc}")
            return None
        self.latency[kind].append(time.perf_counter() - start)
        if response.status_code not in ok:
            self.errors[kind] += 1
            self.examples.append(f"{kind}: {response.status_code} {response.text[:200]}")
        return response


async def _reader(
    http: httpx.AsyncClient, stats: Stats, stop: float, rng: random.Random, think: float
) -> None:
    if think:
        await asyncio.sleep(rng.uniform(0, think))  # users arrive spread out, not in lockstep
    while time.monotonic() < stop:
        if think:
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
        kind = rng.choice(["search", "home", "page", "version", "range"])
        if kind == "search":
            await stats.timed(
                kind, http.get(f"{API}/modules", params={"q": rng.choice(["tiny", "bench", ""])})
            )
        elif kind == "home":
            await stats.timed(kind, http.get("/", headers={"Accept": "text/html"}))
        elif kind == "page":
            await stats.timed(kind, http.get("/acme/tiny", headers={"Accept": "text/html"}))
        elif kind == "version":
            await stats.timed(
                kind, http.get(f"{API}/modules/acme/tiny/versions/1", headers={"X-Modhub-Client": "bench"})
            )
        else:
            start = rng.randrange(0, 1000)
            await stats.timed(
                kind,
                http.get(
                    f"{API}/modules/acme/tiny/versions/1/files/graph.pt2",
                    headers={"Range": f"bytes={start}-{start + 4095}"},
                ),
                ok=(206,),
            )


async def _publish(
    http: httpx.AsyncClient, stats: Stats, kind: str, repo: str, token: str, files: list[tuple[str, Any]]
) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    await stats.timed(kind, http.post(f"{API}/modules/{repo}/versions", files=files, headers=auth), ok=(201,))


async def _publisher(
    http: httpx.AsyncClient, stats: Stats, stop: float, token: str, parts: list[tuple[str, Any]], i: int
) -> None:
    while time.monotonic() < stop:
        await _publish(http, stats, "publish", f"acme/load-{i}", token, parts)


async def _uploads(url: str, stats: Stats, token: str, module: Path, stop: float) -> tuple[int, float]:
    """Publish new versions of the big module back to back until ``stop``: (uploads, seconds).

    The same bytes every time, so the hub stores the blob once (content-addressed) but
    receives, stages, hashes and checks all of it on every upload.
    """
    from contextlib import ExitStack

    from modhub.format.manifest import MANIFEST_NAME, read_manifest

    start = time.perf_counter()
    done = 0
    async with httpx.AsyncClient(base_url=url, timeout=3600) as http:
        while not done or time.monotonic() < stop:
            with ExitStack() as stack:
                files: list[tuple[str, Any]] = [
                    ("manifest", (MANIFEST_NAME, (module / MANIFEST_NAME).read_bytes()))
                ]
                for entry in read_manifest(module).files:
                    handle = stack.enter_context(open(module / entry.path, "rb"))
                    files.append(("files", (entry.path, handle)))
                await _publish(http, stats, "big upload", "acme/big", token, files)
            done += 1
    return done, time.perf_counter() - start


async def _run(
    url: str, token: str, args: argparse.Namespace, tiny: Path, big: Path | None
) -> tuple[Stats, float, tuple[int, float]]:
    stats = Stats()
    rng = random.Random(0)
    parts = _parts(tiny)
    limits = httpx.Limits(max_connections=args.readers + args.publishers + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.monotonic()
        stop = start + 0.5 + args.seconds
        upload = asyncio.create_task(_uploads(url, stats, token, big, stop)) if big is not None else None
        await asyncio.sleep(0.5)  # the first upload is under way before the readers start
        tasks = [
            _reader(http, stats, stop, random.Random(rng.random()), args.think) for _ in range(args.readers)
        ]
        tasks += [_publisher(http, stats, stop, token, parts, i) for i in range(args.publishers)]
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start - 0.5
        uploads = await upload if upload is not None else (0, 0.0)
    return stats, elapsed, uploads


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument(
        "--think", type=float, default=1.0, help="mean seconds a reader waits between requests (0: none)"
    )
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--upload-mb", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=1, help="modhub serve --workers")
    args = parser.parse_args()

    from tests.server.conftest import LiveHub, admin_cli

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tiny = _module(work)
        big = _big(tiny, work, args.upload_mb) if args.upload_mb else None
        live = LiveHub(work / "data", workers=args.workers)
        live.start()
        try:
            token = admin_cli(live.data_dir, "--publisher", "acme")
            response = httpx.post(
                f"{live.url}{API}/modules/acme/tiny/versions",
                files=_parts(tiny),
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
            assert response.status_code == 201, response.text
            stats, elapsed, (uploads, upload_s) = asyncio.run(_run(live.url, token, args, tiny, big))
        finally:
            live.stop()
    total = sum(len(v) for v in stats.latency.values())
    print(
        f"{args.readers} readers (think {args.think:g} s) + {args.publishers} publishers "
        f"for {elapsed:.0f} s; {args.workers} hub worker(s); "
        f"upload {args.upload_mb} MB"
    )
    print(f"requests: {total}, {total / elapsed:.0f} req/s; errors: {sum(stats.errors.values())}")
    print("| kind | requests | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|")
    meta: list[float] = []
    for kind in sorted(stats.latency):
        values = stats.latency[kind]
        if kind in ("search", "home", "page", "version"):
            meta += values
        print(
            f"| {kind} | {len(values)} | {_pct(values, 0.5):.0f} | {_pct(values, 0.99):.0f} "
            f"| {stats.errors[kind]} |"
        )
    if meta:
        print(
            f"metadata (search, home, page, version): p50 {_pct(meta, 0.5):.0f} ms, "
            f"p99 {_pct(meta, 0.99):.0f} ms"
        )
    if big is not None:
        print(
            f"{uploads} uploads of {args.upload_mb} MB ran throughout, in {upload_s:.0f} s "
            f"({uploads * args.upload_mb / max(upload_s, 1e-9):.0f} MB/s)"
        )
    for example in stats.examples[:5]:
        print("error:", example)


if __name__ == "__main__":
    main()
