"""Download one file into the blob cache: resumable, hashed while streaming, verified.

The bytes go to ``blobs/<sha256>.incomplete`` while the blob lock is held
(the lock makes that fixed name private to one process, and the fixed name is
what lets the next attempt resume). Once every byte has arrived and the
sha256 and size match the manifest, the file becomes ``blobs/<sha256>`` with
one ``os.replace``: a blob in the cache is always complete and verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Protocol

import httpx

from modhub.client.api import HubClient, raise_for_status
from modhub.client.cache import ModuleCache
from modhub.errors import HubHTTPError, IntegrityError
from modhub.format.atomic import fsync_dir, fsync_file
from modhub.format.digests import sha256_file, sha256_stream
from modhub.format.manifest import FileEntry

__all__ = ["Progress", "fetch_blob"]

# Network failures in the middle of a file are retried this many times, resuming each time.
_ATTEMPTS = 3
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class Progress(Protocol):
    """What a progress bar needs to offer (tqdm does)."""

    def update(self, n: int) -> object: ...


class _Interrupted(Exception):
    """The connection broke mid-file; the partial file is kept for resuming."""


class _Restart(Exception):
    """The hub cannot resume from our offset; start the file again from byte 0."""


def fetch_blob(
    cache: ModuleCache,
    hub: HubClient,
    url: str,
    entry: FileEntry,
    *,
    handle: str,
    progress: Progress | None = None,
    locked: bool = False,
) -> Path:
    """Make sure ``blobs/<entry.sha256>`` exists and is verified, downloading ``url`` if needed.

    ``locked``: the caller already holds ``cache.blob_lock(entry.sha256)`` (and keeps it until
    the version directory is assembled, so that no prune can delete the blob in between).
    """
    blob = cache.blob_path(entry.sha256)
    with contextlib.nullcontext() if locked else cache.blob_lock(entry.sha256):
        if blob.exists():
            st = blob.stat()
            if st.st_size == entry.size and (
                cache.records.is_verified(blob, entry, st) or sha256_file(blob) == entry.sha256
            ):
                return blob
            # A damaged blob (disk error, someone edited a cached file): fetch it again.
            _force_unlink(blob)
        attempt = 1
        while True:
            try:
                _download(cache, hub, url, entry, handle=handle, progress=progress)
                return blob
            except _Interrupted as exc:
                if attempt >= _ATTEMPTS:
                    raise HubHTTPError(
                        f"downloading {entry.path} of {handle} from {url} failed {attempt} times "
                        f"({exc}). The part already received is kept; run the same command again "
                        "to resume.",
                        handle=handle,
                        url=url,
                    ) from exc
                attempt += 1


def _download(
    cache: ModuleCache,
    hub: HubClient,
    url: str,
    entry: FileEntry,
    *,
    handle: str,
    progress: Progress | None,
) -> None:
    partial = cache.incomplete_path(entry.sha256)
    while True:
        offset = partial.stat().st_size if partial.exists() else 0
        if offset > entry.size:
            partial.unlink()
            offset = 0
        digest = hashlib.sha256()
        if offset:
            with open(partial, "rb") as fh:
                sha256_stream(fh, digest=digest)
            if progress is not None:
                progress.update(offset)
        if offset == entry.size and partial.exists():
            # Every byte arrived before the last attempt stopped; only the rename was missing.
            if digest.hexdigest() == entry.sha256:
                _finish(partial, cache.blob_path(entry.sha256))
                return
            partial.unlink()
            continue
        try:
            _receive(hub, url, entry, partial, offset, digest, handle=handle, progress=progress)
        except _Restart:
            partial.unlink(missing_ok=True)
            continue
        break
    received = partial.stat().st_size
    if received < entry.size:
        raise _Interrupted(f"the hub sent {received} of {entry.size} bytes")
    if digest.hexdigest() != entry.sha256:
        partial.unlink(missing_ok=True)
        raise IntegrityError(
            f"{entry.path} of {handle} downloaded from {url} has sha256 {digest.hexdigest()}, but the "
            f"module's manifest says {entry.sha256}: the hub's copy is damaged or was altered. "
            "Nothing was cached. Do not use this module; tell the hub's operator.",
            handle=handle,
            url=url,
        )
    _finish(partial, cache.blob_path(entry.sha256))


def _receive(
    hub: HubClient,
    url: str,
    entry: FileEntry,
    partial: Path,
    offset: int,
    digest: hashlib._Hash,
    *,
    handle: str,
    progress: Progress | None,
) -> None:
    """Stream ``url`` from ``offset`` onto ``partial``, updating ``digest``."""
    with hub.stream(url, offset=offset, handle=handle) as response:
        if offset == 0:
            if response.status_code != 200:
                raise_for_status(response, handle=handle)
                raise HubHTTPError(
                    f"the hub answered {response.status_code} to a plain download of {url}; "
                    "expected 200. Is MODHUB_ENDPOINT a modhub hub?",
                    status=response.status_code,
                    handle=handle,
                    url=url,
                )
        elif not _resumes_at(response, offset, entry.size):
            # 200 (no Range support), 416, or a Content-Range we did not ask for.
            raise _Restart
        written = offset
        with open(partial, "ab" if offset else "wb") as fh:
            try:
                for chunk in response.iter_bytes():  # as received: a cut loses nothing
                    written += len(chunk)
                    if written > entry.size:
                        raise IntegrityError(
                            f"{entry.path} of {handle} from {url} is larger than the {entry.size} "
                            "bytes its manifest says: the hub's copy is damaged or was altered. "
                            "Nothing was cached; tell the hub's operator.",
                            handle=handle,
                            url=url,
                        )
                    fh.write(chunk)
                    digest.update(chunk)
                    if progress is not None:
                        progress.update(len(chunk))
            except httpx.TransportError as exc:
                raise _Interrupted(str(exc)) from exc
            except IntegrityError:
                fh.close()
                partial.unlink(missing_ok=True)
                raise


def _resumes_at(response: httpx.Response, offset: int, size: int) -> bool:
    if response.status_code != 206:
        return False
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if not match:
        return False
    start, end, total = match.groups()
    return int(start) == offset and int(end) == size - 1 and total in ("*", str(size))


def _finish(partial: Path, blob: Path) -> None:
    """The last step of an atomic write (:mod:`modhub.format.atomic`), on a partial file kept for resuming.

    Not ``atomic_write`` itself: the partial file must survive an interrupted
    download under its fixed name (the blob lock makes it private), so it is
    written over several attempts; the guarantee at the end is the same.
    """
    # fsync before the rename: after a crash the blob's name never points at missing bytes.
    with open(partial, "rb") as fh:
        fsync_file(fh)
    # Blobs are read-only: the version directories hard-link them, and an
    # accidental write through one of those links would corrupt every version.
    os.chmod(partial, 0o444)
    os.replace(partial, blob)
    fsync_dir(blob.parent)


def _force_unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
