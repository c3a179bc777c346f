"""What routes need, bundled once per app: settings, database, blob storage."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from modhub.server.config import ServerSettings
from modhub.server.db import Database
from modhub.server.models import Token
from modhub.server.ratelimit import FailureLimiter
from modhub.server.services.downloads import DownloadCounter
from modhub.server.services.tokens import authenticate_optional
from modhub.server.services.web_queries import SuggestionIndex
from modhub.server.storage import BlobStorage


@dataclass(frozen=True)
class Hub:
    settings: ServerSettings
    db: Database
    storage: BlobStorage
    # Failed authentications per client address (429 beyond the limit), kept in ``db``.
    auth_limiter: FailureLimiter
    # Download counts not yet written (flushed in batches by the app, see services.downloads).
    downloads: DownloadCounter = field(default_factory=DownloadCounter)
    # Handles in memory for the 404 page's closest names.
    suggestions: SuggestionIndex = field(default_factory=SuggestionIndex)

    def new_staging(self) -> Path:
        """A fresh, private directory for one upload (deleted by the caller)."""
        root = self.settings.staging_dir
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"upload-{uuid.uuid4().hex}"
        path.mkdir(mode=0o700)
        return path

    def clean_staging(self) -> None:
        """Remove uploads left behind by a crashed server (called on start)."""
        root = self.settings.staging_dir
        if root.is_dir():
            for path in root.glob("upload-*"):
                shutil.rmtree(path, ignore_errors=True)


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_reader(request: Request) -> Token | None:
    """The token a read request carries, None for an anonymous one (dependency).

    Reading never needs a token, but private modules are visible only to one
    that may read for their publisher (services.visibility). A token that is
    sent must be valid (401 otherwise; repeated failures from one address 429).
    """
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    hub = get_hub(request)
    client = request.client.host if request.client is not None else ""
    with hub.db.session() as session:
        return authenticate_optional(session, authorization, limiter=hub.auth_limiter, client=client)


ReaderDep = Annotated[Token | None, Depends(get_reader)]


def get_session(request: Request) -> Iterator[Session]:
    """A read session for one request (dependency)."""
    with get_hub(request).db.session() as session:
        yield session
