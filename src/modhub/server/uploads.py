"""Receive a publish upload: stream multipart parts to disk while hashing, within limits.

The body is parsed as it arrives (python-multipart's push parser), so nothing
is held in memory and a file over the size limit is refused (413) as soon as
it crosses the limit, not after it was received. Parts:

* ``manifest``: the modhub.json bytes (at most ``max_manifest_bytes``);
* ``files``: one part per file, its path in the part's ``filename``;
* ``version``: optional form field, the version number to publish;
* ``signature`` and ``signing_key``: optional, the module's ``modhub.sig``
  (model-signing bundle) and the PEM public key that made it.

Each file lands in ``<staging>/module/<path>`` after its path passed
``check_relative_path``, and is fsynced when its part ends (the blob store
renames it into place later: a crash must never leave a short file under a
digest name). The staging directory is the caller's to delete.

Parsing, hashing and writing run in a worker thread, about a megabyte of the
body at a time, so a large upload never blocks the event loop that serves
everyone else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from modhub.format._files import MAX_SIGNATURE_BYTES
from modhub.format.atomic import fsync_file
from modhub.format.manifest import MANIFEST_NAME, check_relative_path
from modhub.server.config import ServerSettings
from modhub.server.errors import BadRequest, TooLarge

_FIELD_LIMIT = 64
# Limits of the optional signature parts (a model-signing bundle; a PEM public key).
_PART_LIMITS = {"signature": MAX_SIGNATURE_BYTES, "signing_key": 16 << 10}
# Bytes of the body handed to the worker thread at once.
_BATCH = 1 << 20


@dataclass
class StagedFile:
    path: str
    size: int
    sha256: str
    # The staged file's fstat when its last byte was written and hashed: what the hash vouches for.
    stat: os.stat_result | None = None


@dataclass
class StagedUpload:
    # The module directory as uploaded (manifest written there by the publisher service).
    module_dir: Path
    manifest: bytes = b""
    version: str | None = None
    # The form field 'private' as sent ("true"/"false"); None: keep the module's visibility.
    private: str | None = None
    # modhub.sig and the public key that signed it (both or neither; checked by the publisher service).
    signature: bytes | None = None
    signing_key: bytes | None = None
    files: dict[str, StagedFile] = field(default_factory=dict)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


class _Part:
    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.name = ""
        self.filename: str | None = None
        self.data = bytearray()
        self.fh: BinaryIO | None = None
        self.hasher = hashlib.sha256()
        self.size = 0


class _Receiver:
    def __init__(self, settings: ServerSettings, staging: Path) -> None:
        self.settings = settings
        self.upload = StagedUpload(module_dir=staging / "module")
        self.upload.module_dir.mkdir(parents=True)
        self.part = _Part()
        self.header_name = b""
        self.header_value = b""
        self.total = 0
        self.saw_manifest = False

    # python-multipart callbacks -------------------------------------------------
    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.part.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get(b"content-disposition", b""))
        self.part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if self.part.name == "files":
            raw = options.get(b"filename")
            if raw is None:
                raise BadRequest("every 'files' part needs a filename: the file's path in the module")
            self._open_file(raw.decode("utf-8", "replace"))
        elif self.part.name not in ("manifest", "version", "private", *_PART_LIMITS):
            raise BadRequest(
                f"unexpected form part {self.part.name!r}: send 'manifest', 'files' (one per file) "
                "and optionally 'version', 'private', 'signature' and 'signing_key'"
            )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        part = self.part
        if part.fh is None:
            if part.name == "manifest":
                limit = self.settings.max_manifest_bytes
            else:
                limit = _PART_LIMITS.get(part.name, _FIELD_LIMIT)
            if len(part.data) + len(chunk) > limit:
                raise TooLarge(f"the {part.name} part is over the limit of {limit} bytes")
            part.data.extend(chunk)
            return
        part.size += len(chunk)
        self.total += len(chunk)
        if part.size > self.settings.max_file_bytes:
            raise TooLarge(
                f"{part.filename} is over this hub's limit of {self.settings.max_file_bytes} bytes per "
                "file; make the module smaller or ask the operator to raise MODHUB_SERVER_MAX_FILE_BYTES"
            )
        if self.total > self.settings.max_version_bytes:
            raise TooLarge(
                f"the module is over this hub's limit of {self.settings.max_version_bytes} bytes per "
                "version; make it smaller or ask the operator to raise MODHUB_SERVER_MAX_VERSION_BYTES"
            )
        part.hasher.update(chunk)
        part.fh.write(chunk)

    def on_part_end(self) -> None:
        part = self.part
        if part.fh is not None:
            fsync_file(part.fh)
            st = os.fstat(part.fh.fileno())
            part.fh.close()
            part.fh = None
            assert part.filename is not None
            self.upload.files[part.filename] = StagedFile(
                part.filename, part.size, part.hasher.hexdigest(), st
            )
        elif part.name == "manifest":
            if self.saw_manifest:
                raise BadRequest("send exactly one 'manifest' part")
            self.saw_manifest = True
            self.upload.manifest = bytes(part.data)
        elif part.name == "version":
            self.upload.version = part.data.decode("utf-8", "replace").strip() or None
        elif part.name == "private":
            self.upload.private = part.data.decode("utf-8", "replace").strip().lower() or None
        elif part.name in _PART_LIMITS:
            if getattr(self.upload, part.name) is not None:
                raise BadRequest(f"send at most one {part.name!r} part")
            setattr(self.upload, part.name, bytes(part.data))

    # -----------------------------------------------------------------------------
    def _open_file(self, path: str) -> None:
        try:
            check_relative_path(path)
        except ValueError as exc:
            raise BadRequest(f"{exc}; file names are paths inside the module", code="unsafe_path") from None
        if path == MANIFEST_NAME:
            raise BadRequest("send modhub.json as the 'manifest' part, not as a file", code="unsafe_path")
        if path in self.upload.files:
            raise BadRequest(f"file {path!r} was sent twice", code="duplicate_file")
        if len(self.upload.files) >= self.settings.max_files:
            raise TooLarge(f"a version may hold at most {self.settings.max_files} files")
        root = self.upload.module_dir
        target = root / path
        # check_relative_path refused '..' and absolute paths; resolve() makes sure anyway.
        if not target.resolve().is_relative_to(root.resolve()):
            raise BadRequest(f"unsafe file path {path!r}", code="unsafe_path")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.part.fh = open(target, "xb")  # noqa: SIM115 - closed in on_part_end or close()
        except OSError as exc:
            raise BadRequest(
                f"cannot store file {path!r} ({exc.strerror}): a path is both a file and a directory, "
                "or a name is too long",
                code="unsafe_path",
            ) from None
        self.part.filename = path

    def close(self) -> None:
        if self.part.fh is not None:
            self.part.fh.close()
            self.part.fh = None


async def receive_upload(
    content_type: str, stream: AsyncIterator[bytes], settings: ServerSettings, staging: Path
) -> StagedUpload:
    """Parse a multipart publish body into ``staging`` (which must not exist yet)."""
    ctype, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise BadRequest("publish with a multipart/form-data body (parts: manifest, files, version)")
    receiver = _Receiver(settings, staging)
    callbacks = {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        batch: list[bytes] = []
        pending = 0
        async for chunk in stream:
            batch.append(chunk)
            pending += len(chunk)
            if pending >= _BATCH:
                await run_in_threadpool(parser.write, b"".join(batch))
                batch, pending = [], 0
        if batch:
            await run_in_threadpool(parser.write, b"".join(batch))
        await run_in_threadpool(parser.finalize)
    except FormParserError as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from None
    finally:
        receiver.close()
    if not receiver.saw_manifest:
        raise BadRequest("the upload has no 'manifest' part (the module's modhub.json)")
    return receiver.upload
