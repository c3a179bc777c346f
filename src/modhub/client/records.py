"""Verified-file records: hash a module's file once, trust it until the file changes.

A record says "the file with this device, inode, size, mtime_ns and ctime_ns
held bytes with sha256 X when it was hashed". A loader that finds a matching
record for a file skips hashing it; anything that changes the file (a write,
truncation, a rename over it, chmod, a new hard link, ``touch``) changes its
mtime or ctime, so the record no longer matches and the file is hashed again.
ctime cannot be set from user space, which is why it is part of the key
(:func:`modhub.format._files.stat_key`, the same key the hub's blob store uses).

Two stores, one protocol (``modhub.format.verify.FileRecords``):

* :class:`CacheRecords` keeps records on disk under ``<cache>/records/`` for the
  files of the client cache (written by modhub itself, read-only blobs), so a
  cached module is hashed once when it downloads, not on every load.
* :class:`MemoryRecords` keeps them for the life of the process: local
  directories (``hub.load("./my-module")``) are hashed once per process.

``modhub cache verify`` ignores the records, re-hashes everything and rewrites them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from modhub.format._files import stat_key
from modhub.format.atomic import write_text
from modhub.format.manifest import FileEntry

__all__ = ["CacheRecords", "FileRecord", "MemoryRecords", "process_records"]


@dataclass(frozen=True)
class FileRecord:
    """What a file looked like when its bytes were hashed."""

    # Content digest the file had, hex.
    sha256: str
    # The rest is stat_key(st), field for field, in its order.
    size: int
    # Modification and inode-change times in nanoseconds (os.stat_result.st_*_ns).
    mtime_ns: int
    ctime_ns: int
    # Device and inode number: which file this was (hard links share them).
    dev: int
    ino: int

    @classmethod
    def of(cls, entry: FileEntry, st: os.stat_result) -> FileRecord:
        return cls(entry.sha256, *stat_key(st))

    def vouches_for(self, entry: FileEntry, st: os.stat_result) -> bool:
        return self == FileRecord.of(entry, st) and entry.size == st.st_size


class MemoryRecords:
    """Records that live as long as the process (thread-safe)."""

    def __init__(self) -> None:
        self._records: dict[tuple[int, int], FileRecord] = {}
        self._lock = threading.Lock()

    def is_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> bool:
        with self._lock:
            record = self._records.get((st.st_dev, st.st_ino))
        return record is not None and record.vouches_for(entry, st)

    def mark_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> None:
        with self._lock:
            self._records[(st.st_dev, st.st_ino)] = FileRecord.of(entry, st)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


_PROCESS_RECORDS = MemoryRecords()


def process_records() -> MemoryRecords:
    """The records of this process, for files outside the cache (local module directories)."""
    return _PROCESS_RECORDS


class CacheRecords:
    """Records on disk, one small JSON file per inode under ``directory``.

    Keyed by inode because a cached version directory hard-links the blob: the
    blob and every version directory using it are one file with one record.
    Records are a speed-up only: a missing, unreadable or stale record just
    means the file is hashed again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, st: os.stat_result) -> Path:
        return self.directory / f"{st.st_dev}-{st.st_ino}.json"

    def is_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> bool:
        try:
            raw = json.loads(self._path(st).read_bytes())
            record = FileRecord(**raw)
        except (OSError, ValueError, TypeError):
            return False
        return record.vouches_for(entry, st)

    def mark_verified(self, path: Path, entry: FileEntry, st: os.stat_result) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Atomic: a reader sees the old record or the new one, never half of one.
            write_text(self._path(st), json.dumps(asdict(FileRecord.of(entry, st))))
        except OSError:
            pass  # a read-only cache still loads; it just hashes again next time

    def forget(self, st: os.stat_result) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(st).unlink()

    def clear(self) -> None:
        """Drop every record (``modhub cache verify`` rewrites the ones that still hold)."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
