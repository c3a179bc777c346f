"""Download speed of the modhub client against curl, and warm ``hub.resolve`` latency.

* cold: ``resolve(handle)`` of the hub's largest module into an empty cache
  (manifest request, every file streamed, hashed, verified, linked into the
  version directory) vs ``curl`` fetching the same file URLs to disk;
* warm: ``hub.resolve(handle)`` once the version is cached (no request).

By default the benchmark runs its own hub (``modhub serve`` on a loopback
port, fresh data directory) and publishes a module with a ``--size-mb``
weight matrix; ``--endpoint URL`` measures an existing hub instead.

    python bench/bench_download.py [--endpoint URL] [--size-mb 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from modhub.client.api import HubClient, open_http_client
from modhub.client.resolve import Resolver
from modhub.handles import Handle
from modhub.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODHUB_")}
    return {**env, **values}


def _modhub(*args: str, env: dict[str, str]) -> str:
    return subprocess.run(
        [sys.executable, "-m", "modhub", *args], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@contextmanager
def own_hub(size_mb: int, work: Path) -> Iterator[str]:
    """A fresh hub on loopback with one module of about ``size_mb`` MB published."""
    import torch
    from torch import nn

    import modhub as hub

    data = work / "hub-data"
    token = _modhub("admin", "create-token", "--data-dir", str(data), "--publisher", "bench", env=_env())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "modhub", "serve", "--port", str(port), "--data-dir", str(data)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{endpoint}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit("the hub did not start")
        width = int((size_mb * 1e6 / 4) ** 0.5)

        class Wide(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.proj = nn.Linear(3, width)
                self.big = nn.Linear(width, width)

            def forward(self, images: torch.Tensor) -> torch.Tensor:
                return self.big(torch.relu(self.proj(images.mean((2, 3)))))

        torch.manual_seed(0)
        module = hub.export(
            Wide().eval(), torch.rand(2, 3, 16, 16), work / "wide", task="image-feature-vector", license="MIT"
        )
        env = _env(MODHUB_ENDPOINT=endpoint, MODHUB_TOKEN=token, MODHUB_CACHE=str(work / "pub-cache"))
        _modhub("publish", str(module), "bench/wide", env=env)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def largest_version(endpoint: str) -> tuple[Handle, int]:
    """The hub's largest (non-yanked) module version and its size in bytes."""
    best: tuple[Handle, int] | None = None
    with open_http_client() as http:
        hub = HubClient(http, endpoint)
        page = 1
        while True:
            result = hub.search(page=page, per_page=100)
            for item in result.items:
                for info in hub.module(item.publisher, item.name).versions:
                    if not info.yanked and info.size is not None and (best is None or info.size > best[1]):
                        best = (Handle(item.publisher, item.name, info.version), info.size)
            if page * result.per_page >= result.total:
                break
            page += 1
    if best is None:
        raise SystemExit(f"the hub at {endpoint} has no modules")
    return best


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def time_curl(endpoint: str, handle: Handle, work: Path) -> tuple[float, float]:
    """Wall and CPU seconds of curl fetching every file of ``handle`` to disk."""
    with open_http_client() as http:
        hub = HubClient(http, endpoint)
        manifest = hub.version(handle).manifest
        urls = [hub.file_url(handle, "modhub.json")] + [hub.file_url(handle, e.path) for e in manifest.files]
    out = work / "curl"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    args = ["curl", "-sSf"]
    for i, url in enumerate(urls):
        args += ["-o", str(out / str(i)), url]
    cpu, start = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(args, check=True)
    return time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu


def time_cold(endpoint: str, handle: Handle, work: Path) -> tuple[float, float]:
    """Wall and CPU seconds of resolving ``handle`` into an empty cache."""
    cache = work / "cold-cache"
    shutil.rmtree(cache, ignore_errors=True)
    settings = Settings(endpoint=endpoint, cache=cache, progress=False)
    cpu, start = _cpu(resource.RUSAGE_SELF), time.perf_counter()
    Resolver(settings).resolve(str(handle))
    return time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu


def time_warm(endpoint: str, handle: Handle, work: Path, calls: int) -> list[float]:
    import modhub as hub

    os.environ["MODHUB_ENDPOINT"] = endpoint
    os.environ["MODHUB_CACHE"] = str(work / "cold-cache")
    hub.resolve(str(handle))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        hub.resolve(str(handle))  # the public call: reads the settings, checks the cached copy
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoint", help="measure this hub instead of starting one")
    parser.add_argument(
        "--size-mb", type=int, default=200, help="module size when the bench runs its own hub"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warm-calls", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")

    with tempfile.TemporaryDirectory(prefix="modhub-bench-") as tmp:
        work = Path(tmp)
        hub_cm = own_hub(args.size_mb, work) if args.endpoint is None else _given(args.endpoint)
        with hub_cm as endpoint:
            handle, size = largest_version(endpoint)
            print(f"hub {endpoint}: largest module {handle}, {size / 1e6:.1f} MB", flush=True)
            curl, cold = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                curl.append(time_curl(endpoint, handle, work))
                cold.append(time_cold(endpoint, handle, work))
            warm = time_warm(endpoint, handle, work, args.warm_calls)

    curl_s, cold_s = statistics.median(w for w, _ in curl), statistics.median(w for w, _ in cold)
    curl_cpu, cold_cpu = statistics.median(c for _, c in curl), statistics.median(c for _, c in cold)
    warm_sorted = sorted(warm)
    warm_med = statistics.median(warm)
    warm_p95 = warm_sorted[int(0.95 * (len(warm_sorted) - 1))]
    results = {
        "handle": str(handle),
        "bytes": size,
        "curl_s": curl_s,
        "cold_resolve_s": cold_s,
        "cold_vs_curl": cold_s / curl_s,
        "curl_cpu_s": curl_cpu,
        "cold_resolve_cpu_s": cold_cpu,
        "load_average_1m": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "client_MBps": size / cold_s / 1e6,
        "curl_MBps": size / curl_s / 1e6,
        "warm_resolve_median_us": warm_med * 1e6,
        "warm_resolve_p95_us": warm_p95 * 1e6,
        "cold_vs_warm": cold_s / warm_med,
    }
    curl_rate, client_rate = results["curl_MBps"], results["client_MBps"]
    print(f"curl (same file URLs)     {curl_s:8.3f} s   {curl_rate:7.0f} MB/s   cpu {curl_cpu:.2f} s")
    print(f"cold hub.resolve          {cold_s:8.3f} s   {client_rate:7.0f} MB/s   cpu {cold_cpu:.2f} s")
    print(f"  ratio cold/curl         {results['cold_vs_curl']:8.2f}x")
    print(f"warm hub.resolve median   {warm_med * 1e6:8.0f} us (p95 {warm_p95 * 1e6:.0f} us)")
    print(f"  ratio cold/warm         {results['cold_vs_warm']:8.0f}x")
    print(f"(load average {results['load_average_1m']:.1f} on {results['cpus']} CPUs; the hub shares them)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_download.json").write_text(json.dumps(results, indent=2) + "\n")


@contextmanager
def _given(endpoint: str) -> Iterator[str]:
    yield endpoint.rstrip("/")


if __name__ == "__main__":
    main()
