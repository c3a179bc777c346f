"""Resumable, verified blob downloads: Range after an interruption, and every way a hub can misbehave."""

from __future__ import annotations

from pathlib import Path

import pytest

from modhub.client.api import HubClient, open_http_client
from modhub.client.cache import ModuleCache
from modhub.client.download import fetch_blob
from modhub.client.resolve import Resolver
from modhub.errors import HubHTTPError
from modhub.format.manifest import FileEntry, read_manifest
from modhub.format.verify import verify_files
from modhub.handles import Handle
from modhub.settings import Settings
from tests.client.conftest import ENDPOINT
from tests.client.fakehub import FakeHub

HANDLE = Handle("acme", "tiny", 1)


def _graph(fake_hub: FakeHub) -> tuple[FileEntry, bytes]:
    manifest, files = fake_hub.modules[("acme", "tiny", 1)]
    return manifest.file("graph.pt2"), files["graph.pt2"]


def _fetch(cache: ModuleCache, fake_hub: FakeHub, entry: FileEntry) -> Path:
    cache.ensure()
    with open_http_client(transport=fake_hub.transport()) as http:
        hub = HubClient(http, ENDPOINT)
        return fetch_blob(cache, hub, hub.file_url(HANDLE, entry.path), entry, handle=str(HANDLE))


def _ranges(fake_hub: FakeHub) -> list[str | None]:
    return [r.headers.get("range") for r in fake_hub.file_requests()]


def test_partial_file_resumes_with_range(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    cache = ModuleCache(settings.cache)
    cache.ensure()
    cache.incomplete_path(entry.sha256).write_bytes(data[:100_000])
    blob = _fetch(cache, fake_hub, entry)
    assert blob.read_bytes() == data
    assert _ranges(fake_hub) == ["bytes=100000-"]
    assert not cache.incomplete_path(entry.sha256).exists()


def test_dropped_connection_is_retried_from_where_it_stopped(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    fake_hub.drop_after = {"graph.pt2": [40_960, 40_960]}
    blob = _fetch(ModuleCache(settings.cache), fake_hub, entry)
    assert blob.read_bytes() == data
    assert _ranges(fake_hub) == [None, "bytes=40960-", "bytes=81920-"]


def test_repeated_drops_keep_the_partial_file_for_next_time(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    fake_hub.drop_after = {"graph.pt2": [8192, 8192, 8192]}
    cache = ModuleCache(settings.cache)
    with pytest.raises(HubHTTPError, match="run the same command again to resume"):
        _fetch(cache, fake_hub, entry)
    assert cache.incomplete_path(entry.sha256).stat().st_size == 3 * 8192
    assert not cache.blob_path(entry.sha256).exists()
    # The next call resumes from there.
    _fetch(cache, fake_hub, entry)
    assert _ranges(fake_hub)[-1] == f"bytes={3 * 8192}-"
    assert cache.blob_path(entry.sha256).read_bytes() == data


def test_hub_ignoring_range_restarts_from_zero(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    fake_hub.ignore_range = True
    cache = ModuleCache(settings.cache)
    cache.ensure()
    cache.incomplete_path(entry.sha256).write_bytes(data[:5000])
    assert _fetch(cache, fake_hub, entry).read_bytes() == data
    assert _ranges(fake_hub) == ["bytes=5000-", None]


def test_wrong_content_range_restarts_from_zero(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    fake_hub.wrong_content_range = True
    cache = ModuleCache(settings.cache)
    cache.ensure()
    cache.incomplete_path(entry.sha256).write_bytes(data[:5000])
    assert _fetch(cache, fake_hub, entry).read_bytes() == data
    assert _ranges(fake_hub) == ["bytes=5000-", None]


def test_garbage_partial_file_is_caught_and_replaced(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    cache = ModuleCache(settings.cache)
    cache.ensure()
    # As long as the real file: only the rename was missing? No, the hash says otherwise.
    cache.incomplete_path(entry.sha256).write_bytes(b"\0" * entry.size)
    assert _fetch(cache, fake_hub, entry).read_bytes() == data
    assert _ranges(fake_hub) == [None]


def test_oversized_partial_file_is_dropped(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    cache = ModuleCache(settings.cache)
    cache.ensure()
    cache.incomplete_path(entry.sha256).write_bytes(data + b"extra")
    assert _fetch(cache, fake_hub, entry).read_bytes() == data
    assert _ranges(fake_hub) == [None]


def test_complete_partial_file_is_finished_without_a_request(settings: Settings, fake_hub: FakeHub) -> None:
    entry, data = _graph(fake_hub)
    cache = ModuleCache(settings.cache)
    cache.ensure()
    cache.incomplete_path(entry.sha256).write_bytes(data)
    assert _fetch(cache, fake_hub, entry).read_bytes() == data
    assert _ranges(fake_hub) == []


def test_resolve_after_interruption_ends_verified(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.drop_after = {"graph.pt2": [50_000]}
    path = Resolver(settings, transport=fake_hub.transport()).resolve("acme/tiny/1")
    verify_files(path, read_manifest(path))
    assert "bytes=50000-" in _ranges(fake_hub)
