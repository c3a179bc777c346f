"""Handles: ``publisher/name/version``, its URL form, or a local directory.

Names are validated here, identically for client and server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from modhub.errors import InvalidHandle

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$")
# Characters a look-alike check folds together: separators, and digits that pass for letters.
_FOLD = str.maketrans({"_": "-", ".": "-", "0": "o", "1": "l", "i": "l", "5": "s"})


# First path segments the hub's own pages and API use; no publisher may take them.
RESERVED_PUBLISHERS = frozenset(
    {
        "api",
        "static",
        "docs",
        "redoc",
        "openapi.json",
        "health",
        "healthz",
        "favicon.ico",
        "robots.txt",
        "search",
        "login",
        "admin",
    }
)


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid publisher or module name, else raise InvalidHandle."""
    if not NAME_RE.match(name) or "--" in name or ".." in name:
        raise InvalidHandle(
            f"invalid {what} {name!r}: use 1-64 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (e.g. 'efficientnet-lite0')"
        )
    if what.startswith("publisher") and name in RESERVED_PUBLISHERS:
        raise InvalidHandle(f"{name!r} is reserved for the hub's own pages; choose another publisher name")
    return name


def fold_name(name: str) -> str:
    """Canonical form used to refuse look-alike names (``my_model`` vs ``my-model`` vs ``my.model``)."""
    folded = name.lower().translate(_FOLD)
    return re.sub(r"-+", "-", folded)


@dataclass(frozen=True)
class Handle:
    """A parsed hub handle. ``version`` is None for "latest"."""

    publisher: str
    name: str
    version: int | None = None
    # Base URL when the handle was given as a URL, else None (use the configured endpoint).
    endpoint: str | None = None

    @property
    def repo(self) -> str:
        return f"{self.publisher}/{self.name}"

    def __str__(self) -> str:
        return self.repo if self.version is None else f"{self.repo}/{self.version}"

    def with_version(self, version: int) -> Handle:
        return Handle(self.publisher, self.name, version, self.endpoint)


def is_local(handle: str | os.PathLike[str]) -> bool:
    """A handle names a local module if it is a path object or an existing directory."""
    if isinstance(handle, os.PathLike):
        return True
    if handle.startswith(("http://", "https://")):
        return False
    return handle.startswith(("/", "./", "../", "~")) or Path(handle).is_dir()


def parse_handle(text: str) -> Handle:
    """Parse ``publisher/name[/version]`` or ``http(s)://host[/prefix]/publisher/name[/version]``."""
    endpoint = None
    path = text
    if text.startswith(("http://", "https://")):
        parts = urlsplit(text)
        if parts.query or parts.fragment:
            raise InvalidHandle(f"handle URL {text!r} must not carry a query or fragment", handle=text)
        segments = [s for s in parts.path.split("/") if s]
        # The last two or three segments are the handle; anything before is a path prefix.
        cut = 3 if segments and segments[-1].isdigit() else 2
        if len(segments) < cut:
            raise InvalidHandle(
                f"handle URL {text!r} has no publisher/name: expected e.g. "
                "http://127.0.0.1:8000/modhub/minilm-l6/1",
                handle=text,
            )
        prefix = "/".join(segments[:-cut])
        endpoint = f"{parts.scheme}://{parts.netloc}" + (f"/{prefix}" if prefix else "")
        path = "/".join(segments[-cut:])
    segments = path.strip("/").split("/")
    if len(segments) not in (2, 3):
        raise InvalidHandle(
            f"invalid handle {text!r}: expected publisher/name/version (e.g. modhub/minilm-l6/1), "
            "a URL of that form, or a local directory",
            handle=text,
        )
    publisher = _validated(segments[0], "publisher", text)
    name = _validated(segments[1], "module name", text)
    version = None
    if len(segments) == 3:
        if not segments[2].isdigit() or int(segments[2]) < 1 or segments[2].startswith("0"):
            raise InvalidHandle(
                f"invalid version {segments[2]!r} in handle {text!r}: versions are positive integers",
                handle=text,
            )
        version = int(segments[2])
    return Handle(publisher, name, version, endpoint)


def _validated(value: str, what: str, text: str) -> str:
    try:
        return validate_name(value, what)
    except InvalidHandle as exc:
        raise InvalidHandle(f"{exc} (in handle {text!r})", handle=text) from None
