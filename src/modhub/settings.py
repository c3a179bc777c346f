"""Client settings, read once from ``MODHUB_*`` environment variables.

``Settings.from_env()`` builds a frozen object that is passed down; nothing in
modhub reads the environment at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modhub"


class Settings(BaseSettings):
    """Client configuration. Every field maps to ``MODHUB_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="MODHUB_", frozen=True, extra="ignore")

    # Base URL of the hub that resolves handles such as "publisher/name/1".
    endpoint: str = DEFAULT_ENDPOINT
    # Where downloaded modules live (blobs by sha256 + one directory per version).
    cache: Path = Field(default_factory=_default_cache)
    # 1/true: make no network request at all; use only the cache.
    offline: bool = False
    # API token for publishing (set by `modhub login` or given here).
    token: str | None = None
    # Show progress bars (None: only when stderr is a terminal).
    progress: bool | None = None
    # Seconds to wait for the hub before giving up on a request.
    timeout: float = 60.0
    # Python of a separate venv with TensorFlow; `modhub zoo build` then adds SavedModel/TFLite.
    tf_python: Path | None = None
    # A public key file or a directory of them (*.pub, *.pem): when set, hub.load/hub.resolve
    # accept only modules signed (modhub sign) by one of these keys.
    trusted_keys: Path | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls()
