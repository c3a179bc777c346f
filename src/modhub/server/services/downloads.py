"""Download counting: a modhub client fetching a version's manifest counts as one download."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from modhub.server.models import Module, Token
from modhub.server.services.queries import find_module


def record_download(session: Session, publisher: str, name: str, *, reader: Token | None = None) -> None:
    """Add one to the module's download count (one atomic UPDATE, no lost counts). The caller commits."""
    module_id = find_module(session, publisher, name, reader=reader).id
    session.execute(
        update(Module)
        .where(Module.id == module_id)
        .values(downloads=Module.downloads + 1)
        .execution_options(synchronize_session=False)
    )
