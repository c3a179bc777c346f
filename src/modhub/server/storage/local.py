"""``LocalBlobStorage``: blobs as files under ``<root>/<aa>/<bb>/<sha256>``."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from modhub.errors import IntegrityError
from modhub.format._files import StatKey, stat_key
from modhub.format.atomic import fsync_dir, fsync_file
from modhub.format.digests import HASH_CHUNK, check_sha256, is_sha256, sha256_stream
from modhub.server.storage.base import IncompleteWrite, StoredBlob


class LocalBlobStorage:
    """Blobs in a local directory. Writes are atomic: temp file, hash, fsync, rename, fsync dir."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._quarantine = self.root / ".corrupt"
        # sha256 -> stat_key of the file last hashed and found to match (the client's records use
        # the same key): a blob is re-hashed only after something touched its file.
        self._verified: dict[str, StatKey] = {}
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
            signature = stat_key(os.fstat(fh.fileno()))
            if self._verified.get(sha256) != signature:
                self._verify(sha256, path, fh, signature)
        except BaseException:
            fh.close()
            raise
        return fh

    def _verify(self, sha256: str, path: Path, fh: BinaryIO, signature: StatKey) -> None:
        """Hash the open file once (one thread per blob; the others wait for its verdict)."""
        with self._lock:
            lock = self._hashing.setdefault(sha256, threading.Lock())
        with lock:
            if self._verified.get(sha256) == signature:
                return
            digest, _ = sha256_stream(fh)
            fh.seek(0)
            if digest != sha256:
                self._set_aside(sha256, path, signature)
                raise IntegrityError(
                    f"stored blob {sha256} is damaged (its bytes hash to {digest}); it was "
                    f"moved to {self._quarantine} and will not be served. Publish the file again or "
                    "restore the blob store from a backup.",
                    path=str(path),
                )
            self._verified[sha256] = signature

    def _set_aside(self, sha256: str, path: Path, signature: StatKey) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        if stat_key(stat) != signature:
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
                    shutil.copyfileobj(src, dst, HASH_CHUNK)
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
        key = stat_key(target.stat())
        with self._lock:
            self._verified[sha256] = key

    def download_url(self, sha256: str) -> str | None:
        return None

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("??/??/*"):
            name = path.name
            if not is_sha256(name) or not path.is_file():
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
