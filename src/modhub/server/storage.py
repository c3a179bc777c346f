"""Content-addressed blob storage behind a small protocol.

Blobs are keyed by their sha256 only, never by a user-supplied name, so no
upload can choose where its bytes land. ``LocalBlobStorage`` keeps them under
``<root>/<aa>/<bb>/<sha256>``; ``S3BlobStorage`` (``storage_s3``) keeps them in an
S3-compatible object store. Both implement the same protocol, including the
listing and deletion that ``modhub admin gc`` needs. ``open_storage(settings)``
picks the backend from ``MODHUB_SERVER_BLOB_URL`` through a registry of URL schemes.

A blob is only ever served or adopted if its bytes match its name: the local
store hashes a file before it first serves it (and again whenever the file's
inode, size or mtime changed), and a publish always installs its own freshly
hashed copy instead of trusting a file that already sits under the name.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class StoredBlob:
    """One blob as the backend lists it."""

    sha256: str
    size: int
    # Last modification (seconds since the epoch): when it was stored, or last re-adopted.
    modified: float


@dataclass(frozen=True)
class IncompleteWrite:
    """Bytes a write left behind that never became a blob (a crash mid-write)."""

    # Backend-specific key (a temp file name; an S3 multipart upload id).
    key: str
    size: int
    modified: float


@runtime_checkable
class BlobStorage(Protocol):
    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int:
        """Size in bytes; FileNotFoundError if the blob is absent."""
        ...

    def open(self, sha256: str) -> BinaryIO:
        """A seekable reader of bytes whose sha256 is ``sha256``.

        FileNotFoundError if the blob is absent; IntegrityError if the stored
        bytes do not match their name (they are then moved aside, never served).
        """
        ...

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        """Store bytes, hashing while writing; return their sha256 (IntegrityError if not expected)."""
        ...

    def put_file(self, path: Path, sha256: str) -> None:
        """Move a local file whose sha256 the caller has computed into the store (it is consumed).

        The file replaces whatever is stored under the name, so a damaged
        existing copy is never adopted.
        """
        ...

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob (for ``modhub admin gc``, backups and tests)."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; absent is not an error."""
        ...

    def iter_incomplete(self) -> Iterator[IncompleteWrite]:
        """Leftovers of writes that never completed."""
        ...

    def delete_incomplete(self, key: str) -> None:
        """Remove one leftover named by ``iter_incomplete``; absent is not an error."""
        ...

    def download_url(self, sha256: str) -> str | None:
        """A URL clients may fetch the blob from directly (the hub redirects there); None: the hub
        streams the bytes itself."""
        ...


