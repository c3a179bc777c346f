"""The errors modhub raises, and the error codes the hub answers with.

Every error is a ``HubError`` and also an instance of the closest standard
exception, so ``except LookupError`` or ``except OSError`` keep working::

    HubError
     ├── ModuleNotFound          (LookupError)   handle/version/file not on hub or in cache; 404
     ├── InvalidHandle           (ValueError)    a handle or name that does not parse
     ├── ManifestError           (ValueError)    modhub.json missing, malformed, or wrong format_version
     ├── ContractError           (ValueError)    a module that breaks its task's contract
     ├── ExportError             (ValueError)    a model that cannot be exported as asked
     ├── InputError              (ValueError)    a call with inputs that break the module's signature
     ├── UnsafeModuleError       (ValueError)    a graph that could run code when loaded
     ├── SigningError            (ValueError)    a key or signature that cannot be used
     ├── BackupError             (ValueError)    a hub backup that cannot be written or restored
     ├── IntegrityError          (OSError)       a file whose size/sha256 differs from the manifest
     ├── OfflineError            (OSError)       MODHUB_OFFLINE=1 and the handle is not cached
     ├── HubHTTPError            (OSError)       the hub answered with an error (``code``, ``status``)
     │    ├── InvalidRequest     (ValueError)    400: malformed parameters, name or upload
     │    ├── AuthenticationError                401: no or bad token
     │    ├── PermissionDenied                   403: token not scoped to the publisher
     │    ├── Conflict                           409: version exists, name taken, look-alike name
     │    ├── TooLarge                           413: over one of the hub's size limits
     │    ├── InvalidModule      (ValueError)    422: the hub refused the module (``code`` says why)
     │    └── RateLimited                        429: too many failed logins (``retry_after``)
     ├── ZooError                (RuntimeError)  a starter module cannot be built (missing package)
     ├── MissingExtra            (ImportError)   a feature whose extra is not installed (``extra``)
     └── ClusterError            (OSError)       a Ray cluster unreachable, or of other versions
          └── JobFailed                          a cluster job ended in failure (``job_id``, ``last_lines``)

Each error carries the context it has (``handle``, ``path``, ``url``) as
attributes, and its message says what to do about it.

``ERROR_CODES`` is the one table of the hub's error codes: the server answers
each with its status (``modhub.server.errors``), the client raises its
exception (``modhub.client.api.raise_for_status``). It lives here, at the
bottom, because both sides import it and the client never imports the server.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "ERROR_CODES",
    "EXTRA_OF_PACKAGE",
    "AuthenticationError",
    "BackupError",
    "ClusterError",
    "Conflict",
    "ContractError",
    "ErrorCode",
    "ExportError",
    "HubError",
    "HubHTTPError",
    "InputError",
    "IntegrityError",
    "InvalidHandle",
    "InvalidModule",
    "InvalidRequest",
    "JobFailed",
    "ManifestError",
    "MissingExtra",
    "ModuleNotFound",
    "OfflineError",
    "PermissionDenied",
    "RateLimited",
    "SigningError",
    "TooLarge",
    "UnsafeModuleError",
    "ZooError",
    "missing_extra",
    "not_installed",
    "require",
]


class HubError(Exception):
    """Root of every error modhub raises on purpose.

    ``status`` and ``code``: the HTTP status and the hub's error code, for an
    error the hub answered with (``HubHTTPError``, and ``ModuleNotFound`` from a 404); else None.
    """

    def __init__(
        self,
        message: str,
        *,
        handle: str | None = None,
        path: str | Path | None = None,
        url: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.handle = handle
        self.path = Path(path) if path is not None else None
        self.url = url
        self.status = status
        self.code = code


class ModuleNotFound(HubError, LookupError):
    """A handle, version or file that does not exist.

    From the hub (404) it carries ``status`` and ``code`` as a ``HubHTTPError`` does;
    it is not one, so that ``except LookupError`` catches a missing module wherever it is missing.
    """


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


class BackupError(HubError, ValueError):
    """A hub backup that cannot be written or restored; the message says why and what to do."""


class IntegrityError(HubError, OSError):
    """A file whose size or sha256 does not match the manifest."""


class OfflineError(HubError, OSError):
    """``MODHUB_OFFLINE=1`` and what was asked for is not in the cache."""


class HubHTTPError(HubError, OSError):
    """The hub answered with an error. ``status`` is the HTTP status, ``code`` the hub's error code."""


