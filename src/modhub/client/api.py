"""A thin, typed wrapper over the hub's JSON API (docs/http-api.md).

``raise_for_status`` is the one place where the hub's error answers
(``{"error": {"code", "message"}}`` + HTTP status) become modhub exceptions,
by the error code, from the table both sides share (``modhub.errors.ERROR_CODES``);
every client of the hub (resolve, search, publish) goes through it.

The ``httpx.Client`` is created by :func:`open_http_client` and handed in, so
tests can pass an ``httpx.MockTransport`` instead of a network.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field

from modhub.errors import ERROR_CODES, HubHTTPError, IntegrityError, ModuleNotFound, RateLimited
from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, parse_manifest
from modhub.handles import Handle, same_hub

__all__ = [
    "API_PREFIX",
    "HubClient",
    "ModuleDetail",
    "ModuleSummary",
    "SearchPage",
    "VersionDetail",
    "VersionInfo",
    "client_headers",
    "open_http_client",
    "raise_for_status",
    "request",
]

API_PREFIX = "/api/v1"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
# modhub.json and modhub.sig are read into memory: reading stops past this (the sha256 then fails).
_SMALL_FILE_LIMIT = 16 << 20


def _modhub_version() -> str:
    try:
        return metadata.version("modhub")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def client_headers() -> dict[str, str]:
    """Headers every request from this client carries."""
    version = _modhub_version()
    return {"User-Agent": f"modhub/{version}", "X-Modhub-Client": version}


def open_http_client(
    *,
    timeout: float = 60.0,
    token: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with modhub's headers; ``token`` adds ``Authorization: Bearer``."""
    headers = client_headers()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        follow_redirects=True,
    )


_ErrorClass = type[HubHTTPError | ModuleNotFound]


def _status_errors() -> dict[int, _ErrorClass]:
    """The exception for a status when the answer names no known code (a proxy's 404 page, a
    newer hub's new code): the one every code of that status maps to, if they agree."""
    by_status: dict[int, set[_ErrorClass]] = {}
    for entry in ERROR_CODES.values():
        if entry.status is not None:
            by_status.setdefault(entry.status, set()).add(entry.error)
    return {status: errors.pop() for status, errors in by_status.items() if len(errors) == 1}


_STATUS_ERRORS = _status_errors()

_HINTS: dict[int, str] = {
    401: "Set MODHUB_TOKEN to a valid token (an admin creates one with `modhub admin create-token`).",
    403: "Use a token scoped to this publisher.",
    404: "Check the handle with `modhub search`, and that MODHUB_ENDPOINT points at the right hub.",
}


def raise_for_status(response: httpx.Response, *, handle: str | None = None) -> None:
    """Raise the modhub error matching a failed hub answer; do nothing on success.

    The hub's error ``code`` picks the exception (``ERROR_CODES``: ``contract_error`` →
    InvalidModule, ``version_not_found`` → ModuleNotFound, ...); an answer without a
    known code is mapped by its status (404 → ModuleNotFound, 401 → AuthenticationError,
    413 → TooLarge, ...), anything else → HubHTTPError. The ``code`` and the HTTP
    ``status`` are kept as attributes (``ModuleNotFound`` gets them too).
    """
    if response.is_success:
        return
    status = response.status_code
    try:
        url: str | None = str(response.request.url)
    except RuntimeError:  # a Response built by hand, without a request
        url = None
    with contextlib.suppress(httpx.StreamError):
        response.read()  # streamed answers: the error body is small
    code, message = _error_body(response)
    what = f"hub answered {status}" + (f" ({code})" if code else "") + (f" for {url}" if url else "")
    if message and code:
        # The hub's own message already says what to do.
        text = f"{message} [{what}]"
    else:
        text = " ".join(part for part in (message, f"[{what}]", _HINTS.get(status, "")) if part)
    known = ERROR_CODES.get(code) if code is not None else None
    cls = known.error if known is not None else _STATUS_ERRORS.get(status, HubHTTPError)
    if issubclass(cls, RateLimited):
        raise cls(text, status=status, code=code, handle=handle, url=url, retry_after=_retry_after(response))
    raise cls(text, status=status, code=code, handle=handle, url=url)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from ``Retry-After`` (the hub sends a number; an HTTP date is not worth parsing here)."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """``(code, message)`` from ``{"error": {"code", "message"}}``, tolerating other bodies."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        try:
            return None, response.text.strip()[:500]
        except httpx.ResponseNotRead:
            return None, ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code is not None else None), str(message or "")
    if isinstance(body, dict) and "detail" in body:  # a framework default error
        return None, str(body["detail"])[:500]
    return None, ""


