"""Server settings, read once from ``MODHUB_SERVER_*`` environment variables.

``ServerSettings()`` (or ``ServerSettings(data_dir=...)``: explicit values win
over the environment) is built by the caller and passed to ``create_app``;
nothing reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
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
    # Blob storage as a URL: s3://BUCKET/PREFIX (S3-compatible object storage, credentials and
    # region from the standard AWS_* variables) or file:///ABS/PATH; None: the local blob_dir.
    blob_url: str | None = None
    # S3 endpoint URL for a non-AWS object store (SeaweedFS, MinIO, Ceph...); None: AWS.
    s3_endpoint: str | None = None
    # Endpoint put into presigned download URLs, when clients reach the object store under
    # another address than the hub does (e.g. https://blobs.example.org); None: s3_endpoint.
    s3_public_endpoint: str | None = None
    # Downloads from S3 answer 307 to a presigned URL valid this many seconds; 0: the hub
    # streams the bytes itself (for object stores clients cannot reach).
    s3_presign_seconds: int = Field(default=3600, ge=0, le=7 * 24 * 3600)
    # Server processes `modhub serve` runs (each with its own connections; one database and
    # blob store). More than 1 needs PostgreSQL or SQLite on a local disk.
    workers: int = Field(default=1, ge=1, le=64)
    # Reverse proxies whose X-Forwarded-Proto/-For headers `modhub serve` trusts (comma-separated
    # addresses, or * for any); the scheme of snippet URLs comes from them.
    forwarded_allow_ips: str = "127.0.0.1"
    # Seconds `modhub serve` keeps an idle keep-alive connection open. Longer than clients and
    # proxies keep theirs (httpx 5 s, AWS load balancers 60 s), so the hub never closes a
    # connection at the moment a client sends its next request on it (a ReadError there).
    keep_alive_seconds: int = Field(default=65, ge=1, le=3600)
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
    # A node_modules directory holding the browser runtime of the module page's "try it" panel
    # (onnxruntime-web, @huggingface/tokenizers, as package-lock.json pins them: `make web`).
    # None: the node_modules of the source checkout the hub runs from, when there is one; without
    # the files the page hides the panel and says how to add them (modhub.server.web.vendor).
    web_runtime_dir: Path | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'modhub.db').resolve()}"

    @field_validator("blob_url")
    @classmethod
    def _check_blob_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parsed = urlsplit(value)
        if parsed.scheme == "s3" and parsed.netloc and not parsed.query:
            return value
        if parsed.scheme == "file" and parsed.path.startswith("/") and parsed.netloc in ("", "localhost"):
            return value
        raise ValueError(
            f"MODHUB_SERVER_BLOB_URL={value!r} is not a blob store URL: use s3://BUCKET/PREFIX "
            "(object storage) or file:///ABSOLUTE/PATH (a local directory)"
        )

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def staging_dir(self) -> Path:
        """Uploads are staged here, on the same filesystem as the blobs so that moving them is a rename."""
        return self.data_dir / "tmp"
