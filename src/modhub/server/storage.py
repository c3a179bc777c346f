"""Content-addressed blob storage behind a small protocol.

Blobs are keyed by their sha256 only, never by a user-supplied name, so no
upload can choose where its bytes land. ``LocalBlobStorage`` keeps them under
``<root>/<aa>/<bb>/<sha256>``; ``S3BlobStorage`` (``storage_s3``) keeps them in an
S3-compatible object store. ``open_storage(settings)`` picks the backend from
``MODHUB_SERVER_BLOB_URL`` through a registry of URL schemes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlsplit
from urllib.request import url2pathname

from modhub.errors import IntegrityError

if TYPE_CHECKING:
    from modhub.server.config import ServerSettings

_CHUNK = 1 << 20
_SHA_CHARS = frozenset("0123456789abcdef")


def check_sha256(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _SHA_CHARS:
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return sha256


@runtime_checkable
class BlobStorage(Protocol):
    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """Size in bytes; FileNotFoundError if the blob is absent."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """A seekable binary reader; FileNotFoundError if the blob is absent."""
        ...

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        """Store bytes, hashing while writing; return their sha256 (IntegrityError if not expected)."""
        ...

    def put_file(self, path: Path, sha256: str) -> None:
        """Move a local file whose sha256 the caller has computed into the store (it is consumed)."""
        ...

    def download_url(self, sha256: str) -> str | None:
        """A URL clients may fetch the blob from directly (the hub redirects there); None: the hub
        streams the bytes itself."""
        ...


class LocalBlobStorage:
    """Blobs in a local directory. Writes are atomic: temp file, hash, fsync, rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        return open(self.path_for(sha256), "rb")

    def download_url(self, sha256: str) -> str | None:
        return None

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise IntegrityError(f"blob has sha256 {sha256}, expected {expected_sha256}")
            self._install(tmp, sha256)
            return sha256
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: Path, sha256: str) -> None:
        target = self.path_for(sha256)
        if target.is_file():
            # Identical content is stored once; the staged copy is dropped.
            Path(path).unlink(missing_ok=True)
            return
        try:
            self._install(Path(path), sha256)
        except OSError:
            # Another filesystem: copy next to the store first, then rename (still atomic).
            tmp = self._tmp / f"copy-{uuid.uuid4().hex}"
            try:
                shutil.copyfile(path, tmp)
                self._install(tmp, sha256)
            finally:
                tmp.unlink(missing_ok=True)
            Path(path).unlink(missing_ok=True)

    def _install(self, source: Path, sha256: str) -> None:
        target = self.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        # os.replace is atomic: readers see no blob or the whole blob. Two writers
        # racing on one sha256 write identical bytes, so either may win.
        os.replace(source, target)
        _fsync_dir(target.parent)

    def iter_blobs(self) -> Iterable[Path]:
        """Every stored blob file (for maintenance and tests)."""
        for path in self.root.glob("??/??/*"):
            if path.is_file():
                yield path


def _local_storage(settings: ServerSettings) -> BlobStorage:
    if settings.blob_url:
        return LocalBlobStorage(Path(url2pathname(urlsplit(settings.blob_url).path)))
    return LocalBlobStorage(settings.resolved_blob_dir)


def _s3_storage(settings: ServerSettings) -> BlobStorage:
    try:
        from modhub.server.storage_s3 import S3BlobStorage

        import boto3  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"MODHUB_SERVER_BLOB_URL={settings.blob_url} needs boto3 ({exc}): pip install 'modhub[s3]'"
        ) from exc
    return S3BlobStorage.from_settings(settings)


# URL scheme of MODHUB_SERVER_BLOB_URL -> backend factory ("" = not set: <data_dir>/blobs).
BACKENDS: dict[str, Callable[[ServerSettings], BlobStorage]] = {
    "": _local_storage,
    "file": _local_storage,
    "s3": _s3_storage,
}


def open_storage(settings: ServerSettings) -> BlobStorage:
    """The blob store ``settings`` name (the URL was checked when the settings were read)."""
    scheme = urlsplit(settings.blob_url).scheme if settings.blob_url else ""
    return BACKENDS[scheme](settings)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
