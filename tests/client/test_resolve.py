"""resolve(): cache layout, latest, local paths, offline, errors (against an in-process fake hub)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest

from modhub.client.cache import ModuleCache, host_key
from modhub.client.resolve import LatestVersionWarning, Resolver, resolve
from modhub.errors import IntegrityError, InvalidHandle, ModuleNotFound, OfflineError
from modhub.format.manifest import read_manifest
from modhub.format.verify import verify_files
from modhub.settings import Settings
from tests.client.conftest import ENDPOINT
from tests.client.fakehub import FakeHub, make_module


def test_resolve_downloads_verifies_and_links_blobs(
    resolver: Resolver, fake_hub: FakeHub, settings: Settings, module_files: dict[str, bytes]
) -> None:
    path = resolver.resolve("acme/tiny/1")
    assert path == settings.cache / "modules" / "hub.test" / "acme" / "tiny" / "1"
    manifest = read_manifest(path)
    verify_files(path, manifest)
    assert (path / "assets" / "labels.txt").read_bytes() == module_files["assets/labels.txt"]
    for entry in manifest.files:
        blob = settings.cache / "blobs" / entry.sha256
        assert blob.stat().st_ino == (path / entry.path).stat().st_ino  # a hard link, not a copy
        assert not os.access(blob, os.W_OK) or os.geteuid() == 0
    assert len(fake_hub.file_requests()) == len(manifest.files)
    assert oct(settings.cache.stat().st_mode & 0o777) == "0o700"
    assert not any((settings.cache / "tmp").iterdir())


def test_cached_manifest_is_the_published_file(resolver: Resolver, fake_hub: FakeHub, tmp_path: Path) -> None:
    path = resolver.resolve("acme/tiny/1")
    assert (path / "modhub.json").read_bytes() == (tmp_path / "v1" / "modhub.json").read_bytes()


def test_hub_without_manifest_file_still_works(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.offer_manifest = False
    path = Resolver(settings, transport=fake_hub.transport()).resolve("acme/tiny/1")
    verify_files(path, read_manifest(path))
    assert not [r for r in fake_hub.requests if r.url.path.endswith("/modhub.json")]


def test_altered_manifest_file_is_refused(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.tamper["modhub.json"] = b"{}"
    with pytest.raises(IntegrityError, match=r"modhub\.json"):
        Resolver(settings, transport=fake_hub.transport()).resolve("acme/tiny/1")
    assert list(ModuleCache(settings.cache).iter_versions()) == []


def test_cached_version_makes_no_request(resolver: Resolver, fake_hub: FakeHub) -> None:
    first = resolver.resolve("acme/tiny/1")
    seen = len(fake_hub.requests)
    assert resolver.resolve("acme/tiny/1") == first
    assert resolver.resolve(f"{ENDPOINT}/acme/tiny/1") == first  # the URL form is the same handle
    assert len(fake_hub.requests) == seen


def test_versions_share_unchanged_blobs(resolver: Resolver, fake_hub: FakeHub) -> None:
    resolver.resolve("acme/tiny/1")
    before = len(fake_hub.file_requests())
    resolver.resolve("acme/tiny/2")
    # Only README.md changed between the versions.
    assert [r.url.path.rsplit("/", 1)[-1] for r in fake_hub.file_requests()[before:]] == ["README.md"]


def test_latest_warns_with_concrete_handle(resolver: Resolver) -> None:
    with pytest.warns(LatestVersionWarning, match=r"acme/tiny/2"):
        path = resolver.resolve("acme/tiny")
    assert path.name == "2"
    with pytest.warns(LatestVersionWarning):
        assert resolver.resolve("acme/tiny") == path


def test_url_handle_uses_its_own_host(settings: Settings, fake_hub: FakeHub) -> None:
    resolver = Resolver(settings, transport=fake_hub.transport())
    path = resolver.resolve("http://other.test:9000/acme/tiny/1")
    assert path.parent.parent.parent.name == host_key("http://other.test:9000") == "other.test_9000"
    assert {r.url.host for r in fake_hub.requests} == {"other.test"}


def test_token_is_sent_only_to_the_configured_hub(tmp_path: Path, fake_hub: FakeHub) -> None:
    settings = Settings(endpoint=ENDPOINT, cache=tmp_path / "c", token="secret", progress=False)
    resolver = Resolver(settings, transport=fake_hub.transport())
    resolver.resolve("acme/tiny/1")
    resolver.resolve("http://elsewhere.test/acme/tiny/2")
    by_host = {r.url.host: r.headers.get("authorization") for r in fake_hub.requests}
    assert by_host == {"hub.test": "Bearer secret", "elsewhere.test": None}


def test_local_directory_is_returned_unchanged(resolver: Resolver, tmp_path: Path) -> None:
    module = make_module(tmp_path / "local", {"graph.pt2": b"x"})
    assert resolver.resolve(module) == module
    assert resolver.resolve(str(module)) == module


def test_missing_local_directory_is_module_not_found(resolver: Resolver, tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFound, match="not a directory"):
        resolver.resolve(tmp_path / "nope")


def test_unknown_module_and_version(resolver: Resolver) -> None:
    with pytest.raises(ModuleNotFound, match="no module acme/other"):
        resolver.resolve("acme/other/1")
    with pytest.raises(ModuleNotFound, match="no version 7"):
        resolver.resolve("acme/tiny/7")


def test_invalid_handle(resolver: Resolver) -> None:
    with pytest.raises(InvalidHandle):
        resolver.resolve("Acme/Tiny/1")


def test_damaged_cached_copy_is_fetched_again(resolver: Resolver, settings: Settings) -> None:
    path = resolver.resolve("acme/tiny/1")
    graph = path / "graph.pt2"
    graph.chmod(0o644)
    with open(graph, "r+b") as fh:
        fh.truncate(10)
    again = resolver.resolve("acme/tiny/1")
    assert again == path
    verify_files(again, read_manifest(again))


def test_altered_bytes_are_refused_and_nothing_is_cached(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.tamper["graph.pt2"] = os.urandom(300_000)  # same size, other bytes
    resolver = Resolver(settings, transport=fake_hub.transport())
    with pytest.raises(IntegrityError, match=r"graph\.pt2") as info:
        resolver.resolve("acme/tiny/1")
    assert info.value.handle == "acme/tiny/1"
    cache = ModuleCache(settings.cache)
    bad_sha = fake_hub.modules[("acme", "tiny", 1)][0].file("graph.pt2").sha256
    assert not cache.blob_path(bad_sha).exists()
    assert list(cache.blobs.iterdir()) == []  # not even the good files of the bad version
    assert not list(cache.blobs.glob("*.incomplete"))
    assert list(cache.iter_versions()) == []
    assert not any(cache.tmp.iterdir())


def test_too_many_bytes_are_refused(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.tamper["README.md"] = b"# A test module\n" + b"x" * 100
    resolver = Resolver(settings, transport=fake_hub.transport())
    with pytest.raises(IntegrityError, match="larger than"):
        resolver.resolve("acme/tiny/1")
    assert list(ModuleCache(settings.cache).iter_versions()) == []


def test_threads_resolving_at_once_download_each_file_once(settings: Settings, fake_hub: FakeHub) -> None:
    fake_hub.delay = 0.0005
    results: list[Path] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(Resolver(settings, transport=fake_hub.transport()).resolve("acme/tiny/1"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    manifest = read_manifest(results[0])
    verify_files(results[0], manifest)
    assert len(fake_hub.file_requests()) == len(manifest.files)


# --- offline -------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("offline mode created an httpx client")

    monkeypatch.setattr(httpx.Client, "__init__", refuse)


def test_offline_uses_cache_without_any_client(
    resolver: Resolver, settings: Settings, request: pytest.FixtureRequest
) -> None:
    path = resolver.resolve("acme/tiny/1")  # download first, with the network
    offline = settings.model_copy(update={"offline": True})
    request.getfixturevalue("no_network")
    assert Resolver(offline).resolve("acme/tiny/1") == path
    with pytest.warns(LatestVersionWarning, match="newest version in the cache"):
        assert Resolver(offline).resolve("acme/tiny") == path


def test_offline_missing_module_is_a_clear_error(settings: Settings, no_network: None) -> None:
    offline = settings.model_copy(update={"offline": True})
    with pytest.raises(OfflineError, match="MODHUB_OFFLINE") as info:
        Resolver(offline).resolve("acme/tiny/1")
    assert info.value.handle == "acme/tiny/1"
    with pytest.raises(OfflineError, match="modhub download"):
        Resolver(offline).resolve("acme/tiny")


def test_offline_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None) -> None:
    monkeypatch.setenv("MODHUB_OFFLINE", "1")
    monkeypatch.setenv("MODHUB_CACHE", str(tmp_path / "c"))
    with pytest.raises(OfflineError):
        resolve("acme/tiny/1")


# --- progress ------------------------------------------------------------------


def test_progress_bar_on_stderr_when_asked(
    settings: Settings, fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    loud = settings.model_copy(update={"progress": True})
    Resolver(loud, transport=fake_hub.transport()).resolve("acme/tiny/1")
    captured = capsys.readouterr()
    assert "downloading acme/tiny/1" in captured.err
    assert captured.out == ""


def test_no_progress_bar_when_not_a_terminal(
    settings: Settings, fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = settings.model_copy(update={"progress": None})
    Resolver(quiet, transport=fake_hub.transport()).resolve("acme/tiny/1")
    assert capsys.readouterr().err == ""


def test_blob_locks_are_held_from_fetch_to_assembly(
    resolver: Resolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune started between the last download and the assembly waits, and then keeps the blobs."""
    cache = resolver.cache
    assemble = cache.assemble
    pruned: list[int] = []

    def racing_assemble(*args: object, **kwargs: object) -> Path:
        prune = threading.Thread(target=lambda: pruned.append(cache.prune_blobs()))
        prune.start()
        prune.join(timeout=0.5)
        assert prune.is_alive(), "prune did not wait for the resolver's blob locks"
        assert all(p.stat().st_size for p in cache.blobs.iterdir())
        result = assemble(*args, **kwargs)  # type: ignore[arg-type]
        racing_assemble.thread = prune  # type: ignore[attr-defined]
        return result

    monkeypatch.setattr(cache, "assemble", racing_assemble)
    path = resolver.resolve("acme/tiny/1")
    racing_assemble.thread.join(timeout=30)  # type: ignore[attr-defined]
    assert pruned == [0]  # the assembled version references every blob
    verify_files(path, read_manifest(path))
