"""Partial version directories in the client cache: a load downloads only what it reads (issue 26).

``hub.load(h, precision="int8")`` from a real hub fetches the manifest, the int8 variant and the
assets, not the exact graphs; a default load later adds those (not the variant) to the same
version directory; ``modhub download`` makes it whole; ``cache ls``/``cache verify`` say partial.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import modhub as hub
from modhub.cli import app
from modhub.client.cache import PARTIAL_NAME, ModuleCache
from modhub.client.publish import publish
from modhub.errors import IntegrityError, ManifestError, OfflineError
from modhub.format.manifest import read_manifest
from modhub.settings import Settings
from tests.harness import LiveHub, running_hub
from tests.loading.test_precision import add_int8_variant

IMAGES = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)


@pytest.fixture(scope="module")
def acme_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    with running_hub(tmp_path_factory.mktemp("partial-hub") / "data", token_for="acme") as live:
        yield live


@pytest.fixture(scope="module")
def int8_handle(acme_hub: LiveHub, image_module: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("partial")
    module = add_int8_variant(Path(shutil.copytree(image_module, work / "cnn")))
    settings = Settings(endpoint=acme_hub.url, token=acme_hub.token, cache=work / "publish-cache")
    return publish(module, "acme/cnn-int8", settings=settings)


def _settings(acme_hub: LiveHub, cache: Path, **values: object) -> Settings:
    return Settings(endpoint=acme_hub.url, cache=cache, **values)  # type: ignore[arg-type]


def _held(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def _fetched(acme_hub: LiveHub, since: int) -> list[str]:
    """Module files the hub served since log offset ``since`` (from its access log)."""
    text = acme_hub.log.read_text(errors="replace")[since:]
    return re.findall(r'"GET /api/v1/modules/acme/cnn-int8/versions/\d+/files/(\S+) HTTP', text)


def test_int8_load_fetches_only_the_variant_then_default_adds_the_rest(
    acme_hub: LiveHub, int8_handle: str, tmp_path: Path
) -> None:
    settings = _settings(acme_hub, tmp_path / "cache")
    mark = len(acme_hub.log.read_text(errors="replace"))
    int8 = hub.load(int8_handle, precision="int8", settings=settings)
    assert int8.precision == "int8" and int8(IMAGES).shape == (2, 5)
    directory = int8.path
    manifest = read_manifest(directory)
    assert _held(directory) == {"modhub.json", PARTIAL_NAME, "int8/model.onnx", "assets/labels.txt"}
    fetched = _fetched(acme_hub, mark)
    assert sorted(set(fetched) - {"modhub.json"}) == ["assets/labels.txt", "int8/model.onnx"]
    blobs = {p.name for p in ModuleCache(tmp_path / "cache").blobs.iterdir()}
    assert blobs == {manifest.file(p).sha256 for p in ("int8/model.onnx", "assets/labels.txt")}

    mark = len(acme_hub.log.read_text(errors="replace"))
    inode = directory.stat().st_ino
    exact = hub.load(int8_handle, runtime="onnx", settings=settings)
    assert exact.path == directory
    assert directory.stat().st_ino == inode  # added in place: a reader never misses the directory
    added = set(_fetched(acme_hub, mark)) - {"modhub.json"}
    exact_graph = {p for p in ("model.onnx", "model.onnx.data") if manifest.has_file(p)}
    assert added == exact_graph  # not the variant again, not graph.pt2
    assert {"int8/model.onnx", "model.onnx", "assets/labels.txt", PARTIAL_NAME} <= _held(directory)
    assert "graph.pt2" not in _held(directory)
    np.testing.assert_allclose(int8(IMAGES), exact(IMAGES), atol=0.1)

    # Loaded again: nothing is fetched (cached, pinned version).
    mark = len(acme_hub.log.read_text(errors="replace"))
    hub.load(int8_handle, precision="int8", settings=settings)
    assert _fetched(acme_hub, mark) == []

    # Offline, a load that needs a file the partial copy lacks says so.
    offline = _settings(acme_hub, tmp_path / "cache", offline=True)
    with pytest.raises(OfflineError, match="holds only the files"):
        hub.load(int8_handle, runtime="torch", settings=offline)

    runner = CliRunner()
    env = {"MODHUB_ENDPOINT": acme_hub.url, "MODHUB_CACHE": str(tmp_path / "cache")}
    listing = runner.invoke(app, ["cache", "ls", "--json"], env=env)
    assert listing.exit_code == 0, listing.output
    (row,) = json.loads(listing.stdout)["versions"]
    assert row["partial"] is True
    verified = runner.invoke(app, ["cache", "verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "partial" in verified.output

    # `modhub download` makes it whole.
    downloaded = runner.invoke(app, ["download", int8_handle], env=env)
    assert downloaded.exit_code == 0, downloaded.output
    assert _held(directory) == {"modhub.json", *(e.path for e in manifest.files)}


def test_default_load_does_not_fetch_the_variant(acme_hub: LiveHub, int8_handle: str, tmp_path: Path) -> None:
    module = hub.load(int8_handle, settings=_settings(acme_hub, tmp_path / "cache"))
    held = _held(module.path)
    assert "model.onnx" in held
    assert not any(p.startswith("int8/") for p in held) and "graph.pt2" not in held


def test_damaged_file_in_partial_copy_is_fetched_again(
    acme_hub: LiveHub, int8_handle: str, tmp_path: Path
) -> None:
    settings = _settings(acme_hub, tmp_path / "cache")
    directory = hub.load(int8_handle, precision="int8", settings=settings).path
    graph = directory / "int8" / "model.onnx"
    cache = ModuleCache(tmp_path / "cache")
    # A cut file (another size): the load downloads it again and assembles the directory anew.
    data = graph.read_bytes()
    graph.unlink()  # the blob is read-only and hard-linked; break the link first
    graph.write_bytes(data[:-10])
    (cache.blob_path(read_manifest(directory).file("int8/model.onnx").sha256)).chmod(0o644)
    cache.blob_path(read_manifest(directory).file("int8/model.onnx").sha256).unlink()
    assert hub.load(int8_handle, precision="int8", settings=settings)(IMAGES).shape == (2, 5)
    assert graph.stat().st_size == len(data)


def test_no_variant_is_refused_before_any_graph_is_fetched(
    acme_hub: LiveHub, image_module: Path, tmp_path: Path
) -> None:
    settings = Settings(endpoint=acme_hub.url, token=acme_hub.token, cache=tmp_path / "publish-cache")
    handle = publish(image_module, "acme/cnn-exact", settings=settings)
    cache = tmp_path / "cache"
    with pytest.raises(ManifestError, match="no int8 variant"):
        hub.load(handle, precision="int8", settings=_settings(acme_hub, cache))
    assert not ModuleCache(cache).blobs.exists() or not any(ModuleCache(cache).blobs.iterdir())


def test_lying_variant_entry_is_refused(acme_hub: LiveHub, int8_handle: str, tmp_path: Path) -> None:
    """A cached copy whose variant graph differs from its manifest (same size) is refused on load."""
    settings = _settings(acme_hub, tmp_path / "cache")
    directory = hub.load(int8_handle, precision="int8", settings=settings).path
    cache = ModuleCache(tmp_path / "cache")
    graph = directory / "int8" / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 1
    graph.unlink()
    graph.write_bytes(bytes(data))
    cache.records.clear()
    with pytest.raises(IntegrityError, match="sha256"):
        hub.load(int8_handle, precision="int8", settings=settings)


def test_module_page_lists_the_variant(acme_hub: LiveHub, int8_handle: str) -> None:
    import httpx

    page = httpx.get(f"{acme_hub.url}/{int8_handle}", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    html = page.text
    assert 'id="variants"' in html
    section = html[html.index('id="variants"') :]
    section = section[: section.index("</section>")]
    assert "<code>int8</code>" in section and "dynamic" in section
    assert "0.9990" in section and "0.9980" in section and "3 probe inputs" in section