def fsync_file(fh: BinaryIO) -> None:
    """Flush Python's and the OS's buffers, so a rename that follows never exposes a short file."""
    fh.flush()
    os.fsync(fh.fileno())


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable (best effort where unsupported)."""
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


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class LocalBlobStorage:
    """Blobs in a local directory. Writes are atomic: temp file, hash, fsync, rename, fsync dir."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._quarantine = self.root / ".corrupt"
        # sha256 -> (inode, size, mtime_ns) of the file last hashed and found to match.
        self._verified: dict[str, tuple[int, int, int]] = {}
        self._lock = threading.Lock()
        self._hashing: dict[str, threading.Lock] = {}

    def path_for(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        path = self.path_for(sha256)
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
        try:
            stat = os.fstat(fh.fileno())
            signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if self._verified.get(sha256) != signature:
                self._verify(sha256, path, fh, signature)
        except BaseException:
            fh.close()
            raise
        return fh

    def _verify(self, sha256: str, path: Path, fh: BinaryIO, signature: tuple[int, int, int]) -> None:
        """Hash the open file once (one thread per blob; the others wait for its verdict)."""
        with self._lock:
            lock = self._hashing.setdefault(sha256, threading.Lock())
        with lock:
            if self._verified.get(sha256) == signature:
                return
            digest = hashlib.sha256()
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
            fh.seek(0)
            if digest.hexdigest() != sha256:
                self._set_aside(sha256, path, signature)
                raise IntegrityError(
                    f"stored blob {sha256} is damaged (its bytes hash to {digest.hexdigest()}); it was "
                    f"moved to {self._quarantine} and will not be served. Publish the file again or "
                    "restore the blob store from a backup.",
                    path=str(path),
                )
            self._verified[sha256] = signature

    def _set_aside(self, sha256: str, path: Path, signature: tuple[int, int, int]) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != signature:
            return  # replaced meanwhile (e.g. by a publish installing a good copy)
        self._quarantine.mkdir(exist_ok=True)
        os.replace(path, self._quarantine / f"{sha256}.{uuid.uuid4().hex[:8]}")

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
                fsync_file(fh)
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise IntegrityError(f"blob has sha256 {sha256}, expected {expected_sha256}")
            self._install(tmp, sha256)
            return sha256
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, path: Path, sha256: str) -> None:
        # The caller hashed this file's bytes; an existing file under the name was not
        # checked by anyone, so the fresh copy replaces it (atomically: readers that
        # opened the old one keep reading it).
        try:
            self._install(Path(path), sha256)
        except OSError:
            # Another filesystem: copy next to the store first, then rename (still atomic).
            tmp = self._tmp / f"copy-{uuid.uuid4().hex}"
            try:
                with open(path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                    fsync_file(dst)
                self._install(tmp, sha256)
            finally:
                tmp.unlink(missing_ok=True)
            Path(path).unlink(missing_ok=True)

    def _install(self, source: Path, sha256: str) -> None:
        target = self.path_for(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A fresh mtime tells `modhub admin gc` the blob was just (re)stored: a publish may be
        # about to reference it.
        os.utime(source)
        # os.replace is atomic: readers see no blob or the whole blob. Two writers
        # racing on one sha256 write identical bytes, so either may win.
        os.replace(source, target)
        fsync_dir(target.parent)
        stat = target.stat()
        with self._lock:
            self._verified[sha256] = (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def download_url(self, sha256: str) -> str | None:
        return None

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("??/??/*"):
            name = path.name
            if len(name) != 64 or not set(name) <= _SHA_CHARS or not path.is_file():
                continue
            stat = path.stat()
            yield StoredBlob(sha256=name, size=stat.st_size, modified=stat.st_mtime)

    def delete(self, sha256: str) -> None:
        path = self.path_for(sha256)
        path.unlink(missing_ok=True)
        with self._lock:
            self._verified.pop(sha256, None)
        fsync_dir(path.parent)

    def iter_incomplete(self) -> Iterator[IncompleteWrite]:
        for folder in (self._tmp, self._quarantine):
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                stat = path.lstat()
                yield IncompleteWrite(
                    key=f"{folder.name}/{path.name}", size=stat.st_size, modified=stat.st_mtime
                )

    def delete_incomplete(self, key: str) -> None:
        folder, _, name = key.partition("/")
        if folder not in (self._tmp.name, self._quarantine.name) or not name or "/" in name:
            raise ValueError(f"not a leftover of this store: {key!r}")
        (self.root / folder / name).unlink(missing_ok=True)


def _local_storage(settings: ServerSettings) -> BlobStorage:
    if settings.blob_url:
        return LocalBlobStorage(Path(url2pathname(urlsplit(settings.blob_url).path)))
    return LocalBlobStorage(settings.resolved_blob_dir)


def _s3_storage(settings: ServerSettings) -> BlobStorage:
    try:
        import boto3  # noqa: F401

        from modhub.server.storage_s3 import S3BlobStorage
    except ImportError as exc:
        raise ImportError(
            f"MODHUB_SERVER_BLOB_URL={settings.blob_url} needs boto3 ({exc}): pip install 'modhub[s3]'"
        ) from exc
    return S3BlobStorage.from_settings(settings)


# URL scheme of MODHUB_SERVER_BLOB_URL -> backend factory ("": not set, <data_dir>/blobs).
BACKENDS: dict[str, Callable[[ServerSettings], BlobStorage]] = {
    "": _local_storage,
    "file": _local_storage,
    "s3": _s3_storage,
}


def open_storage(settings: ServerSettings) -> BlobStorage:
    """The blob store ``settings`` name (the URL was checked when the settings were read)."""
    scheme = urlsplit(settings.blob_url).scheme if settings.blob_url else ""
    return BACKENDS[scheme](settings)
