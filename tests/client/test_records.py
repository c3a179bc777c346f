"""Verified-file records in the cache: written on download, trusted on load, ignored by ``cache verify``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from modhub.cli import app
from modhub.client.cache import ModuleCache
from modhub.client.records import CacheRecords
from modhub.client.resolve import Resolver
from modhub.format.manifest import read_manifest
from modhub.format.verify import read_module_file
from modhub.settings import Settings
from tests.client.fakehub import FakeHub

runner = CliRunner()


class Counting(CacheRecords):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.hashed: list[str] = []

    def mark_verified(self, path, entry, st) -> None:  # type: ignore[no-untyped-def]
        self.hashed.append(entry.path)
        super().mark_verified(path, entry, st)


@pytest.fixture
def cached(settings: Settings, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODHUB_CACHE", str(settings.cache))
    return Resolver(settings, transport=fake_hub.transport()).resolve("acme/tiny/1")


def test_download_records_every_file_so_a_load_hashes_nothing(cached: Path, settings: Settings) -> None:
    cache = ModuleCache(settings.cache)
    manifest = read_manifest(cached)
    for entry in manifest.files:
        assert cache.records.is_verified(cached / entry.path, entry, (cached / entry.path).stat()), entry.path
    counting = Counting(cache.records.directory)
    for entry in manifest.files:
        read_module_file(cached, entry, records=counting)
    assert counting.hashed == []


def test_a_changed_file_is_hashed_again_and_refused(cached: Path, settings: Settings) -> None:
    import modhub as hub

    cache = ModuleCache(settings.cache)
    entry = read_manifest(cached).file("assets/labels.txt")
    labels = cached / entry.path
    labels.chmod(0o644)
    labels.write_bytes(b"x\ny\n")  # same size, other bytes
    with pytest.raises(hub.IntegrityError, match="sha256"):
        read_module_file(cached, entry, records=cache.records)


def test_cache_verify_rehashes_even_what_records_vouch_for(cached: Path, settings: Settings) -> None:
    cache = ModuleCache(settings.cache)
    entry = read_manifest(cached).file("assets/labels.txt")
    labels = cached / entry.path
    labels.chmod(0o644)
    labels.write_bytes(b"x\ny\n")
    # A record that (wrongly) vouches for the damaged file, as silent disk corruption would leave.
    cache.records.mark_verified(labels, entry, labels.stat())
    assert cache.records.is_verified(labels, entry, labels.stat())
    result = runner.invoke(app, ["cache", "verify"])
    assert result.exit_code == 1 and "labels.txt" in result.stderr
    # verify rewrote the records: none vouches for the damaged file any more.
    assert not cache.records.is_verified(labels, entry, labels.stat())


def test_cache_verify_records_what_it_hashed(cached: Path, settings: Settings) -> None:
    cache = ModuleCache(settings.cache)
    cache.records.clear()
    assert runner.invoke(app, ["cache", "verify"]).exit_code == 0
    manifest = read_manifest(cached)
    assert all(
        cache.records.is_verified(cached / e.path, e, (cached / e.path).stat()) for e in manifest.files
    )


def test_corrupt_record_files_are_ignored(cached: Path, settings: Settings) -> None:
    cache = ModuleCache(settings.cache)
    for path in cache.records.directory.iterdir():
        path.write_text("{not json")
    entry = read_manifest(cached).file("graph.pt2")
    st = (cached / entry.path).stat()
    assert not cache.records.is_verified(cached / entry.path, entry, st)
    counting = Counting(cache.records.directory)
    read_module_file(cached, entry, records=counting)
    assert counting.hashed == ["graph.pt2"]
