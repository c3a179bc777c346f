"""The errors modhub raises.

Every error is a ``HubError`` and also an instance of the closest standard
exception, so ``except LookupError`` or ``except OSError`` keep working::

    HubError
     ├── ModuleNotFound          (LookupError)   handle/version/file not on hub or in cache
     ├── InvalidHandle           (ValueError)    a handle or name that does not parse
     ├── ManifestError           (ValueError)    modhub.json missing, malformed, or wrong format_version
     ├── ContractError           (ValueError)    a module that breaks its task's contract
     ├── ExportError             (ValueError)    a model that cannot be exported as asked
     ├── InputError              (ValueError)    a call with inputs that break the module's signature
     ├── UnsafeModuleError       (ValueError)    a graph that could run code when loaded
 ├── SigningError            (ValueError)    a key or signature that cannot be used
     ├── IntegrityError          (OSError)       a file whose size/sha256 differs from the manifest
     ├── OfflineError            (OSError)       MODHUB_OFFLINE=1 and the handle is not cached
     ├── HubHTTPError            (OSError)       the hub answered with an error (``code``, ``status``)
     │    ├── AuthenticationError              401: no or bad token
     │    ├── PermissionDenied                 403: token not scoped to the publisher
     │    └── Conflict                         409: version exists, name taken, look-alike name
     ├── ZooError                (RuntimeError)  a starter module cannot be built (missing package)
     └── ClusterError            (OSError)       a Ray cluster unreachable, or of other versions
          └── JobFailed                          a cluster job ended in failure (``job_id``, ``last_lines``)

Each error carries the context it has (``handle``, ``path``, ``url``) as
attributes, and its message says what to do about it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AuthenticationError",
    "ClusterError",
    "Conflict",
    "ContractError",
    "ExportError",
    "HubError",
    "HubHTTPError",
    "InputError",
    "IntegrityError",
    "InvalidHandle",
    "JobFailed",
    "ManifestError",
    "ModuleNotFound",
    "OfflineError",
    "PermissionDenied",
    "SigningError",
    "UnsafeModuleError",
    "ZooError",
]


class HubError(Exception):
    """Root of every error modhub raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        handle: str | None = None,
        path: str | Path | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.handle = handle
        self.path = Path(path) if path is not None else None
        self.url = url


class ModuleNotFound(HubError, LookupError):
    """A handle, version or file that does not exist."""


class InvalidHandle(HubError, ValueError):
    """A handle or name that does not parse or breaks the naming rules."""


class ManifestError(HubError, ValueError):
    """A missing or malformed ``modhub.json``."""


class ContractError(HubError, ValueError):
    """A module whose signatures or assets break its task's contract."""


class ExportError(HubError, ValueError):
    """A model that cannot be exported as asked."""


class InputError(HubError, ValueError):
    """Inputs to a module call that do not match its signature (dtype, shape, type)."""


class UnsafeModuleError(HubError, ValueError):
    """A graph archive that could run code or read outside the module when loaded."""


class SigningError(HubError, ValueError):
    """A key or signature that cannot be used (missing, wrong type, unreadable)."""


class IntegrityError(HubError, OSError):
    """A file whose size or sha256 does not match the manifest."""


class OfflineError(HubError, OSError):
    """``MODHUB_OFFLINE=1`` and what was asked for is not in the cache."""


class HubHTTPError(HubError, OSError):
    """The hub answered with an error. ``status`` is the HTTP status, ``code`` the hub's error code."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        handle: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, handle=handle, url=url)
        self.status = status
        self.code = code


class AuthenticationError(HubHTTPError):
    """401: no token, or a token the hub does not know (revoked, mistyped)."""


class PermissionDenied(HubHTTPError):
    """403: the token is valid but not scoped to this publisher."""


class Conflict(HubHTTPError):
    """409: the version exists already, or the name is taken or looks like a taken one."""


class ZooError(HubError, RuntimeError):
    """A starter module that cannot be built here, usually because a package is missing."""


class ClusterError(HubError, OSError):
    """A Ray cluster that cannot be reached, or whose Ray/modhub versions differ from the client's."""


class JobFailed(ClusterError):
    """A cluster job that failed or was stopped. ``last_lines`` holds the end of its log."""

    def __init__(self, message: str, *, job_id: str, last_lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.last_lines = list(last_lines or [])
