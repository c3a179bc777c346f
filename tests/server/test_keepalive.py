"""``modhub serve`` keeps idle keep-alive connections open for MODHUB_SERVER_KEEP_ALIVE_SECONDS.

uvicorn's own default (5 s) equals httpx's pool expiry: a client reusing a connection
just as the hub closes it got a ReadError under load.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable

from modhub.server.config import ServerSettings
from tests.harness import API, LiveHub


def _seconds_until_closed(live: LiveHub, limit: float) -> float:
    """How long the hub keeps a connection it answered on open while the client sends nothing."""
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    try:
        conn.request("GET", f"{API}/health")
        response = conn.getresponse()
        assert response.status == 200 and response.read()  # the whole answer, body included
        answered = time.monotonic()
        assert conn.sock is not None
        conn.sock.settimeout(limit)
        try:
            assert conn.sock.recv(1) == b""  # b"": the hub closed it
        except TimeoutError:
            return limit
        return time.monotonic() - answered
    finally:
        conn.close()


def test_idle_connections_live_as_long_as_the_setting_says(start_hub: Callable[..., LiveHub]) -> None:
    assert ServerSettings().keep_alive_seconds > 60  # longer than httpx's 5 s and load balancers' 60 s
    # 8 s, not uvicorn's own 5 s: the setting reaches the server.
    live = start_hub(env={"MODHUB_SERVER_KEEP_ALIVE_SECONDS": "8"})
    assert 7.5 <= _seconds_until_closed(live, limit=60) < 60
