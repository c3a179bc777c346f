"""Content-addressed blob storage behind a small protocol.

Blobs are keyed by their sha256 only, never by a user-supplied name, so no
upload can choose where its bytes land. ``LocalBlobStorage`` (:mod:`.local`) keeps them under
``<root>/<aa>/<bb>/<sha256>``; ``S3BlobStorage`` (:mod:`.s3`) keeps them in an
S3-compatible object store. Both implement this protocol, including the
listing and deletion that ``modhub admin gc`` needs; ``modhub.server.storage.open_storage``
picks one from ``MODHUB_SERVER_BLOB_URL``.

A blob is only ever served or adopted if its bytes match its name: the local
store hashes a file before it first serves it (and again whenever the file's
:func:`~modhub.format._files.stat_key` changed), and a publish always installs its own freshly
hashed copy instead of trusting a file that already sits under the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

# The one sha256 rule (ValueError unless 64 lowercase hex characters), re-exported for the hub.
from modhub.format.digests import check_sha256

__all__ = ["BlobStorage", "IncompleteWrite", "StoredBlob", "check_sha256"]


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
