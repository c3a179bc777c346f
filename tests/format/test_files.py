"""Rules about a module's files written once: the record key, the size caps per role, hidden names."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from modhub.errors import UnsafeModuleError
from modhub.format._files import MAX_SAVED_MODEL_PB_BYTES, stat_key
from modhub.format.manifest import SAVED_MODEL_PB, FileEntry, is_hidden, read_manifest
from modhub.format.verify import file_cap, read_module_file


def test_the_key_changes_when_anything_touches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"bytes")
    before = stat_key(path.stat())
    assert stat_key(path.stat()) == before  # nothing happened: a record still vouches
    os.chmod(path, 0o400)  # only ctime moves
    after_chmod = stat_key(path.stat())
    os.utime(path, ns=(path.stat().st_atime_ns, before.mtime_ns))  # mtime set back, as touch -d can
    assert after_chmod.mtime_ns == before.mtime_ns
    assert after_chmod != before
    os.link(path, tmp_path / "link")  # a new hard link moves ctime too
    assert stat_key(path.stat()) != after_chmod


def test_client_and_hub_use_the_one_key(tmp_path: Path) -> None:
    from modhub.client.records import FileRecord

    path = tmp_path / "f"
    path.write_bytes(b"x")
    st = path.stat()
    entry = FileEntry(path="f", size=1, sha256="0" * 64)
    record = FileRecord.of(entry, st)
    assert (record.size, record.mtime_ns, record.ctime_ns, record.dev, record.ino) == tuple(stat_key(st))


def test_saved_model_pb_has_its_cap_on_the_verify_path(image_module: Path, tmp_path: Path) -> None:
    manifest = read_manifest(image_module)
    assert file_cap(manifest, SAVED_MODEL_PB) == MAX_SAVED_MODEL_PB_BYTES
    big = FileEntry(path=SAVED_MODEL_PB, size=MAX_SAVED_MODEL_PB_BYTES + 1, sha256="0" * 64)
    with pytest.raises(UnsafeModuleError, match="more than"):
        read_module_file(tmp_path, big, max_bytes=file_cap(manifest, SAVED_MODEL_PB))


@pytest.mark.parametrize(
    ("rel", "hidden"),
    [
        (".git", True),
        ("assets/.DS_Store", True),
        (".cache/labels.txt", True),
        (PurePosixPath("a/.b/c"), True),
        ("assets/labels.txt", False),
        ("model.onnx.data", False),
        (PurePosixPath("assets/x.txt"), False),
    ],
)
def test_a_path_is_hidden_when_a_part_of_it_starts_with_a_dot(rel: str | PurePosixPath, hidden: bool) -> None:
    assert is_hidden(rel) is hidden