# --- answers ---------------------------------------------------------------


class _Answer(BaseModel):
    # The hub may add fields; an older client must keep working.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ModuleSummary(_Answer):
    """One module in a search answer."""

    publisher: str
    name: str
    handle: str
    latest_version: int | None = None
    task: str = ""
    formats: list[str] = Field(default_factory=list)
    framework: str = ""
    license: str = ""
    title: str = ""
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    downloads: int = 0
    # Only tokens that may read for the publisher see a private module.
    private: bool = False


class SearchPage(_Answer):
    items: list[ModuleSummary]
    total: int
    page: int = 1
    per_page: int = 20


class VersionInfo(_Answer):
    version: int
    yanked: bool = False
    created_at: str | None = None
    # Total bytes of the version's files.
    size: int | None = None


class ModuleDetail(ModuleSummary):
    versions: list[VersionInfo] = Field(default_factory=list)


class VersionDetail(_Answer):
    publisher: str
    name: str
    version: int
    yanked: bool = False
    created_at: str | None = None
    # The manifest as the hub returned it (validated into ``manifest``).
    manifest_json: dict[str, Any] = Field(alias="manifest")
    # sha256 of the exact modhub.json bytes the publisher uploaded (served as a file too).
    manifest_sha256: str | None = None
    card: str = ""
    # {"fingerprint", "sha256", "size"} when the version was published signed (its modhub.sig).
    signature: dict[str, Any] | None = None

    @property
    def manifest(self) -> Manifest:
        return parse_manifest(json.dumps(self.manifest_json))

    @property
    def handle(self) -> Handle:
        return Handle(self.publisher, self.name, self.version)


# --- client ----------------------------------------------------------------


