"""LocalBlobStorage: content-addressed, atomic, identical content stored once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from modhub.errors import IntegrityError
from modhub.server.storage import BlobStorage, LocalBlobStorage


def test_put_stream_and_read(tmp_path: Path) -> None:
    store = LocalBlobStorage(tmp_path / "blobs")
    assert isinstance(store, BlobStorage)
    data = b"hello" * 1000
    sha = store.put_stream([data[:7], data[7:]])
    assert sha == hashlib.sha256(data).hexdigest()
    assert store.exists(sha) and store.size(sha) == len(data)
    with store.open(sha) as fh:
        assert fh.read() == data
    assert store.path_for(sha) == tmp_path / "blobs" / sha[:2] / sha[2:4] / sha


def test_expected_sha_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = LocalBlobStorage(tmp_path / "blobs")
    with pytest.raises(IntegrityError):
        store.put_stream([b"abc"], expected_sha256="0" * 64)
    assert list(store.iter_blobs()) == []
    assert list((tmp_path / "blobs" / ".tmp").iterdir()) == []


def test_put_file_dedupes(tmp_path: Path) -> None:
    store = LocalBlobStorage(tmp_path / "blobs")
    sha = hashlib.sha256(b"same").hexdigest()
    for i in range(3):
        staged = tmp_path / f"staged-{i}"
        staged.write_bytes(b"same")
        store.put_file(staged, sha)
        assert not staged.exists()
    assert [b.sha256 for b in store.iter_blobs()] == [sha]


@pytest.mark.parametrize("bad", ["../../etc/passwd", "abc", "G" * 64, "A" * 64])
def test_only_sha256_keys(tmp_path: Path, bad: str) -> None:
    store = LocalBlobStorage(tmp_path / "blobs")
    with pytest.raises(ValueError, match="sha256"):
        store.path_for(bad)
