"""Client settings, read once from ``MODHUB_*`` environment variables.

``Settings.from_env()`` builds a frozen object that is passed down; nothing in
modhub reads the environment at import time. Only the public entry points (the
CLI commands, ``hub.load``/``Layer``/``KerasLayer``/``resolve``/``export``,
``publish``, ``predict``, ``retrain_*``, ``build_zoo``, ``submit_*``) call it when
given no settings; everything below them takes the object they pass.

``Settings.show_progress`` is the one rule for "draw a progress bar?".
"""

from __future__ import annotations

import os
import sys
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
    # Bytes a model.onnx may materialise from its constants while it loads (the floor of the
    # bound in docs/security.md: max(2 x its weights, this), at most 4 GiB unless this is higher).
    onnx_max_materialise_bytes: int = Field(default=64 << 20, ge=0)

    @classmethod
    def from_env(cls) -> Settings:
        return cls()

    def show_progress(self, explicit: bool | None = None, *, small: bool = False) -> bool:
        """Whether to draw a progress bar: the rule every progress bar of modhub follows.

        ``explicit`` (a caller's ``progress=`` or ``--progress/--no-progress``) wins;
        then ``MODHUB_PROGRESS``; unset, a bar is drawn only when stderr is a terminal
        (a log file or a pipe would fill with redrawn lines) and the work is not
        ``small`` (a bar that flashes for a tiny download is noise).
        """
        if explicit is not None:
            return explicit
        if self.progress is not None:
            return self.progress
        return not small and _stderr_is_tty()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False
