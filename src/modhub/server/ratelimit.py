"""Rate limiting of failed authentication, per client address, in memory.

``FailureLimiter(limit, window)``: once a client has failed ``limit`` times
within the last ``window`` seconds, ``check`` refuses it with 429 and a
``Retry-After`` header saying when its oldest counted failure ages out,
before its token is even looked up (so guessing secrets costs the guesser
time, not the hub a database query). Successful requests are not counted.
The state lives in one server process: with several workers each keeps its
own, which bounds a guesser to ``workers x limit`` tries per window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from modhub.server.errors import TooManyRequests

# Clients tracked at once; the least recently failing ones are dropped beyond this.
_MAX_CLIENTS = 100_000


class FailureLimiter:
    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def check(self, client: str) -> None:
        """TooManyRequests (429) if ``client`` failed ``limit`` times within the window."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return
            retry = max(1, math.ceil(times[0] + self.window - now))
        raise TooManyRequests(
            f"too many failed authentication attempts from this address; wait {retry} s "
            "and try again with a valid token",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
        )

    def failed(self, client: str) -> None:
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                if len(self._failures) >= _MAX_CLIENTS:
                    self._failures.pop(next(iter(self._failures)))
                times = self._failures[client] = deque()
            times.append(now)
            if len(times) > self.limit:
                times.popleft()
