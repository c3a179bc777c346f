"""``modhub serve`` keeps idle keep-alive connections open for MODHUB_SERVER_KEEP_ALIVE_SECONDS.

uvicorn's own default (5 s) equals httpx's pool expiry: a client reusing a connection
just as the hub closes it got a ReadError under load.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from modhub.server.config import ServerSettings
from tests.server.conftest import API, LiveHub


def _request(sock: socket.socket) -> bytes:
    sock.sendall(f"GET {API}/health HTTP/1.1\r\nHost: hub\r\n\r\n".encode())
    return sock.recv(65536)


def _open_after(live: LiveHub, idle: float) -> bool:
    """Whether a connection the hub answered on is still open after ``idle`` seconds."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
        assert _request(sock).startswith(b"HTTP/1.1 200")
        time.sleep(idle)
        sock.settimeout(0.2)
        try:
            return sock.recv(1) != b""  # b"": the hub closed it
        except TimeoutError:
            return True  # nothing to read and not closed


def test_idle_connections_live_as_long_as_the_setting_says(tmp_path: Path) -> None:
    assert ServerSettings().keep_alive_seconds > 60  # longer than httpx's 5 s and load balancers' 60 s
    live = LiveHub(tmp_path / "data", env={"MODHUB_SERVER_KEEP_ALIVE_SECONDS": "2"})
    live.start()
    try:
        assert _open_after(live, 0.5)
        assert not _open_after(live, 3.0)
    finally:
        live.stop()
