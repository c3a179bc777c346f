"""Serve a blob over HTTP: ETag (its sha256), If-None-Match (304), Range (206/416), streamed;
or, when the blob store offers a direct URL (S3: presigned), a 307 redirect there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from modhub.errors import IntegrityError
from modhub.server.errors import NotFound, RangeNotSatisfiable, Unavailable
from modhub.server.storage import BlobStorage

_CHUNK = 1 << 16
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Blobs and published versions never change.
_CACHE_CONTROL = "public, max-age=31536000, immutable"


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single ``bytes=`` range; None to send the whole file.

    Other units and multi-range requests are ignored (the whole file is sent,
    as RFC 9110 allows); a malformed or unsatisfiable byte range is 416.
    """
    header = header.strip()
    if not header.lower().startswith("bytes=") or "," in header:
        return None
    match = _RANGE_RE.match(header.replace(" ", "").lower())
    if match is None or match.group(1) == match.group(2) == "":
        raise _unsatisfiable(header, size)
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if start >= size or (last != "" and int(last) < start):
        raise _unsatisfiable(header, size)
    return start, end


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"cannot serve Range {header!r} of a {size}-byte file; "
        f"ask for bytes=START-END within 0-{max(size - 1, 0)}",
        headers={"Content-Range": f"bytes */{size}"},
    )


def content_disposition(path: str) -> str:
    """``attachment`` with the file's base name: an ASCII fallback plus RFC 6266 ``filename*``.

    Header values must be Latin-1; any name (Unicode, quotes, control characters)
    fits this way, and browsers and curl use the UTF-8 ``filename*``.
    """
    base = path.rsplit("/", 1)[-1]
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in base) or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='', errors='replace')}"


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def _iter_file(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        fh.close()


def blob_response(
    request: Request, storage: BlobStorage, sha256: str, size: int, filename: str, *, redirect: bool = True
) -> Response:
    """The blob, streamed; or a 307 to the blob store's direct URL when it has one and ``redirect``."""
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": _CACHE_CONTROL,
        "Content-Disposition": content_disposition(filename),
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _etag_matches(if_none_match, etag):
        return Response(
            status_code=304, headers={k: v for k, v in headers.items() if k != "Content-Disposition"}
        )
    start, end, status = 0, size - 1, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header is not None and (if_range is None or if_range.strip() == etag):
        parsed = parse_range(range_header, size)
        if parsed is not None:
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    direct = storage.download_url(sha256) if redirect else None
    if direct is not None:
        # The object store serves the bytes (and the Range, which the client sends again there).
        # The presigned URL expires: the redirect itself must not be cached.
        return Response(
            status_code=307,
            headers={"Location": direct, "ETag": etag, "Cache-Control": "no-store"},
        )
    try:
        fh = storage.open(sha256)
    except FileNotFoundError:
        raise NotFound(
            f"the hub lost the bytes of {filename} (blob {sha256}); tell the hub's operator",
            code="blob_not_found",
        ) from None
    except IntegrityError:
        raise Unavailable(
            f"the hub's stored copy of {filename} (blob {sha256}) is damaged and was set aside; "
            "tell the hub's operator (publishing the same file again repairs it)",
            code="blob_damaged",
        ) from None
    return StreamingResponse(
        _iter_file(fh, start, length),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
