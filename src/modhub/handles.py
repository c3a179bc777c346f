"""Handles: ``publisher/name/version``, its URL form, or a local directory.

The one parser of each kind, shared by the client, the API and the website:
``validate_name`` (publisher and module names), ``parse_version`` (version
numbers), ``parse_handle`` (whole handles), ``hub_key`` / ``same_hub`` (which
hub a URL belongs to). ``RESERVED_PUBLISHERS`` is the one list of names the
hub's own paths use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from modhub.errors import InvalidHandle

# The end of the text, in every regex dialect: Python's "$" also matches before a final newline
# (so re.search(r"^a$", "a\n") matches, as Python's JSON Schema validators would), ECMA-262's not.
END_OF_TEXT = r"(?![\s\S])"
# A publisher or module name, whole: 1-64 of [a-z0-9._-], a letter or digit at each end, no "--"
# or "..". The same in Python and in ECMA-262 (JSON Schema; the API's spec carries it).
NAME_PATTERN = rf"^(?!.*(?:--|\.\.))[a-z0-9](?:[a-z0-9._-]{{0,62}}[a-z0-9])?{END_OF_TEXT}"
NAME_RE = re.compile(NAME_PATTERN, re.ASCII)
# Versions are stored as 32-bit integers (portable); larger numbers are refused.
MAX_VERSION = 2**31 - 1
# ASCII digits only: str.isdigit() also accepts '²' and '٣', which int() refuses or reads.
VERSION_PATTERN = r"[1-9][0-9]{0,9}"
_VERSION_RE = re.compile(VERSION_PATTERN, re.ASCII)
_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)
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
# A publisher name: a name that is not one of RESERVED_PUBLISHERS (what validate_name checks for
# publishers, as one pattern for the API's spec).
PUBLISHER_PATTERN = (
    "^(?!(?:"
    + "|".join(re.escape(n) for n in sorted(RESERVED_PUBLISHERS))
    + f"){END_OF_TEXT})"
    + NAME_PATTERN[1:]
)


def validate_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a valid publisher or module name, else raise InvalidHandle."""
    if not NAME_RE.fullmatch(name):
        raise InvalidHandle(
            f"invalid {what} {name!r}: use 1-64 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit, without '--' or '..' (e.g. 'efficientnet-lite0')"
        )
    if what.startswith("publisher") and name in RESERVED_PUBLISHERS:
        raise InvalidHandle(f"{name!r} is reserved for the hub's own pages; choose another publisher name")
    return name


def is_version(text: str) -> bool:
    """Whether ``text`` is a version number as ``parse_version`` accepts it."""
    return _VERSION_RE.fullmatch(text) is not None and int(text) <= MAX_VERSION


def parse_version(text: str | int, *, handle: str | None = None) -> int:
    """A version number: a positive integer up to MAX_VERSION, in ASCII digits, without leading zeros.

    Raises InvalidHandle saying the form (callers map it to their 404/422/400).
    """
    if isinstance(text, int) and not isinstance(text, bool):
        number = text
    elif isinstance(text, str) and is_version(text):
        number = int(text)
    else:
        number = 0
    if not 1 <= number <= MAX_VERSION:
        shown = text[:30] if isinstance(text, str) else text
        where = f" in handle {handle!r}" if handle else ""
        raise InvalidHandle(
            f"invalid version {shown!r}{where}: versions are positive integers (1, 2, ...) "
            f"up to {MAX_VERSION}",
            handle=handle,
        )
    return number


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


def hub_key(url: str) -> str:
    """The canonical form of a hub's base URL: scheme, host and port (default ports dropped), path prefix.

    ``HTTP://Hub.Example:80/prefix/`` and ``http://hub.example/prefix`` are the same hub.
    Raises ValueError for a port that is not a number.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port is not None and parts.port != default else ""
    return f"{scheme}://{host}{port}{parts.path.rstrip('/')}"


def same_hub(url: str, endpoint: str) -> bool:
    """Whether ``url`` is the hub at ``endpoint`` or a URL under it (the hub's token may go there).

    Compared on ``hub_key``: case of scheme and host, default ports and trailing
    slashes do not matter; a query or fragment on ``url`` is ignored. A URL that
    does not parse is not the hub.
    """
    try:
        key, base = hub_key(url), hub_key(endpoint)
    except ValueError:
        return False
    return key == base or key.startswith(base + "/")


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
        cut = 3 if segments and _DIGITS_RE.fullmatch(segments[-1]) else 2
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
        version = parse_version(segments[2], handle=text)
    return Handle(publisher, name, version, endpoint)


def _validated(value: str, what: str, text: str) -> str:
    try:
        return validate_name(value, what)
    except InvalidHandle as exc:
        raise InvalidHandle(f"{exc} (in handle {text!r})", handle=text) from None
