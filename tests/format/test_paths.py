"""Manifest paths name the module's own files; each is read once; a swap after the read has no effect."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
import torch

import modhub as hub
from modhub.errors import IntegrityError, ManifestError, UnsafeModuleError
from modhub.format.manifest import FileEntry
from modhub.format.verify import copy_module_file, read_module_file, verify_module
from modhub.graph import build_graph_module
from modhub.server.errors import InvalidModule
from modhub.server.services.publishing import _verify_module
from tests.format.corpus import image_cases, rehash
from tests.tiny_models import make_module

# case name in corpus.image_cases() -> the error hub.load must raise
REGRESSIONS = {
    "labels-path-0": ManifestError,  # /proc/self/environ
    "labels-path-1": ManifestError,  # ../../../../proc/self/environ
    "labels-path-2": ManifestError,  # assets/../../../etc/passwd
    "labels-path-4": ManifestError,  # ./assets/labels.txt (not normalised)
    "file-entry-path-0": ManifestError,
    "files-duplicate-entry": ManifestError,
    "files-duplicate-by-case": ManifestError,
    "labels-fifo": UnsafeModuleError,
    "graph-fifo": UnsafeModuleError,
    "manifest-fifo": UnsafeModuleError,
    "labels-symlink-environ": UnsafeModuleError,
    "labels-symlink-dev-zero": UnsafeModuleError,
    "assets-dir-symlink": UnsafeModuleError,
    "labels-huge-declared": UnsafeModuleError,
}


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_path_attack_is_refused_on_the_client_and_at_publish(
    image_module: Path, tmp_path: Path, name: str
) -> None:
    module = _copy(image_module, tmp_path / "m")
    if image_cases()[name](module, tmp_path / "MARKER") is not False:
        rehash(module)
    # The graph is read by the torch runtime only; everything else by both.
    for runtime in ("torch",) if name.startswith("graph") else ("torch", "onnx"):
        with pytest.raises(REGRESSIONS[name]) as info:
            hub.load(module, runtime=runtime)
        assert "environ" not in repr(getattr(info.value, "labels", ""))
    with pytest.raises(InvalidModule):
        _verify_module(module)


def test_device_node_is_refused_without_opening_it(image_module: Path, tmp_path: Path) -> None:
    module = _copy(image_module, tmp_path / "m")
    labels = module / "assets" / "labels.txt"
    rehash(module)
    labels.unlink()
    try:
        os.mknod(labels, 0o644 | 0o020000, os.makedev(1, 5))  # a character device like /dev/zero
    except PermissionError:
        pytest.skip("creating device nodes needs root")
    with pytest.raises(UnsafeModuleError, match="a device"):
        hub.load(module)


def test_read_module_file_checks_the_bytes_it_returns(image_module: Path) -> None:
    entry = next(e for e in verify_module(image_module).manifest.files if e.path == "assets/labels.txt")
    assert read_module_file(image_module, entry) == (image_module / entry.path).read_bytes()
    with pytest.raises(IntegrityError, match="sha256"):
        read_module_file(image_module, FileEntry(path=entry.path, size=entry.size, sha256="0" * 64))
    with pytest.raises(UnsafeModuleError, match="more than"):
        read_module_file(image_module, entry, max_bytes=entry.size - 1)


def test_copy_module_file_hashes_what_it_writes(image_module: Path, tmp_path: Path) -> None:
    entry = next(e for e in verify_module(image_module).manifest.files if e.path == "model.onnx.data")
    copy_module_file(image_module, entry, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == (image_module / entry.path).read_bytes()
    with pytest.raises(IntegrityError, match="sha256"):
        wrong = FileEntry(path=entry.path, size=entry.size, sha256="0" * 64)
        copy_module_file(image_module, wrong, tmp_path / "x")
    assert not (tmp_path / "x").exists(), "a copy that failed its check is removed"
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "model.onnx.data").symlink_to(image_module / entry.path)
    with pytest.raises(UnsafeModuleError, match=r"symbolic link|regular"):
        copy_module_file(tmp_path / "link", entry, tmp_path / "y")


class _SwapAfterRead:
    """A FileRecords that swaps each file on disk right after modhub has read it."""

    def __init__(self, other: Path) -> None:
        self.other = other
        self.swapped: list[str] = []

    def is_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> bool:
        replacement = self.other / entry.path
        if replacement.exists():
            tmp = path.with_name(path.name + ".swap")
            shutil.copyfile(replacement, tmp)
            os.replace(tmp, path)
            self.swapped.append(entry.path)
        return False

    def mark_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> None:
        pass


def test_a_file_swapped_after_the_read_has_no_effect(
    image_module: Path, tiny_cnn: torch.nn.Module, tmp_path: Path
) -> None:
    module = _copy(image_module, tmp_path / "m")
    # Another valid module of the same shape, with other weights and labels.
    other = make_module(
        "image-classification", tmp_path / "other", seed=7, license="MIT", labels=["v", "w", "x", "y", "z"]
    )
    swapper = _SwapAfterRead(other)
    verified = verify_module(module, needed=["graph.pt2"], records=swapper)
    assert {"graph.pt2", "assets/labels.txt"} <= set(swapper.swapped)
    assert (module / "graph.pt2").read_bytes() == (other / "graph.pt2").read_bytes()  # the disk changed
    assert verified.graph is not None
    graph = build_graph_module(verified.graph)
    images = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(graph(images), tiny_cnn(images))  # ... what runs did not
    assert verified.files["assets/labels.txt"].decode().split() == ["ant", "bee", "cat", "dog", "eel"]


def test_concurrent_swaps_never_load_unverified_bytes(
    image_module: Path, tiny_cnn: torch.nn.Module, tmp_path: Path
) -> None:
    """A writer flips graph.pt2 between two versions during loads: each load is the original or refused."""
    module = _copy(image_module, tmp_path / "m")
    other = make_module(
        "image-classification", tmp_path / "other", seed=7, license="MIT", labels=["v", "w", "x", "y", "z"]
    )
    versions = [(image_module / "graph.pt2").read_bytes(), (other / "graph.pt2").read_bytes()]
    stop = threading.Event()

    def flip() -> None:
        i = 0
        while not stop.is_set():
            tmp = module / f".graph.{i % 2}"
            tmp.write_bytes(versions[i % 2])
            os.replace(tmp, module / "graph.pt2")
            i += 1

    writer = threading.Thread(target=flip)
    writer.start()
    images = torch.rand(2, 3, 32, 32)
    outcomes = {"loaded": 0, "refused": 0}
    try:
        for _ in range(20):
            try:
                loaded = hub.load(module, runtime="torch")
            except IntegrityError:
                outcomes["refused"] += 1
                continue
            with torch.no_grad():
                assert torch.equal(loaded(images), tiny_cnn(images))
            outcomes["loaded"] += 1
    finally:
        stop.set()
        writer.join()
    assert sum(outcomes.values()) == 20
