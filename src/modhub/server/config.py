"""Server settings, read once from ``MODHUB_SERVER_*`` environment variables.

``ServerSettings()`` (or ``ServerSettings(data_dir=...)``: explicit values win
over the environment) is built by the caller and passed to ``create_app``;
nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1 << 30
MiB = 1 << 20


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "modhub" / "server"


class ServerSettings(BaseSettings):
    """Hub server configuration. Every field maps to ``MODHUB_SERVER_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MODHUB_SERVER_", frozen=True, extra="ignore")

    # Where the embedded database, the blobs and upload staging live.
    data_dir: Path = Field(default_factory=_default_data_dir)
    # SQLAlchemy URL; None: SQLite file <data_dir>/modhub.db (PostgreSQL works too).
    database_url: str | None = None
    # Blob storage directory; None: <data_dir>/blobs.
    blob_dir: Path | None = None
    # Address `modhub serve` listens on.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Largest single file of a module (bytes); bigger uploads get 413.
    max_file_bytes: int = Field(default=4 * GiB, gt=0)
    # Largest module version, all files together (bytes).
    max_version_bytes: int = Field(default=8 * GiB, gt=0)
    # Largest modhub.json (bytes).
    max_manifest_bytes: int = Field(default=1 * MiB, gt=0)
    # Most files one version may hold.
    max_files: int = Field(default=1000, gt=0)
    # Seconds SQLite waits for a lock held by another writer before failing.
    sqlite_busy_timeout: float = Field(default=30.0, gt=0)
    # Failed authentications one client address may make per window before it gets 429.
    auth_failure_limit: int = Field(default=20, ge=1)
    # The window of auth_failure_limit, in seconds.
    auth_failure_window: float = Field(default=60.0, gt=0)
    # Download counts are written in one transaction at most this often (seconds).
    download_flush_seconds: float = Field(default=1.0, gt=0)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'modhub.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def staging_dir(self) -> Path:
        """Uploads are staged here, on the same filesystem as the blobs so that moving them is a rename."""
        return self.data_dir / "tmp"
