"""One load path: a load reads ``modhub.json`` once, checks the signature once, makes one ModuleCache.

Every function that reads the manifest is ``modhub.format.manifest.read_manifest_bytes``
(``read_manifest`` calls it): it is counted wherever a module looked it up by name, and so
are signature checks (``check_signature``) and ``ModuleCache`` constructions. A cached
handle is put in the cache through the in-process fake hub, then loaded with no network.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import modhub as hub
from modhub.client.cache import ModuleCache
from modhub.client.resolve import Resolver
from modhub.exporting.signing import generate_keys, sign_module
from modhub.format import manifest as manifest_module
from modhub.format import signature as signature_module
from modhub.format.manifest import SIGNATURE_NAME
from modhub.settings import Settings
from tests.client.conftest import ENDPOINT
from tests.client.fakehub import FakeHub

HANDLE = "acme/tiny-cnn/1"


@dataclass
class Counts:
    manifest_reads: list[Path] = field(default_factory=list)
    signature_checks: int = 0
    caches: int = 0

    def reset(self) -> None:
        self.manifest_reads.clear()
        self.signature_checks = 0
        self.caches = 0


def _patch_everywhere(monkeypatch: pytest.MonkeyPatch, original: Any, replacement: Any) -> None:
    """Replace a function in its module and in every modhub module that imported it by name."""
    for module in list(sys.modules.values()):
        if (
            getattr(module, "__name__", "").startswith("modhub")
            and vars(module).get(original.__name__) is original
        ):
            monkeypatch.setattr(module, original.__name__, replacement)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counts]:
    import modhub.format.verify  # noqa: F401 (imported, so that its names are patched too)

    seen = Counts()
    read = manifest_module.read_manifest_bytes
    check = signature_module.check_signature
    init = ModuleCache.__init__

    def counting_read(module_dir: Any) -> bytes:
        seen.manifest_reads.append(Path(module_dir))
        return read(module_dir)

    def counting_check(*args: Any, **kwargs: Any) -> Any:
        seen.signature_checks += 1
        return check(*args, **kwargs)

    def counting_init(self: ModuleCache, root: Path) -> None:
        seen.caches += 1
        init(self, root)

    _patch_everywhere(monkeypatch, read, counting_read)
    _patch_everywhere(monkeypatch, check, counting_check)
    monkeypatch.setattr(ModuleCache, "__init__", counting_init)
    yield seen


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    private, public, _ = generate_keys(root / "alice.key")
    return private, public


@pytest.fixture(scope="module")
def signed_module(
    image_module: Path, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    module = shutil.copytree(image_module, tmp_path_factory.mktemp("signed") / "tiny-cnn")
    sign_module(module, keys[0])
    return module


def _cached(settings: Settings, module: Path) -> Path:
    """Publish ``module`` on a fake hub, resolve it into the cache (with its signature, if any)."""
    fake = FakeHub()
    fake.publish("acme", "tiny-cnn", 1, module)
    path = Resolver(settings, transport=fake.transport()).resolve(HANDLE)
    # The fake hub serves no signatures: put modhub.sig where the resolver puts the hub's.
    if (module / SIGNATURE_NAME).exists():
        shutil.copyfile(module / SIGNATURE_NAME, path / SIGNATURE_NAME)
    return path


def _settings(tmp_path: Path, trusted: Path | None = None) -> Settings:
    return Settings(endpoint=ENDPOINT, cache=tmp_path / "cache", progress=False, trusted_keys=trusted)


def _once(counts: Counts, directory: Path, *, signed: bool) -> None:
    assert counts.manifest_reads == [directory], "modhub.json must be read exactly once per load"
    assert counts.signature_checks == (1 if signed else 0), "the signature must be checked once"
    assert counts.caches <= 1, "one ModuleCache per load"


@pytest.mark.parametrize("runtime", [None, "onnx", "torch"])
def test_load_of_a_cached_handle_reads_the_manifest_once(
    image_module: Path, tmp_path: Path, counts: Counts, runtime: str | None
) -> None:
    settings = _settings(tmp_path)
    path = _cached(settings, image_module)
    counts.reset()
    module = hub.load(HANDLE, runtime=runtime, settings=settings)
    assert module.path == path
    _once(counts, path, signed=False)


@pytest.mark.parametrize("runtime", [None, "torch"])
def test_load_with_trusted_keys_checks_the_signature_once(
    signed_module: Path, keys: tuple[Path, Path], tmp_path: Path, counts: Counts, runtime: str | None
) -> None:
    settings = _settings(tmp_path, trusted=keys[1])
    path = _cached(settings, signed_module)
    counts.reset()
    module = hub.load(HANDLE, runtime=runtime, settings=settings)
    assert module.signed_by is not None
    _once(counts, path, signed=True)


def test_load_from_the_environment_reads_the_manifest_once(
    signed_module: Path,
    keys: tuple[Path, Path],
    tmp_path: Path,
    counts: Counts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(tmp_path, trusted=keys[1])
    path = _cached(settings, signed_module)
    monkeypatch.setenv("MODHUB_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("MODHUB_CACHE", str(settings.cache))
    monkeypatch.setenv("MODHUB_TRUSTED_KEYS", str(keys[1]))
    reads = 0
    original = Settings.from_env

    def counting_from_env() -> Settings:
        nonlocal reads
        reads += 1
        return original()

    monkeypatch.setattr(Settings, "from_env", staticmethod(counting_from_env))
    counts.reset()
    hub.load(HANDLE)
    _once(counts, path, signed=True)
    hub.Layer(HANDLE)
    assert reads == 2, "each public entry point reads the environment once"


@pytest.mark.parametrize("trusted", [False, True])
def test_load_of_a_local_directory_reads_the_manifest_once(
    signed_module: Path, keys: tuple[Path, Path], tmp_path: Path, counts: Counts, trusted: bool
) -> None:
    settings = _settings(tmp_path, trusted=keys[1] if trusted else None)
    hub.load(signed_module, settings=settings)
    _once(counts, signed_module, signed=trusted)


@pytest.mark.parametrize("where", ["cached", "local"])
def test_layer_reads_the_manifest_once(
    signed_module: Path, keys: tuple[Path, Path], tmp_path: Path, counts: Counts, where: str
) -> None:
    settings = _settings(tmp_path, trusted=keys[1])
    path = _cached(settings, signed_module) if where == "cached" else signed_module
    counts.reset()
    layer = hub.Layer(HANDLE if where == "cached" else signed_module, settings=settings)
    assert layer.signed_by is not None
    _once(counts, path, signed=True)


def test_predict_loads_once_with_numpy_output(image_module: Path, tmp_path: Path, counts: Counts) -> None:
    import numpy as np
    import torch

    from modhub.predict.runner import load_for_inference

    settings = _settings(tmp_path)
    path = _cached(settings, image_module)
    counts.reset()
    module = load_for_inference(HANDLE, settings)
    _once(counts, path, signed=False)
    assert isinstance(module(torch.rand(1, 3, 32, 32)), np.ndarray)


def test_a_damaged_cached_copy_is_assembled_again_by_load(
    image_module: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The completeness check moved from the resolver into the one manifest read: still done."""
    import modhub.client.resolve as resolve_module

    settings = _settings(tmp_path)
    fake = FakeHub()
    fake.publish("acme", "tiny-cnn", 1, image_module)
    path = Resolver(settings, transport=fake.transport()).resolve(HANDLE)
    (path / "README.md").unlink()  # a file no runtime reads

    class WithFakeHub(resolve_module.Resolver):
        def __init__(self, settings: Settings, **kwargs: Any) -> None:
            super().__init__(settings, **{**kwargs, "transport": fake.transport()})

    monkeypatch.setattr(resolve_module, "Resolver", WithFakeHub)
    before = len(fake.requests)
    hub.load(HANDLE, settings=settings)
    assert (path / "README.md").is_file()
    assert len(fake.requests) > before  # asked the hub again, as hub.resolve does for a damaged copy
