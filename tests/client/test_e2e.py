"""Proof tests: the real hub (``modhub serve`` on a loopback port) and real client processes.

publish → search → resolve → load; two processes downloading one module at
once; a download killed half-way that resumes; a blob altered on the hub.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from modhub.client.cache import ModuleCache
from modhub.client.resolve import LatestVersionWarning, Resolver
from modhub.errors import IntegrityError, ModuleNotFound
from modhub.format.digests import sha256_file
from modhub.format.manifest import read_manifest
from modhub.format.verify import verify_files
from modhub.settings import Settings
from tests.client._slow_client import CountingTransport
from tests.harness import running_hub, without_modhub_settings

pytestmark = pytest.mark.slow

SLOW_CLIENT = Path(__file__).with_name("_slow_client.py")
# The large module: a 3200x3200 float32 layer, about 41 MB of graph.pt2.
WIDE = 3200


class Wide(nn.Module):
    """An image-feature-vector model whose weights are big enough to interrupt a download of."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = nn.Linear(3, width)
        self.big = nn.Linear(width, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.big(torch.relu(self.proj(images.mean((2, 3)))))


def _env(**values: str) -> dict[str, str]:
    """The current environment without any MODHUB_* setting, plus ``values``."""
    return {**without_modhub_settings(os.environ), **values}


def _modhub(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "modhub", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(f"modhub {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class LiveHub:
    endpoint: str
    data_dir: Path
    token: str

    def client_env(self, cache: Path, **values: str) -> dict[str, str]:
        return _env(MODHUB_ENDPOINT=self.endpoint, MODHUB_CACHE=str(cache), **values)

    def publish(self, module_dir: Path, repo: str, tmp: Path) -> str:
        env = self.client_env(tmp / "publish-cache", MODHUB_TOKEN=self.token)
        return _modhub("publish", str(module_dir), repo, env=env).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    with running_hub(tmp_path_factory.mktemp("hub-data") / "data", token_for="acme") as hub:
        yield LiveHub(hub.url, hub.data_dir, hub.token)


@pytest.fixture(scope="module")
def wide_handle(live_hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> str:
    import modhub as hub

    torch.manual_seed(0)
    work = tmp_path_factory.mktemp("wide")
    module = hub.export(
        Wide(WIDE).eval(), torch.rand(2, 3, 16, 16), work / "wide", task="image-feature-vector", license="MIT"
    )
    return live_hub.publish(module, "acme/wide", work)


@pytest.fixture(scope="module")
def tiny_handle(live_hub: LiveHub, image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return live_hub.publish(image_module, "acme/tiny-cnn", tmp_path_factory.mktemp("pub"))


def _clean(cache: Path) -> None:
    """Nothing half-written is left: no partial downloads, no half-built version directories."""
    c = ModuleCache(cache)
    assert list(c.blobs.glob("*.incomplete")) == []
    assert list(c.tmp.iterdir()) == []
    assert {p.name for p in c.blobs.iterdir()} == c.referenced_blobs()


def test_publish_search_resolve_load_round_trip(
    live_hub: LiveHub, tiny_handle: str, image_module: Path, tmp_path: Path
) -> None:
    assert tiny_handle == "acme/tiny-cnn/1"
    env = live_hub.client_env(tmp_path / "cache")

    found = _modhub("search", "tiny", "--task", "image-classification", env=env).stdout
    assert "acme/tiny-cnn/1" in found
    page = json.loads(_modhub("search", "--publisher", "acme", "--json", env=env).stdout)
    assert "acme/tiny-cnn" in [item["handle"] for item in page["items"]]
    assert _modhub("search", "--task", "text-embedding", "--publisher", "acme", env=env).stdout == ""

    latest = _modhub("download", "acme/tiny-cnn", env=env)
    assert "note:" in latest.stderr and "acme/tiny-cnn/1" in latest.stderr
    path = Path(latest.stdout.strip())
    assert path.parent.name == "tiny-cnn" and path.name == "1"
    verify_files(path, read_manifest(path))
    assert read_manifest(path) == read_manifest(image_module)

    # Loading by URL in a fresh process: the cached version needs no request, even offline
    # with the endpoint pointing nowhere.
    offline = live_hub.client_env(tmp_path / "cache", MODHUB_OFFLINE="1")
    offline["MODHUB_ENDPOINT"] = "http://127.0.0.1:9"
    script = (
        "import json, torch, modhub as hub;"
        f"m = hub.load({live_hub.endpoint + '/' + tiny_handle!r});"
        "print(json.dumps(m(torch.ones(2, 3, 32, 32)).tolist()))"
    )
    run = subprocess.run([sys.executable, "-c", script], env=offline, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    remote = torch.tensor(json.loads(run.stdout))
    import modhub as hub

    local = hub.load(image_module)(torch.ones(2, 3, 32, 32))
    torch.testing.assert_close(remote, local)

    # Online too, a cached pinned version loads without the network stack: neither httpx
    # nor tqdm (nor torch, on the onnx runtime) is imported by the fresh process.
    script = (
        "import sys, numpy as np, modhub as hub;"
        f"m = hub.load({tiny_handle!r}, runtime='onnx'); m(np.ones((1, 3, 32, 32), np.float32));"
        "print(sorted(n for n in ('httpx', 'tqdm', 'torch') if n in sys.modules))"
    )
    online = live_hub.client_env(tmp_path / "cache")
    run = subprocess.run([sys.executable, "-c", script], env=online, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"

    # Offline, an uncached module is a clear error, and no request is made.
    missing = _modhub(
        "download",
        "acme/tiny-cnn/1",
        env=live_hub.client_env(tmp_path / "empty", MODHUB_OFFLINE="1"),
        check=False,
    )
    assert missing.returncode == 1
    assert "MODHUB_OFFLINE" in missing.stderr and "Traceback" not in missing.stderr

    # Unknown modules: a clear error naming the handle.
    unknown = _modhub("download", "acme/nope/1", env=env, check=False)
    assert unknown.returncode == 1 and "acme/nope" in unknown.stderr

    # The same handle in-process, through the public resolve with a warning for "latest".
    settings = Settings(endpoint=live_hub.endpoint, cache=tmp_path / "cache")
    with pytest.warns(LatestVersionWarning, match="acme/tiny-cnn/1"):
        assert Resolver(settings).resolve("acme/tiny-cnn") == path
    _clean(tmp_path / "cache")


def test_two_processes_downloading_at_once_end_with_one_verified_copy(
    live_hub: LiveHub, wide_handle: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = live_hub.client_env(cache)
    # About 2 s per download, so the two overlap even on a busy machine.
    rate = "20000000"
    procs = [
        subprocess.Popen(
            [sys.executable, str(SLOW_CLIENT), wide_handle, rate], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    first, second = sorted(outs, key=lambda o: o["finished"])
    assert second["started"] < first["finished"], "the two downloads did not overlap"
    assert first["path"] == second["path"]
    path = Path(first["path"])
    manifest = read_manifest(path)
    verify_files(path, manifest)
    total = sum(e.size for e in manifest.files)
    # One process downloaded every file; the other waited for the lock and found them done.
    assert sorted(o["file_bytes"] for o in outs) == [0, total]
    _clean(cache)


def test_download_killed_half_way_resumes_and_ends_verified(
    live_hub: LiveHub, wide_handle: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = live_hub.client_env(cache)
    # About 4 s for the whole graph: plenty of time to kill it half-way.
    proc = subprocess.Popen(
        [sys.executable, str(SLOW_CLIENT), wide_handle, "10000000"], env=env, stdout=subprocess.PIPE
    )
    graph = read_manifest_over_http(live_hub, wide_handle).file("graph.pt2")
    partial = ModuleCache(cache).incomplete_path(graph.sha256)
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 8_000_000):
        assert proc.poll() is None, "the client finished before it could be killed"
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.stdout is not None
    proc.stdout.close()
    kept = partial.stat().st_size
    assert 8_000_000 < kept < graph.size
    assert not ModuleCache(cache).blob_path(graph.sha256).exists()

    transport = CountingTransport()
    path = Resolver(Settings(endpoint=live_hub.endpoint, cache=cache), transport=transport).resolve(
        wide_handle
    )
    verify_files(path, read_manifest(path))
    assert (f"bytes={kept}-", 206) in transport.file_answers
    small = sum(e.size for e in read_manifest(path).files if e.path != "graph.pt2")
    # Only what was missing came over the wire (the small files may or may not have arrived before the kill).
    assert graph.size - kept <= transport.file_bytes <= graph.size - kept + small
    _clean(cache)


def test_blob_altered_on_the_hub_is_caught(live_hub: LiveHub, tmp_path: Path) -> None:
    import modhub as hub

    torch.manual_seed(1)
    module = hub.export(
        Wide(64).eval(), torch.rand(2, 3, 16, 16), tmp_path / "m", task="image-feature-vector", license="MIT"
    )
    handle = live_hub.publish(module, "acme/altered", tmp_path)
    graph = read_manifest(module).file("graph.pt2")
    stored = next(live_hub.data_dir.rglob(graph.sha256))
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one bit flipped, same size
    stored.write_bytes(bytes(data))

    cache = tmp_path / "cache"
    result = _modhub("download", handle, env=live_hub.client_env(cache), check=False)
    assert result.returncode == 1
    # The hub hashes a blob before it first serves it, so it refuses (503 blob_damaged); a hub
    # that served it anyway would be caught by the client's sha256 check.
    assert "graph.pt2" in result.stderr and ("sha256" in result.stderr or "blob_damaged" in result.stderr)
    assert "Traceback" not in result.stderr
    c = ModuleCache(cache)
    assert list(c.iter_versions()) == []
    # Nothing wrong is kept: any blob left (small files that arrived first) matches its name.
    kept = list(c.blobs.iterdir())
    assert all(sha256_file(p) == p.name for p in kept) and graph.sha256 not in {p.name for p in kept}
    c.prune_blobs()
    _clean(cache)
    from modhub.errors import HubHTTPError

    with pytest.raises((IntegrityError, HubHTTPError, ModuleNotFound)):
        Resolver(Settings(endpoint=live_hub.endpoint, cache=cache)).resolve(handle)


def read_manifest_over_http(live_hub: LiveHub, handle: str):  # type: ignore[no-untyped-def]
    from modhub.client.api import HubClient, open_http_client
    from modhub.handles import parse_handle

    with open_http_client() as http:
        return HubClient(http, live_hub.endpoint).version(parse_handle(handle)).manifest
