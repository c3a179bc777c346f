"""Errors the API answers with, as JSON ``{"error": {"code": "...", "message": "..."}}``.

Services raise ``ApiError`` subclasses; ``install_handlers`` turns them (and
FastAPI's own validation and routing errors) into that JSON under
``/api/``. The Python client maps the codes back to exceptions in one place
(``modhub.client.api.raise_for_status``).

Codes (status):
    invalid_request (400)   malformed parameters or multipart body
    invalid_name (400)      a publisher/module name that breaks the naming rules
    unsafe_path (400)       an uploaded file name with '..', an absolute path, ...
    duplicate_file (400)    the same file path uploaded twice
    auth_required (401)     no token sent
    invalid_token (401)     unknown or revoked token
    token_expired (401)     the token's expires_at has passed
    forbidden (403)         token not scoped to this publisher / not admin
    not_found (404), module_not_found, version_not_found, file_not_found, publisher_not_found,
    token_not_found, blob_not_found (404)
    version_exists (409)    the version is published already (versions never change)
    lookalike_name (409)    the name folds to an existing module's name
    too_large (413)         a file, the version or the manifest is over the server's limit
    range_not_satisfiable (416)
    rate_limited (429)      too many failed authentications from this address (Retry-After)
    invalid_manifest, integrity_error, missing_file, unexpected_file, contract_error,
    unsafe_module (422)     the module itself is invalid
    safety_unavailable (503) the graph safety validator is not installed on the server
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response


class ApiError(Exception):
    status: int = 400
    code: str = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    status, code = 401, "auth_required"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class RangeNotSatisfiable(ApiError):
    status, code = 416, "range_not_satisfiable"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class InvalidModule(ApiError):
    status, code = 422, "invalid_module"


class Unavailable(ApiError):
    status, code = 503, "unavailable"


class ErrorDetail(BaseModel):
    # Machine-readable, one of the codes listed in this module's docstring.
    code: str
    # What went wrong and what to do about it.
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer under /api/ (the OpenAPI spec documents it on every operation)."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "Malformed parameters or body (invalid_request, invalid_name, unsafe_path, duplicate_file)",
    401: "No token, or one the hub does not accept (auth_required, invalid_token, token_expired)",
    403: "The token's scope or publishers do not allow this (forbidden)",
    404: "No such module, version, file, publisher, token or blob",
    405: "The method is not allowed on this path (method_not_allowed)",
    409: "The version exists already, or the name looks like an existing one",
    413: "Over one of the hub's size limits (too_large)",
    416: "The Range cannot be served (range_not_satisfiable)",
    422: "The module itself is invalid (invalid_manifest, integrity_error, contract_error, ...)",
    429: "Too many failed authentications from this address (rate_limited); see Retry-After",
    503: "The hub cannot do this now (safety_unavailable, blob_damaged)",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    416: {"Content-Range": {"schema": {"type": "string"}, "description": "bytes */SIZE"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for error statuses, each with the ErrorBody schema."""
    result: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        result[status] = entry
    return result


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(exc: ApiError) -> JSONResponse:
    headers = dict(exc.headers)
    if exc.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    """JSON errors for the API; other paths (the website) keep Starlette's default handling."""
    from fastapi.exception_handlers import http_exception_handler

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(parts) + ". See /api/v1/docs for the expected parameters."
        return error_response(BadRequest(message))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no API endpoint {request.url.path}; see /api/v1/docs for the endpoints"
        error = ApiError(
            message,
            code=codes.get(exc.status_code, "http_error"),
            status=exc.status_code,
            headers=dict(exc.headers or {}),
        )
        return error_response(error)
