"""Opening a module's files safely: no symlinks (but a Hugging Face snapshot's own), no FIFOs or devices.

One place for the low-level rules every reader of a module's files follows
(the manifest reader and :func:`modhub.format.verify.read_module_file`): how
to open and read one, the size caps per file role, and the key that says a
file is still the one that was hashed (:func:`stat_key`).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import NamedTuple, cast

# graph.pt2: the graph reader's own bound on what an archive unpacks to (a file is no larger).
from modhub.graph.limits import MAX_GRAPH_BYTES as MAX_GRAPH_BYTES

_READ_CHUNK = 1 << 30

# Size caps per file role: the one table (``modhub.format.verify.file_cap`` picks from it by the
# role the manifest gives a file; every read of a module's file, at load, verify and publish, goes
# through it). Files small by nature have small caps: a 2 GB "labels.txt" is an attack, not a module.
# Largest file of a module read unless a smaller cap applies (graph weights may be large).
MAX_FILE_BYTES = 16 << 30
MAX_LABELS_BYTES = 16 << 20
MAX_TOKENIZER_BYTES = 256 << 20
# saved_model.pb: the graph and function library; weights live in variables/. GloVe's vocabulary
# makes ~10 MB.
MAX_SAVED_MODEL_PB_BYTES = 256 << 20
# tfjs/model.json: the graph (its weights lie in shards beside it, capped as any file); parsed
# as JSON by verify. MobileNetV2's is ~0.2 MB.
MAX_TFJS_MODEL_BYTES = 64 << 20
# Largest modhub.json read.
MAX_MANIFEST_BYTES = 16 << 20
# Largest modhub.sig read or accepted.
MAX_SIGNATURE_BYTES = 4 << 20


class StatKey(NamedTuple):
    """What a file looked like when it was hashed: if any of these differ, hash it again."""

    size: int
    # Modification and inode-change times in nanoseconds.
    mtime_ns: int
    ctime_ns: int
    # Which file this is (hard links share them).
    dev: int
    ino: int


def stat_key(st: os.stat_result) -> StatKey:
    """The key under which a record may vouch for a file's hash without re-hashing it.

    One key for the client's records and the hub's blob store. A write,
    truncation or rename over the path changes size, mtime or inode; ``touch``
    can set mtime back, but not ctime: user space cannot set ctime, and any
    change to the inode (chmod, a new hard link, utime) moves it, so with ctime
    in the key no tool can make a changed file look unchanged. The price is a
    re-hash after a harmless chmod or link, which is rare and only costs time.
    """
    return StatKey(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)


class NotRegular(Exception):
    """Internal: the path is not a regular file; ``kind`` says what it is."""

    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        self.kind = kind_of(mode)


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(root: Path, rel: str) -> int:
    """Open ``root/rel`` for reading without following a symlink in any component of ``rel``.

    ``O_NOFOLLOW`` alone guards only the last component; a symlinked directory
    (``assets -> /proc/self``) would still lead outside, so each directory is
    opened relative to the previous one. ``O_NONBLOCK``: opening a FIFO must
    not wait for a writer (the fstat afterwards refuses it).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    dir_flags = flags | getattr(os, "O_DIRECTORY", 0)
    parts = rel.split("/")
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts[:-1]:
            nxt = os.open(part, dir_flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
        # Look before opening: opening some device nodes has side effects.
        st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            blob = _hf_blob(root, len(parts) - 1, os.readlink(parts[-1], dir_fd=fd))
            if blob is not None:
                return open_regular(*blob)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(st.st_mode)
        return os.open(parts[-1], flags, dir_fd=fd)
    finally:
        os.close(fd)


# A Hugging Face cache snapshot: <cache>/models--<ns>--<name>/snapshots/<commit>/<path>.
_HF_BLOB_NAME = re.compile(r"^[0-9a-f]{40,64}$")


def _hf_blob(root: Path, depth: int, target: str) -> tuple[Path, str] | None:
    """The one symlink a module file may be: a Hugging Face cache snapshot's link to its own blob.

    huggingface_hub's ``snapshot_download`` lays out each file of the snapshot as
    a relative link to ``../../blobs/<etag>`` (deeper for files in folders).
    Such a link is followed only when the module directory is a snapshot of
    that layout and the link names exactly a blob of the same repository; the
    blob is then opened with the same rules (no further links, regular file).
    Any other symlink stays refused.
    """
    snapshots = root.parent
    if snapshots.name != "snapshots" or not snapshots.parent.name.startswith("models--"):
        return None
    prefix = "../" * (depth + 2) + "blobs/"
    name = target.removeprefix(prefix)
    if not target.startswith(prefix) or not _HF_BLOB_NAME.match(name):
        return None
    return snapshots.parent / "blobs", name


class TooLarge(Exception):
    """Internal: the file has ``size`` bytes, more than the reader's cap."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class Changed(Exception):
    """Internal: the file changed size while it was read."""


def read_regular(root: Path, rel: str, limit: int) -> bytes:
    """The whole of ``root/rel``, opened as :func:`open_regular` does and read once, at most ``limit`` bytes.

    Raises NotRegular, TooLarge, Changed (callers turn them into modhub errors
    of their own wording) or OSError (missing file, permissions).
    """
    fd = open_regular(root, rel)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise TooLarge(size)
        data = read_exactly(fd, size)
    finally:
        os.close(fd)
    if data is None:
        raise Changed(rel)
    return data


def read_exactly(fd: int, size: int) -> bytes | None:
    """Read exactly ``size`` bytes; None if the file is shorter or longer (it changed while read).

    Into one writable buffer, read in place (no chunks joined): the graph's
    weights can then be views of it (``build_graph_module(take_buffer=True)``)
    instead of a second copy. It is a ``bytearray``, typed as ``bytes``: callers
    only read it, and a bytearray does everything bytes does except hashing.
    """
    buffer = bytearray(size)
    with memoryview(buffer) as view:
        done = 0
        while done < size:
            count = os.readv(fd, [view[done : done + _READ_CHUNK]])
            if not count:
                return None
            done += count
    if os.read(fd, 1):
        return None
    return cast(bytes, buffer)
