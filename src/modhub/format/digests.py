"""sha256, the one digest of modhub: what a digest looks like, and hashing a file by streaming.

Every file of a module, every blob of the hub and of the cache is named by
the sha256 of its bytes: these are the one definition of a well-formed
digest and the one streamed hasher (a fixed buffer, never a whole file held),
for a file object (:func:`sha256_stream`) and for a bare descriptor read by
offset (:func:`sha256_fd`, which never moves the descriptor's position).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

__all__ = [
    "HASH_CHUNK",
    "SHA256_PATTERN",
    "check_sha256",
    "is_sha256",
    "read_chunks",
    "sha256_fd",
    "sha256_file",
    "sha256_stream",
]

# Read size when a file is hashed by streaming: large enough to run at disk speed, small to hold.
HASH_CHUNK = 1 << 20
# A sha256 as modhub writes it everywhere: 64 lowercase hexadecimal characters. Anchored, so
# that JSON schemas (pydantic ``Field(pattern=...)``, the OpenAPI spec) can use it as it is.
SHA256_PATTERN = r"^[0-9a-f]{64}$"
_SHA256_RE = re.compile(SHA256_PATTERN, re.ASCII)

# What a sink is given: a bytes-like chunk, valid only during the call (the buffer is reused).
Sink = Callable[[Any], object]


def is_sha256(text: object) -> bool:
    """Whether ``text`` is a sha256 written as modhub writes them (64 lowercase hex characters)."""
    return isinstance(text, str) and _SHA256_RE.fullmatch(text) is not None


def check_sha256(text: str) -> str:
    """``text`` if it is a sha256 (see :func:`is_sha256`), else ValueError."""
    if not is_sha256(text):
        raise ValueError(f"not a sha256 hex digest: {text!r}; expected 64 lowercase hex characters")
    return text


def read_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    """What is left to read in ``fh``, :data:`HASH_CHUNK` bytes at a time."""
    while chunk := fh.read(HASH_CHUNK):
        yield chunk


def sha256_stream(
    fh: IO[bytes], *, sink: Sink | None = None, digest: hashlib._Hash | None = None
) -> tuple[str, int]:
    """The sha256 and size of what is left to read in ``fh`` (each chunk also given to ``sink``).

    ``digest``: a hash to continue (a resumed download hashes the part it has first);
    the result is then its hex digest, and the size counts only what was read here.
    """
    digest = hashlib.sha256() if digest is None else digest
    size = 0
    for chunk in read_chunks(fh):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink(chunk)
    return digest.hexdigest(), size


def sha256_fd(fd: int, *, sink: Sink | None = None) -> tuple[str, int]:
    """The sha256 and size of an open file from byte 0, read with ``preadv`` through one buffer.

    By offset, so the descriptor's position is neither used nor moved: the same
    descriptor may be handed to an engine that reads it afterwards. ``sink`` is
    given a view of each chunk, valid only during the call.
    """
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    with memoryview(buffer) as view:
        offset = 0
        while count := os.preadv(fd, [buffer], offset):
            digest.update(view[:count])
            if sink is not None:
                sink(view[:count])
            offset += count
    return digest.hexdigest(), offset


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read by streaming."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)[0]
