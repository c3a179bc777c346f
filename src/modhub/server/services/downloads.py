"""Download counting: a modhub client fetching a version's manifest counts as one download.

So does a whole fetch (:func:`is_whole_fetch`) of what another client's download
starts with: tensorflow_hub's archive, huggingface_hub's ``modhub.json``.

Counting must not cost a write transaction per GET (on SQLite that is the
database's one write lock, taken by every reader that carries the client
header). ``DownloadCounter`` adds counts up in memory and ``flush`` writes
them in one transaction: the server flushes every
``MODHUB_SERVER_DOWNLOAD_FLUSH_SECONDS`` and when it stops, so a count shows
up within that delay, and a crash loses at most that many seconds of counts.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.requests import Request

from modhub.server.db import Database
from modhub.server.errors import NotFound
from modhub.server.models import Module, Publisher

log = logging.getLogger(__name__)


def is_whole_fetch(request: Request) -> bool:
    """A GET of the whole file: a download. A HEAD, or the rest of an interrupted one (Range), is not."""
    return request.method == "GET" and "range" not in request.headers


def record_download(session: Session, publisher: str, name: str, count: int = 1) -> None:
    """Add ``count`` to the module's download count (one atomic UPDATE). The caller commits.

    Not a read: the route that counted the download already checked that its reader may see
    the module (private ones included), so the module is looked up by name alone here.
    """
    module_id = session.scalar(
        select(Module.id).join(Module.publisher).where(Publisher.name == publisher, Module.name == name)
    )
    if module_id is None:
        raise NotFound(f"no module {publisher}/{name}", code="module_not_found")
    session.execute(
        update(Module)
        .where(Module.id == module_id)
        .values(downloads=Module.downloads + count)
        .execution_options(synchronize_session=False)
    )


class DownloadCounter:
    """Download counts not yet written, per module (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[tuple[str, str]] = Counter()

    def add(self, publisher: str, name: str) -> None:
        with self._lock:
            self._pending[(publisher, name)] += 1

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(self._pending.values())

    def flush(self, db: Database) -> int:
        """Write every pending count in one transaction; return how many downloads were written."""
        with self._lock:
            batch, self._pending = self._pending, Counter()
        if not batch:
            return 0
        try:
            with db.write_session() as session:
                for (publisher, name), count in sorted(batch.items()):
                    try:
                        record_download(session, publisher, name, count)
                    except NotFound:
                        continue
                session.commit()
        except Exception:
            # Keep the counts for the next flush rather than lose them (e.g. the database is busy).
            with self._lock:
                self._pending.update(batch)
            raise
        return sum(batch.values())