class AuthenticationError(HubHTTPError):
    """401: no token, or a token the hub does not know (revoked, mistyped)."""


class PermissionDenied(HubHTTPError):
    """403: the token is valid but not scoped to this publisher."""


class InvalidRequest(HubHTTPError, ValueError):
    """400: parameters, a name or an upload the hub cannot accept (``code`` says which)."""


class Conflict(HubHTTPError):
    """409: the version exists already, or the name is taken or looks like a taken one."""


class TooLarge(HubHTTPError):
    """413: a file, the version, the manifest or the number of files is over the hub's limit."""


class InvalidModule(HubHTTPError, ValueError):
    """422: the hub refused the module itself; ``code`` says why (``invalid_manifest``,
    ``contract_error``, ``unsafe_module``, ``integrity_error``, ...) and the message what to fix."""


class RateLimited(HubHTTPError):
    """429: too many failed authentications from this address; wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


class ZooError(HubError, RuntimeError):
    """A starter module that cannot be built here, usually because a package is missing."""


class MissingExtra(HubError, ImportError):  # type: ignore[misc]  # path: a Path, as on every HubError
    """A feature whose packages are not installed; ``extra`` names the pip extra that brings them.

    ``pip install modhub`` is the client (onnxruntime, no torch, no server); the rest comes with
    extras (docs/install.md). It is an ``ImportError`` too, so ``except ImportError`` still works.
    """

    def __init__(self, message: str, *, extra: str, module: str | None = None) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module
        # ImportError's own attribute: the top-level package that is missing.
        self.name = module


# The one table of which extra installs which top-level package: the message of every
# MissingExtra, and docs/install.md, come from here (pyproject.toml's extras list the versions).
EXTRA_OF_PACKAGE: Mapping[str, str] = MappingProxyType(
    {
        "torch": "torch",
        "safetensors": "torch",
        "keras": "keras",
        "fastapi": "server",
        "uvicorn": "server",
        "sqlalchemy": "server",
        "alembic": "server",
        "jinja2": "server",
        "markdown_it": "server",
        "nh3": "server",
        "multipart": "server",
        "rapidfuzz": "server",
        "tensorboard": "server",
        "soundfile": "audio",
        "soxr": "audio",
        "psycopg": "postgres",
        "boto3": "s3",
        # onnxruntime comes with `pip install modhub`; the onnx extra (exporting) names it too.
        "onnxruntime": "onnx",
        "onnx": "onnx",
        "onnxscript": "onnx",
        "PIL": "retrain",
        "matplotlib": "retrain",
        "pyarrow": "zoo",
        "ray": "cluster",
        "model_signing": "signing",
        "OpenSSL": "signing",
    }
)


def missing_extra(exc: ImportError, needed_for: str) -> MissingExtra | None:
    """The ``MissingExtra`` that explains ``exc`` (a package of an extra is not installed), or None.

    ``needed_for`` names the feature, e.g. ``"hub.Layer"``: "hub.Layer needs torch, which is not
    installed: pip install 'modhub[torch]'". None when the missing module belongs to no extra
    (a genuine bug or a broken install: let that ImportError through).
    """
    if isinstance(exc, MissingExtra):
        return exc
    # Only "no package of that name": an installed package that fails to import is another problem.
    top = exc.name if isinstance(exc, ModuleNotFoundError) else None
    if top is None or top not in EXTRA_OF_PACKAGE:
        return None
    return not_installed(top, needed_for)


def not_installed(package: str, needed_for: str) -> MissingExtra:
    """The one-line error for ``package`` (in EXTRA_OF_PACKAGE) missing where ``needed_for`` needs it."""
    extra = EXTRA_OF_PACKAGE[package]
    return MissingExtra(
        f"{needed_for} needs {package}, which is not installed: pip install 'modhub[{extra}]'",
        extra=extra,
        module=package,
    )


def require(module: str, needed_for: str) -> Any:
    """``import module``, or a ``MissingExtra`` saying which extra to install (see EXTRA_OF_PACKAGE)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = missing_extra(exc, needed_for)
        if error is None:
            raise
        raise error from None


