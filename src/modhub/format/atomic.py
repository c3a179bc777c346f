"""Atomic writes: a file or a directory appears complete, or the old one stays; never half of one.

Every file and directory modhub writes in place of another (a manifest, a
signature, a token, a cache record, an exported module, a backup) goes
through these two, so they all give the same, strongest guarantee:

* :func:`atomic_write` (and :func:`write_bytes`, :func:`write_text`): the bytes
  go to a temp file with a unique name (``O_EXCL``, as mkstemp) in the target's own
  directory (a rename is atomic only within one filesystem; a fixed temp name
  would let two writers mix their bytes), are flushed and ``fsync``-ed (else a
  crash after the rename can leave the new name pointing at an empty file),
  then ``os.replace`` puts them in place in one step and the directory is
  ``fsync``-ed (else the rename itself may be lost in a crash). On any failure,
  the temp file is removed and the target is untouched.
* :func:`replace_directory` (and :func:`atomic_directory`): a directory built
  beside the target replaces it. POSIX cannot rename a directory over a
  non-empty one, so an existing target is first renamed aside, the new one
  renamed in, and only then the old one deleted; if the second rename fails,
  the old one is put back. Readers see the old directory or the new one; at
  worst, for the instant between the two renames, none (never a mix, never a
  half-deleted old one, which deleting first would risk).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = [
    "atomic_directory",
    "atomic_write",
    "fsync_dir",
    "fsync_file",
    "replace_directory",
    "write_bytes",
    "write_text",
]


def fsync_file(fh: IO[bytes]) -> None:
    """Flush Python's and the OS's buffers, so a rename that follows never exposes a short file."""
    fh.flush()
    os.fsync(fh.fileno())


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and platforms) cannot fsync a directory; the rename still happened
    finally:
        os.close(fd)


def _create_temp(target: Path, mode: int | None) -> tuple[int, Path]:
    """A new, uniquely named file beside ``target``, open for writing.

    What ``tempfile.mkstemp`` does (``O_EXCL`` on a random name, retried on a
    clash), but created with the mode the final file should have: mkstemp's
    fixed 0600 would need the umask to widen, and reading the umask means
    setting it, which races with every other thread creating files.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            # A secret is created 0600 and stays so: never readable by others, not for an instant.
            fd = os.open(tmp, flags, 0o600 if mode is not None else 0o666)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
            except BaseException:
                os.close(fd)
                tmp.unlink(missing_ok=True)
                raise
        return fd, tmp


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[IO[bytes]]:
    """Write ``target`` atomically: yield a binary file to write; it replaces ``target`` on a clean exit.

    ``mode``: the new file's permission bits, e.g. ``0o600`` for secrets
    (tokens, keys). None: as ``open`` would create it (0666 less the umask).
    """
    target = Path(target)
    fd, tmp = _create_temp(target, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fsync_file(fh)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(target: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` atomically (see :func:`atomic_write`); returns the target."""
    with atomic_write(target, mode=mode) as fh:
        fh.write(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically (see :func:`atomic_write`); returns the target."""
    return write_bytes(target, text.encode("utf-8"), mode=mode)


def replace_directory(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put the directory ``staging`` in place of ``target`` (which may exist); ``staging`` is consumed.

    ``staging`` must be on the target's filesystem (best: beside it, as
    :func:`atomic_directory` makes it). An existing ``target`` is renamed aside
    (a hidden name beside it), the new one renamed in, then the old one
    deleted; if renaming the new one in fails, the old one is put back.
    """
    staging, target = Path(staging), Path(target)
    aside: Path | None = None
    if target.exists() or target.is_symlink():
        aside = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        if aside is not None:
            os.rename(aside, target)
        raise
    fsync_dir(target.parent)
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty directory beside ``target`` to fill; it replaces ``target`` on a clean exit.

    On an exception the staging directory is removed and ``target`` is left as it was.
    """
    target = Path(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield staging
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
