"""A real client process on a throttled, byte-counting network (race and resume proof tests).

Run as ``python tests/client/_slow_client.py HANDLE BYTES_PER_SECOND [KILL_AT]``: resolves
HANDLE with ``Settings.from_env()`` through the real HTTP transport, slowed
down so that a test can overlap two downloads or kill one half-way, and prints
one JSON line: the directory, the file bytes received, and timings. With KILL_AT, the
process SIGKILLs itself once that many file bytes have reached the client.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator

import httpx

from modhub.client.resolve import Resolver
from modhub.settings import Settings


class _Counted(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, owner: CountingTransport) -> None:
        self.inner, self.owner = inner, owner

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            chunk = self.owner.at_most(chunk)
            self.owner.file_bytes += len(chunk)
            if self.owner.rate:
                time.sleep(len(chunk) / self.owner.rate)
            yield chunk
        self.owner.at_most(b"")

    def close(self) -> None:
        self.inner.close()


class CountingTransport(httpx.HTTPTransport):
    """The real transport; counts (and optionally throttles) the bytes of module files.

    ``modhub.json`` is fetched by every resolve that assembles a version, so it is not counted.
    """

    def __init__(self, rate: float = 0.0, kill_at: int | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.kill_at = kill_at
        self.file_bytes = 0
        self.file_answers: list[tuple[str | None, int]] = []  # (Range sent, status)

    def at_most(self, chunk: bytes) -> bytes:
        """``chunk`` cut at ``kill_at``; once that many file bytes went through, SIGKILL this process.

        The kill comes when the client asks for the next chunk (or the end of the file), so
        every byte before ``kill_at`` was handed to the client and nothing after it.
        """
        if self.kill_at is None:
            return chunk
        if self.file_bytes >= self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return chunk[: self.kill_at - self.file_bytes]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "/files/" not in request.url.path or request.url.path.endswith("/modhub.json"):
            return response
        self.file_answers.append((request.headers.get("range"), response.status_code))
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self),
            extensions=response.extensions,
        )


def main() -> None:
    handle, rate = sys.argv[1], float(sys.argv[2])
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else None
    transport = CountingTransport(rate, kill_at)
    started = time.time()
    path = Resolver(Settings.from_env(), transport=transport).resolve(handle)
    print(
        json.dumps(
            {
                "path": str(path),
                "file_bytes": transport.file_bytes,
                "started": started,
                "finished": time.time(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