class ClusterError(HubError, OSError):
    """A Ray cluster that cannot be reached, or whose Ray/modhub versions differ from the client's."""


class JobFailed(ClusterError):
    """A cluster job that failed or was stopped. ``last_lines`` holds the end of its log."""

    def __init__(self, message: str, *, job_id: str, last_lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.last_lines = list(last_lines or [])


# --- the hub's error codes -------------------------------------------------


@dataclass(frozen=True)
class ErrorCode:
    """One error code the hub answers with, as ``{"error": {"code", "message"}}``."""

    # The HTTP status the hub sends it with; None: the status of the HTTP error it wraps.
    status: int | None
    # The exception the client raises for it.
    error: type[HubHTTPError | ModuleNotFound]
    # What it means (docs, the OpenAPI description).
    meaning: str


def _codes(
    status: int | None, error: type[HubHTTPError | ModuleNotFound], **meanings: str
) -> dict[str, ErrorCode]:
    return {code: ErrorCode(status, error, meaning) for code, meaning in meanings.items()}


ERROR_CODES: Mapping[str, ErrorCode] = MappingProxyType(
    {
        **_codes(
            400,
            InvalidRequest,
            invalid_request="malformed parameters or multipart body",
            invalid_name="a publisher or module name that breaks the naming rules",
            unsafe_path="an uploaded file name with '..', an absolute path, ...; or modhub.json as a file",
            duplicate_file="the same file path uploaded twice",
            format_not_supported="a tf-hub-format other than 'compressed', a tfjs-format other than 'file'",
        ),
        **_codes(
            401,
            AuthenticationError,
            auth_required="no token sent (with WWW-Authenticate: Bearer)",
            invalid_token="an unknown or revoked token",
            token_expired="the token's expires_at has passed",
        ),
        **_codes(403, PermissionDenied, forbidden="the token is not scoped to this publisher, or not admin"),
        **_codes(
            404,
            ModuleNotFound,
            not_found="no such API endpoint",
            module_not_found="no such module (or a private one the token may not read)",
            version_not_found="no such version, or every version is yanked",
            file_not_found="no such file in the version",
            publisher_not_found="no such publisher",
            token_not_found="no such token",
            blob_not_found="no such blob, or the hub lost its bytes",
            format_not_available="the version has no SavedModel for tensorflow_hub (no tfjs/ for TF.js)",
        ),
        **_codes(405, HubHTTPError, method_not_allowed="the method is not allowed on this path"),
        **_codes(
            409,
            Conflict,
            conflict="another publish of the same module got there first; retry",
            version_exists="the version is published already (versions never change)",
            lookalike_name="the name folds to an existing module's name",
        ),
        **_codes(413, TooLarge, too_large="a file, the version, the manifest or the file count is too big"),
        **_codes(416, HubHTTPError, range_not_satisfiable="the Range cannot be served (with Content-Range)"),
        **_codes(
            422,
            InvalidModule,
            invalid_module="the module itself is invalid",
            invalid_manifest="modhub.json is malformed or breaks the format",
            missing_file="a file the manifest lists was not uploaded",
            unexpected_file="an uploaded file the manifest does not list",
            integrity_error="a file's size or sha256 differs from the manifest",
            contract_error="the module breaks its task's contract",
            unsafe_module="the graph safety validator refused a graph",
            formats_disagree="the module's formats (graph.pt2, model.onnx) disagree on probe inputs",
            formats_unchecked="the module's formats could not be run side by side in the hub's time limit",
            invalid_signature="the signature does not cover exactly the published files (400: half sent)",
        ),
        **_codes(429, RateLimited, rate_limited="too many failed logins from one address (see Retry-After)"),
        **_codes(
            503,
            HubHTTPError,
            unavailable="the hub cannot do this now",
            safety_unavailable="the graph safety validator is not installed on the hub",
            blob_damaged="the hub's stored copy of a file is damaged and was set aside",
        ),
        **_codes(None, HubHTTPError, http_error="another HTTP error of the web framework, with its status"),
    }
)
