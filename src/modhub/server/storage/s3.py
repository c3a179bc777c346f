"""Blob storage in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph...), with boto3.

Chosen by ``MODHUB_SERVER_BLOB_URL=s3://BUCKET/PREFIX`` (+ ``MODHUB_SERVER_S3_ENDPOINT``
for a non-AWS store). Credentials and region come from boto3's usual chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_REGION``, profiles,
instance roles); nothing here reads them itself.

Blobs are keyed ``PREFIX/<aa>/<bb>/<sha256>``, as on disk. An upload streams in
parts (one PUT when it fits in one part, a multipart upload otherwise); every
part carries its own SHA-256 checksum, which the store verifies, while the
whole blob is hashed on the way. The object appears only when the upload is
completed, and that happens only when the whole blob's sha256 is the expected
one: a wrong or interrupted upload leaves nothing visible (the multipart
upload is aborted; one a crash left open is what ``modhub admin gc`` aborts).
When the digest is not known in advance the parts go to a temporary key and
are copied server-side to their final key. Identical blobs are stored once,
under their digest; as on disk, a publish writes its own verified copy there
rather than trusting an object that already sits under the name.

Downloads do not pass through the hub: ``download_url`` presigns a GET that
the hub answers with a 307, so the bytes flow from the object store to the
client, and Range requests work there too.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from modhub.errors import IntegrityError
from modhub.format.digests import HASH_CHUNK, check_sha256, is_sha256, read_chunks
from modhub.server.storage.base import IncompleteWrite, StoredBlob

if TYPE_CHECKING:
    from modhub.server.config import ServerSettings

# Multipart part size: S3 wants >= 5 MiB for every part but the last.
PART_BYTES = 8 << 20
_META_KEY = "sha256"
# Objects of uploads whose digest was not known in advance, until they are copied to it.
_TMP = ".tmp"


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in ("404", "NoSuchKey", "NotFound") or status == 404


class S3BlobStorage:
    """Content-addressed blobs under ``s3://bucket/prefix``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        public_endpoint: str | None = None,
        presign_seconds: int = 3600,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Every key starts with this ("" for a whole bucket).
        self.root = f"{self.prefix}/" if self.prefix else ""
        self.presign_seconds = presign_seconds
        self.client = client if client is not None else _client(endpoint)
        # Presigning is local arithmetic; a separate client signs for the address clients use.
        self._signer = _client(public_endpoint) if public_endpoint else self.client

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> S3BlobStorage:
        url = urlsplit(settings.blob_url or "")
        return cls(
            url.netloc,
            url.path,
            endpoint=settings.s3_endpoint,
            public_endpoint=settings.s3_public_endpoint,
            presign_seconds=settings.s3_presign_seconds,
        )

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key_for(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.root}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def _tmp_key(self) -> str:
        return f"{self.root}{_TMP}/{uuid.uuid4().hex}"

    # --- reading -------------------------------------------------------------

    def _head(self, sha256: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise
        return head

    def exists(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise FileNotFoundError(f"no blob {sha256} in {self.url}")
        return int(head["ContentLength"])

    def open(self, sha256: str) -> BinaryIO:
        size = self.size(sha256)
        raw = _RangedReader(self.client, self.bucket, self.key_for(sha256), size)
        return io.BufferedReader(raw, buffer_size=HASH_CHUNK)  # type: ignore[return-value]

    def download_url(self, sha256: str) -> str | None:
        """A presigned GET for the blob (the hub redirects downloads there); None: stream it."""
        if self.presign_seconds <= 0:
            return None
        url: str = self._signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key_for(sha256)},
            ExpiresIn=self.presign_seconds,
        )
        return url

    # --- writing -------------------------------------------------------------

    def put_stream(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> str:
        if expected_sha256 is not None:
            check_sha256(expected_sha256)
        return self._upload(chunks, expected_sha256)

    def put_file(self, path: Path, sha256: str) -> None:
        path = Path(path)
        with open(path, "rb") as fh:
            self._upload(read_chunks(fh), sha256)
        path.unlink(missing_ok=True)

    def _upload(self, chunks: Iterable[bytes], expected: str | None) -> str:
        digest = hashlib.sha256()
        buffer = bytearray()
        multipart: _Multipart | None = None
        key = self.key_for(expected) if expected is not None else self._tmp_key()
        try:
            for chunk in chunks:
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= PART_BYTES:
                    if multipart is None:
                        multipart = _Multipart(self.client, self.bucket, key, expected)
                    multipart.add(bytes(buffer[:PART_BYTES]))
                    del buffer[:PART_BYTES]
            sha256 = digest.hexdigest()
            if expected is not None and sha256 != expected:
                raise IntegrityError(f"blob has sha256 {sha256}, expected {expected}")
            final = self.key_for(sha256)
            if multipart is None:
                # Small: one PUT straight to the final key, checked by the store as well.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=final,
                    Body=bytes(buffer),
                    ChecksumSHA256=_b64(digest.digest()),
                    Metadata={_META_KEY: sha256},
                )
                return sha256
            if buffer:
                multipart.add(bytes(buffer))
            multipart.complete()
            multipart = None
            if key != final:
                self._promote(key, final, sha256)
            return sha256
        finally:
            if multipart is not None:
                multipart.abort()

    def _promote(self, tmp_key: str, final: str, sha256: str) -> None:
        """Server-side copy of a verified temporary object to its digest key, then drop the temporary."""
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": tmp_key},
                self.bucket,
                final,
                ExtraArgs={"Metadata": {_META_KEY: sha256}, "MetadataDirective": "REPLACE"},
            )
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=tmp_key)

    # --- maintenance (modhub admin gc, backups) ------------------------------

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob (temporary upload objects excluded)."""
        for obj in self._list(self.root):
            parts = obj["Key"][len(self.root) :].split("/")
            if len(parts) != 3 or not is_sha256(parts[2]):
                continue
            if (parts[0], parts[1]) != (parts[2][:2], parts[2][2:4]):
                continue
            yield StoredBlob(sha256=parts[2], size=int(obj["Size"]), modified=obj["LastModified"].timestamp())

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))

    def iter_incomplete(self) -> Iterator[IncompleteWrite]:
        """Temporary objects and multipart uploads that were never completed (a crash mid-upload)."""
        for obj in self._list(f"{self.root}{_TMP}/"):
            yield IncompleteWrite(
                key=f"object:{obj['Key']}", size=int(obj["Size"]), modified=obj["LastModified"].timestamp()
            )
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root):
            for upload in page.get("Uploads", []):
                yield IncompleteWrite(
                    key=f"upload:{upload['UploadId']}:{upload['Key']}",
                    size=0,
                    modified=upload["Initiated"].timestamp(),
                )

    def delete_incomplete(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        root = self.root
        if kind == "object" and rest.startswith(f"{root}{_TMP}/"):
            self.client.delete_object(Bucket=self.bucket, Key=rest)
            return
        upload_id, _, object_key = rest.partition(":")
        if kind == "upload" and upload_id and object_key.startswith(root):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=object_key, UploadId=upload_id)
            except Exception as exc:
                if not _is_missing(exc):
                    raise
            return
        raise ValueError(f"not a leftover of {self.url}: {key!r}")


class _Multipart:
    """One multipart upload; each part's SHA-256 is checked by the store."""

    def __init__(self, client: Any, bucket: str, key: str, sha256: str | None) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        extra = {"Metadata": {_META_KEY: sha256}} if sha256 is not None else {}
        created = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256", **extra)
        self.upload_id: str = created["UploadId"]
        self.parts: list[dict[str, Any]] = []

    def add(self, data: bytes) -> None:
        number = len(self.parts) + 1
        checksum = _b64(hashlib.sha256(data).digest())
        answer = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="SHA256",
            ChecksumSHA256=checksum,
        )
        self.parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})

    def complete(self) -> None:
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        # The original error matters more; one left open is what `modhub admin gc` aborts.
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


class _RangedReader(io.RawIOBase):
    """A seekable reader over one object: a ranged GET streams from the current offset."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._pos = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._pos:
            self._drop()
            self._pos = position
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        if self._body is None:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._pos}-")
            self._body = answer["Body"]
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop()
        super().close()


def _client(endpoint: str | None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    config = Config(
        # Path-style (host/bucket/key) works with every S3-compatible store; AWS picks its own.
        s3={"addressing_style": "path" if endpoint else "auto"},
        # SigV4 (presigned URLs last at most 7 days); SigV2 is deprecated everywhere.
        signature_version="s3v4",
        retries={"max_attempts": 5, "mode": "standard"},
    )
    return session.client(
        "s3", endpoint_url=endpoint, region_name=session.region_name or "us-east-1", config=config
    )
