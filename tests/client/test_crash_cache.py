"""Crash-safe cache, with a real hub on loopback and real client processes.

A client is SIGKILLed at 50 random byte offsets of a download (and at 10 random
moments, which also land in start-up, manifest fetch and assembly); after every
kill no file at a final cache path has a wrong sha256, and the next run succeeds.
16 processes resolving one module at once end with one verified copy.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modhub.client.cache import ModuleCache
from modhub.client.resolve import Resolver
from modhub.format.digests import sha256_file
from modhub.format.manifest import MANIFEST_NAME, read_manifest
from modhub.format.verify import verify_files
from modhub.settings import Settings
from tests.client.test_e2e import SLOW_CLIENT, LiveHub, Wide, live_hub  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

# A 1024x1024 float32 layer: about 4 MB of graph.pt2.
WIDTH = 1024


@pytest.fixture(scope="module")
def published(live_hub: LiveHub, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    import modhub as hub

    torch.manual_seed(2)
    work = tmp_path_factory.mktemp("crash")
    module = hub.export(
        Wide(WIDTH).eval(), torch.rand(2, 3, 16, 16), work / "m", task="image-feature-vector", license="MIT"
    )
    return live_hub.publish(module, "acme/crash", work), module


def _truth(module: Path) -> dict[str, bytes]:
    """sha256 → the published bytes, for every file of the module."""
    return {e.sha256: (module / e.path).read_bytes() for e in read_manifest(module).files}


def _wrong_files(cache: Path, module: Path, truth: dict[str, bytes]) -> list[str]:
    """Every file at a final cache path whose bytes are not what its name promises."""
    c = ModuleCache(cache)
    wrong: list[str] = []
    for path in sorted(c.blobs.iterdir()) if c.blobs.is_dir() else []:
        sha = path.name.removesuffix(".incomplete")
        if sha not in truth:
            wrong.append(f"{path.name}: not a blob of the module")
        elif path.name.endswith(".incomplete"):
            if not truth[sha].startswith(path.read_bytes()):  # not final, but must be a true prefix
                wrong.append(f"{path.name}: not a prefix of the blob")
        elif sha256_file(path) != sha:
            wrong.append(f"{path.name}: sha256 {sha256_file(path)}")
    published_manifest = (module / MANIFEST_NAME).read_bytes()
    for cached in c.iter_versions():
        if (cached.path / MANIFEST_NAME).read_bytes() != published_manifest:
            wrong.append(f"{cached.path}: modhub.json differs")
        for entry in read_manifest(cached.path).files:
            if sha256_file(cached.path / entry.path) != entry.sha256:
                wrong.append(f"{cached.path / entry.path}: wrong sha256")
    return wrong


def _present(cache: Path) -> int:
    blobs = ModuleCache(cache).blobs
    return sum(p.stat().st_size for p in blobs.iterdir()) if blobs.is_dir() else 0


def _client(live_hub: LiveHub, handle: str, cache: Path, *args: str) -> subprocess.Popen[bytes]:  # noqa: F811
    return subprocess.Popen(
        [sys.executable, str(SLOW_CLIENT), handle, *args],
        env=live_hub.client_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_download_killed_at_random_offsets_leaves_no_wrong_file(
    live_hub: LiveHub,  # noqa: F811
    published: tuple[str, Path],
    tmp_path: Path,
) -> None:
    handle, module = published
    truth = _truth(module)
    total = sum(len(b) for b in truth.values())
    rng = random.Random(11)
    cache = tmp_path / "cache"
    kills = finished = 0

    def after_run(proc: subprocess.Popen[bytes]) -> None:
        nonlocal kills, finished
        _, err = proc.communicate(timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
        assert _wrong_files(cache, module, truth) == []
        if proc.returncode == 0:
            finished += 1
            assert ModuleCache(cache).lookup(live_hub.endpoint, _handle(handle)) is not None
            shutil.rmtree(cache)  # start the next series from an empty cache
        else:
            kills += 1

    # 5 series of 10 byte offsets into the module's files, each series resuming the last kill's
    # partial download: the client kills itself once the offset's bytes have reached it.
    for _ in range(5):
        for offset in sorted(rng.randrange(total + 1) for _ in range(10)):
            proc = _client(live_hub, handle, cache, "0", str(max(0, offset - _present(cache))))
            after_run(proc)
    # 10 kills at random moments of a throttled (about 0.3 s) download, from outside.
    for _ in range(10):
        proc = _client(live_hub, handle, cache, str(total / 0.3))
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        after_run(proc)
    assert kills >= 50, f"only {kills} runs were killed ({finished} finished first)"

    # The next run succeeds, and the module loads.
    import modhub as hub

    path = Resolver(Settings(endpoint=live_hub.endpoint, cache=cache)).resolve(handle)
    verify_files(path, read_manifest(path))
    assert _wrong_files(cache, module, truth) == []
    images = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(hub.load(path)(images), hub.load(module)(images))
    c = ModuleCache(cache)
    assert list(c.blobs.glob("*.incomplete")) == []
    assert {p.name for p in c.blobs.iterdir()} == c.referenced_blobs() == set(truth)


def test_sixteen_processes_resolving_at_once_end_with_one_verified_copy(
    live_hub: LiveHub,  # noqa: F811
    published: tuple[str, Path],
    tmp_path: Path,
) -> None:
    handle, module = published
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    # Each process imports the client, then waits for the start file: they resolve together.
    script = (
        "import os, sys, time, json\n"
        "from modhub.client.resolve import Resolver\n"
        "from modhub.settings import Settings\n"
        f"open({str(tmp_path)!r} + f'/ready-{{os.getpid()}}', 'w').close()\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "started = time.time()\n"
        f"path = Resolver(Settings.from_env()).resolve({handle!r})\n"
        "print(json.dumps({'path': str(path), 'started': started, 'finished': time.time()}))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env=live_hub.client_env(cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 16:
        dead = [p.communicate()[1] for p in procs if p.poll() is not None]
        assert dead == [], dead
        assert time.monotonic() < deadline, "the processes did not start"
        time.sleep(0.02)
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in results]
    outs = [json.loads(out) for out, _ in results]
    assert len({o["path"] for o in outs}) == 1
    assert max(o["started"] for o in outs) < min(o["finished"] for o in outs), "they did not overlap"

    c = ModuleCache(cache)
    (cached,) = list(c.iter_versions())
    assert str(cached.path) == outs[0]["path"]
    manifest = read_manifest(cached.path)
    verify_files(cached.path, manifest)
    assert (cached.path / MANIFEST_NAME).read_bytes() == (module / MANIFEST_NAME).read_bytes()
    # One blob per sha256, each verified and linked (not copied) into the one version directory.
    blobs = sorted(c.blobs.iterdir())
    assert [p.name for p in blobs] == sorted({e.sha256 for e in manifest.files})
    assert all(sha256_file(p) == p.name for p in blobs)
    for entry in manifest.files:
        assert (cached.path / entry.path).stat().st_ino == c.blob_path(entry.sha256).stat().st_ino
    # Nothing half-written anywhere.
    assert list(c.tmp.iterdir()) == []
    assert list(c.blobs.glob("*.incomplete")) == []


def _handle(text: str):  # type: ignore[no-untyped-def]
    from modhub.handles import parse_handle

    return parse_handle(text)


def test_killed_while_assembling_leaves_nothing_behind_after_the_next_run(
    live_hub: LiveHub,  # noqa: F811
    published: tuple[str, Path],
    tmp_path: Path,
) -> None:
    handle, module = published
    cache = tmp_path / "cache"
    # A real client that SIGKILLs itself after linking the first file into its work directory.
    script = (
        "import os, signal\n"
        "import modhub.client.cache as cache\n"
        "from modhub.client.resolve import Resolver\n"
        "from modhub.settings import Settings\n"
        "link = cache.link_or_copy\n"
        "def link_then_die(source, target):\n"
        "    link(source, target)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "cache.link_or_copy = link_then_die\n"
        f"Resolver(Settings.from_env()).resolve({handle!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=live_hub.client_env(cache), capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    c = ModuleCache(cache)
    assert len(list(c.tmp.iterdir())) == 1  # the dead process's half-built version directory
    assert list(c.iter_versions()) == []
    assert _wrong_files(cache, module, _truth(module)) == []

    path = Resolver(Settings(endpoint=live_hub.endpoint, cache=cache)).resolve(handle)
    verify_files(path, read_manifest(path))
    assert list(c.tmp.iterdir()) == []
    c.prune_blobs()
    assert {p.name for p in c.blobs.iterdir()} == c.referenced_blobs() == set(_truth(module))
