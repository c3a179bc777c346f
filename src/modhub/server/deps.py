"""What routes need, bundled once per app: settings, database, blob storage."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session

from modhub.server.config import ServerSettings
from modhub.server.db import Database
from modhub.server.ratelimit import FailureLimiter
from modhub.server.services.downloads import DownloadCounter
from modhub.server.services.web_queries import SuggestionIndex
from modhub.server.storage import BlobStorage


@dataclass(frozen=True)
class Hub:
    settings: ServerSettings
    db: Database
    storage: BlobStorage
    # Failed authentications per client address (429 beyond the limit); create_hub configures it.
    auth_limiter: FailureLimiter = field(default_factory=lambda: FailureLimiter(20, 60.0))
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


def get_session(request: Request) -> Iterator[Session]:
    """A read session for one request (dependency)."""
    with get_hub(request).db.session() as session:
        yield session
