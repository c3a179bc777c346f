"""Garbage collection (``modhub admin gc``): what a dead publish leaves behind, in one pass.

A publish stores its blobs first and then adds the version in one
transaction, so a crash (or a refused upload) between the two leaves blobs no
version references; a crash mid-upload leaves staged files, and a crash
mid-write leaves the storage backend's temp files. None of them is ever
visible, but they take space. ``collect_garbage`` removes:

* blobs in storage that no ``blobs`` row names (the rows are written in the
  publish transaction, so a committed version's blobs always have one);
* staged uploads under ``<data_dir>/tmp``;
* the backend's incomplete writes (``BlobStorage.iter_incomplete``).

It is written against the ``BlobStorage`` protocol only, so every backend
supports it. While a hub serves the same data directory, a publish may be
between storing its blobs and committing; such leftovers are younger than
``min_age`` (blobs get a fresh mtime whenever a publish stores them), and are
kept. With no hub running (see ``serving_lock``) everything orphaned goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from modhub.server.config import ServerSettings
from modhub.server.deps import Hub
from modhub.server.models import Blob
from modhub.server.storage import IncompleteWrite, StoredBlob

# Leftovers younger than this are kept while a hub is serving the data directory.
DEFAULT_MIN_AGE = 3600.0
_LOCK_NAME = ".serving.lock"


@dataclass
class StagedLeftover:
    path: Path
    size: int
    modified: float


@dataclass
class GcReport:
    dry_run: bool
    # Seconds a leftover had to be unmodified to be removed (0: no hub was serving).
    min_age: float
    blobs: list[StoredBlob] = field(default_factory=list)
    staged: list[StagedLeftover] = field(default_factory=list)
    incomplete: list[IncompleteWrite] = field(default_factory=list)
    # Orphans kept because they are younger than min_age.
    kept_young: int = 0

    @property
    def freed_bytes(self) -> int:
        return (
            sum(b.size for b in self.blobs)
            + sum(s.size for s in self.staged)
            + sum(i.size for i in self.incomplete)
        )


@contextlib.contextmanager
def serving_lock(settings: ServerSettings, *, exclusive: bool) -> Iterator[bool]:
    """A lock file in the data directory: every serving process holds it shared, gc tries it exclusive.

    Yields whether the lock was taken (for ``exclusive``: True means no hub is
    serving this data directory now, and none can start until gc is done).
    Without ``fcntl`` (not POSIX) it yields False: gc then assumes a hub may be running.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX only
        yield False
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _staged(settings: ServerSettings) -> Iterator[StagedLeftover]:
    root = settings.staging_dir
    if not root.is_dir():
        return
    for path in root.iterdir():
        size, newest = 0, path.lstat().st_mtime
        if path.is_dir() and not path.is_symlink():
            for dirpath, _dirs, files in os.walk(path):
                newest = max(newest, os.lstat(dirpath).st_mtime)
                for name in files:
                    stat = os.lstat(os.path.join(dirpath, name))
                    size += stat.st_size
                    newest = max(newest, stat.st_mtime)
        else:
            size = path.lstat().st_size
        yield StagedLeftover(path=path, size=size, modified=newest)


def collect_garbage(hub: Hub, *, dry_run: bool = False, min_age: float | None = None) -> GcReport:
    """Remove (or with ``dry_run`` only list) every orphaned blob, staged upload and incomplete write.

    ``min_age`` None: 0 when no hub serves the data directory, else DEFAULT_MIN_AGE.
    """
    with serving_lock(hub.settings, exclusive=True) as alone:
        # The lock only sees hubs on this machine's data directory; on a shared database
        # (PostgreSQL) hubs elsewhere may be publishing into the same store right now.
        alone = alone and hub.db.is_sqlite
        age = (0.0 if alone else DEFAULT_MIN_AGE) if min_age is None else min_age
        report = GcReport(dry_run=dry_run, min_age=age)
        cutoff = time.time() - age
        # List storage before reading the database: a blob a publish commits after the
        # listing is referenced by the time it is checked, or younger than the cutoff.
        stored = list(hub.storage.iter_blobs())
        with hub.db.session() as session:
            referenced = set(session.scalars(select(Blob.sha256)))
        for blob in stored:
            if blob.sha256 in referenced:
                continue
            if blob.modified > cutoff:
                report.kept_young += 1
                continue
            report.blobs.append(blob)
        for staged in _staged(hub.settings):
            if staged.modified > cutoff:
                report.kept_young += 1
            else:
                report.staged.append(staged)
        for leftover in hub.storage.iter_incomplete():
            if leftover.modified > cutoff:
                report.kept_young += 1
            else:
                report.incomplete.append(leftover)
        if not dry_run:
            _remove(hub, report, cutoff)
    return report


def _remove(hub: Hub, report: GcReport, cutoff: float) -> None:
    fresh = {b.sha256: b for b in hub.storage.iter_blobs()} if report.blobs else {}
    kept: list[StoredBlob] = []
    for blob in report.blobs:
        now = fresh.get(blob.sha256)
        if now is not None and now.modified > cutoff:
            kept.append(blob)  # a publish stored it again meanwhile
            continue
        hub.storage.delete(blob.sha256)
    for blob in kept:
        report.blobs.remove(blob)
        report.kept_young += 1
    for staged in report.staged:
        if staged.path.is_dir() and not staged.path.is_symlink():
            shutil.rmtree(staged.path, ignore_errors=True)
        else:
            staged.path.unlink(missing_ok=True)
    for leftover in report.incomplete:
        hub.storage.delete_incomplete(leftover.key)