class HubClient:
    """Typed calls to one hub. ``endpoint`` is the hub's base URL (without ``/api/v1``)."""

    def __init__(self, http: httpx.Client, endpoint: str) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.api = self.endpoint + API_PREFIX

    def _get(self, url: str, *, handle: str | None = None, params: dict[str, Any] | None = None) -> Any:
        response = request(self.http, "GET", url, handle=handle, params=params)
        raise_for_status(response, handle=handle)
        return response.json()

    def search(
        self,
        query: str = "",
        *,
        task: str | None = None,
        publisher: str | None = None,
        format: str | None = None,
        license: str | None = None,
        sort: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> SearchPage:
        params = {
            "q": query,
            "task": task,
            "publisher": publisher,
            "format": format,
            "license": license,
            "sort": sort,
            "page": page,
            "per_page": per_page,
        }
        kept = {k: v for k, v in params.items() if v not in (None, "")}
        return SearchPage.model_validate(self._get(f"{self.api}/modules", params=kept))

    def module(self, publisher: str, name: str) -> ModuleDetail:
        data = self._get(f"{self.api}/modules/{publisher}/{name}", handle=f"{publisher}/{name}")
        return ModuleDetail.model_validate(data)

    def version(self, handle: Handle) -> VersionDetail:
        """Version detail; ``handle.version`` None asks for the latest non-yanked version."""
        version = "latest" if handle.version is None else str(handle.version)
        url = f"{self.api}/modules/{handle.publisher}/{handle.name}/versions/{version}"
        return VersionDetail.model_validate(self._get(url, handle=str(handle)))

    def manifest_bytes(self, detail: VersionDetail) -> bytes | None:
        """The exact published ``modhub.json``, checked against ``manifest_sha256``; None if not offered."""
        if detail.manifest_sha256 is None:
            return None
        return self._small_file(detail, MANIFEST_NAME, detail.manifest_sha256)

    def signature_bytes(self, detail: VersionDetail) -> bytes | None:
        """The version's ``modhub.sig``, checked against the sha256 the hub announced; None if unsigned."""
        sha256 = (detail.signature or {}).get("sha256")
        if not isinstance(sha256, str):
            return None
        return self._small_file(detail, SIGNATURE_NAME, sha256)

    def _small_file(self, detail: VersionDetail, path: str, sha256: str) -> bytes:
        url = self.file_url(detail.handle, path)
        try:
            with self.open_following(url) as response:
                raise_for_status(response, handle=str(detail.handle))
                data = bytearray()
                for chunk in response.iter_bytes():
                    data.extend(chunk)
                    if len(data) > _SMALL_FILE_LIMIT:
                        break
        except httpx.TransportError as exc:
            raise _unreachable(exc, url, str(detail.handle)) from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(
                f"{path} of {detail.handle} from {url} does not match the sha256 the hub "
                "announced for it: the hub's copy is damaged or was altered. Nothing was cached; "
                "tell the hub's operator.",
                handle=str(detail.handle),
                url=url,
            )
        return bytes(data)

    def file_url(self, handle: Handle, path: str) -> str:
        if handle.version is None:
            raise ValueError("file_url needs a concrete version")
        quoted = quote(path, safe="/")
        return f"{self.api}/modules/{handle.publisher}/{handle.name}/versions/{handle.version}/files/{quoted}"

    def blob_url(self, sha256: str) -> str:
        return f"{self.api}/blobs/{sha256}"

    @contextlib.contextmanager
    def stream(self, url: str, *, offset: int = 0, handle: str | None = None) -> Iterator[httpx.Response]:
        """Stream ``url``; ``offset`` > 0 asks for ``Range: bytes=offset-``.

        The answer is yielded unchecked for 200/206/416 (the caller decides how
        to resume); other failures raise through :func:`raise_for_status`.
        Redirects (a hub on S3 answers 307 to a presigned URL) are followed by
        :meth:`open_following`, with the Range.
        """
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        try:
            with self.open_following(url, headers=headers) as response:
                if response.status_code not in (200, 206, 416):
                    raise_for_status(response, handle=handle)
                yield response
        except httpx.TransportError as exc:
            raise _unreachable(exc, url, handle) from exc

    @contextlib.contextmanager
    def open_following(self, url: str, *, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """GET ``url`` as a stream, following redirects by hand so that the hub's token goes to
        the hub only: a request to any other origin (an object store's presigned URL carries
        its own signature) is sent without ``Authorization``. ``headers`` (Range) go along."""
        target = httpx.URL(url)
        for _ in range(_MAX_REDIRECTS + 1):
            request = self.http.build_request("GET", target, headers=headers)
            if not same_hub(str(target), self.endpoint):
                request.headers.pop("Authorization", None)
            response = self.http.send(request, stream=True, follow_redirects=False)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                try:
                    yield response
                finally:
                    response.close()
                return
            response.close()
            target = target.join(location)
        raise HubHTTPError(f"more than {_MAX_REDIRECTS} redirects fetching {url}", url=url)


def request(
    http: httpx.Client, method: str, url: str, *, handle: str | None = None, **kwargs: Any
) -> httpx.Response:
    """``http.request`` that turns network failures into a HubHTTPError saying what to check."""
    try:
        return http.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise _unreachable(exc, url, handle) from exc


def _unreachable(exc: httpx.TransportError, url: str, handle: str | None) -> HubHTTPError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        message = (
            f"cannot reach the hub at {url}: {exc}. Start it (`modhub serve`), set MODHUB_ENDPOINT "
            "to the right URL, or set MODHUB_OFFLINE=1 to use only cached modules."
        )
    else:
        message = f"the connection to the hub failed while fetching {url}: {exc}. Try again."
    return HubHTTPError(message, handle=handle, url=url)
