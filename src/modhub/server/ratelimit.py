"""Rate limiting of failed authentication, per client address, kept in the database.

``FailureLimiter(db, limit, window)``: once a client has failed ``limit`` times
within the last ``window`` seconds, ``check`` refuses it with 429 and a
``Retry-After`` header saying when the oldest of those failures ages out,
before its token is even looked up (so guessing secrets costs the guesser
time). Successful requests are not counted.

The failures live in the ``auth_failures`` table, one row per failure, so every
server process (``modhub serve --workers N``, or several machines on one
PostgreSQL) sees the same count: N workers do not give a guesser N times the
tries. What it costs: ``check`` is one indexed SELECT of at most ``limit`` rows in
the request's own session; a failure is one INSERT in its own short transaction
(committed although the request fails). Requests already in flight when the
limit is reached may still fail and be counted (at most one per concurrent
request); none of them gets past ``check`` afterwards. Rows older than the window
are deleted by ``prune`` (the server calls it periodically).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from modhub.server.db import Database
from modhub.server.errors import TooManyRequests
from modhub.server.models import AuthFailure

# Longest client key stored (an IPv6 address with zone id fits; anything longer is cut).
MAX_CLIENT = 100


def _key(client: str) -> str:
    return client[:MAX_CLIENT]


class FailureLimiter:
    """Failed authentications per client address, shared through the database."""

    def __init__(
        self, db: Database, limit: int, window: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.limit = limit
        self.window = window
        # Wall-clock seconds: every process (and machine) on the database reads the same clock.
        self._clock = clock

    def check(self, session: Session, client: str) -> None:
        """TooManyRequests (429) if ``client`` failed ``limit`` times within the window."""
        now = self._clock()
        recent = session.scalars(
            select(AuthFailure.at)
            .where(AuthFailure.client == _key(client), AuthFailure.at > now - self.window)
            .order_by(AuthFailure.at.desc())
            .limit(self.limit)
        ).all()
        if len(recent) < self.limit:
            return
        # The limit-th most recent failure is the one whose ageing out lets the client try again.
        retry = max(1, math.ceil(recent[-1] + self.window - now))
        raise TooManyRequests(
            f"too many failed authentication attempts from this address; wait {retry} s "
            "and try again with a valid token",
            code="rate_limited",
            headers={"Retry-After": str(retry)},
        )

    def failed(self, client: str) -> None:
        """Count one failure of ``client`` (its own transaction: the request's is rolled back).

        The caller must not hold the database's write lock (SQLite): the routes that write
        authenticate before they open their write session.
        """
        with self.db.write_session() as session:
            session.add(AuthFailure(client=_key(client), at=self._clock()))
            session.commit()

    def prune(self) -> int:
        """Delete failures older than the window; return how many."""
        with self.db.write_session() as session:
            result = session.execute(
                delete(AuthFailure)
                .where(AuthFailure.at <= self._clock() - self.window)
                .execution_options(synchronize_session=False)
            )
            session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
