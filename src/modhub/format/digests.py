"""sha256, the one digest of modhub: what a digest looks like, and hashing a file by streaming.

Every file of a module, every blob of the hub and of the cache is named by
the sha256 of its bytes: these are the one definition of a well-formed
digest and the one streamed hasher (a fixed buffer, never a whole file held).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["HASH_CHUNK", "SHA256_RE", "is_sha256", "sha256_file", "sha256_stream"]

# Read size when a file is hashed by streaming: large enough to run at disk speed, small to hold.
HASH_CHUNK = 1 << 20
# A sha256 as modhub writes it everywhere: 64 lowercase hexadecimal characters.
SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)


def is_sha256(text: object) -> bool:
    """Whether ``text`` is a sha256 written as modhub writes them (64 lowercase hex characters)."""
    return isinstance(text, str) and SHA256_RE.fullmatch(text) is not None


def sha256_stream(fh: IO[bytes], *, sink: Callable[[bytes], object] | None = None) -> tuple[str, int]:
    """The sha256 and size of what is left to read in ``fh`` (each chunk also given to ``sink``)."""
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink(chunk)
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read by streaming."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)[0]
