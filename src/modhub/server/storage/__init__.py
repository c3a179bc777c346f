"""Content-addressed blob storage: the protocol (:mod:`.base`), local files (:mod:`.local`), S3 (:mod:`.s3`).

``open_storage(settings)`` picks the backend from ``MODHUB_SERVER_BLOB_URL``
through a registry of URL schemes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

from modhub.server.storage.base import BlobStorage, IncompleteWrite, StoredBlob, check_sha256
from modhub.server.storage.local import LocalBlobStorage

if TYPE_CHECKING:
    from modhub.server.config import ServerSettings

__all__ = [
    "BACKENDS",
    "BlobStorage",
    "IncompleteWrite",
    "LocalBlobStorage",
    "StoredBlob",
    "check_sha256",
    "open_storage",
]


def _local_storage(settings: ServerSettings) -> BlobStorage:
    if settings.blob_url:
        return LocalBlobStorage(Path(url2pathname(urlsplit(settings.blob_url).path)))
    return LocalBlobStorage(settings.resolved_blob_dir)


def _s3_storage(settings: ServerSettings) -> BlobStorage:
    try:
        import boto3  # noqa: F401

        from modhub.server.storage.s3 import S3BlobStorage
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
