"""Errors the API answers with, as JSON ``{"error": {"code": "...", "message": "..."}}``.

Services raise ``ApiError`` subclasses with a ``code``; ``install_handlers``
turns them (and FastAPI's own validation and routing errors) into that JSON
under ``/api/``. The codes, their statuses and meanings are written once, in
``modhub.errors.ERROR_CODES`` (the client maps them back to exceptions from the
same table, in ``modhub.client.api.raise_for_status``): an error's status is its
code's.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from modhub.errors import ERROR_CODES


class ApiError(Exception):
    """An error answer: ``code`` is one of ``ERROR_CODES``, whose entry gives the status.

    ``status`` is given only for ``http_error`` (a framework error keeps its own status).
    """

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
        entry = ERROR_CODES.get(self.code)
        if entry is None:
            # A programming error, caught by the tests: every code the hub sends is in the table.
            raise KeyError(f"error code {self.code!r} is not in modhub.errors.ERROR_CODES; add it there")
        self.status: int = status if status is not None else entry.status or 500
        self.headers = headers or {}


# One class per status the services raise; the default code is the status's general one.


class BadRequest(ApiError):
    code = "invalid_request"


class Unauthorized(ApiError):
    code = "auth_required"


class Forbidden(ApiError):
    code = "forbidden"


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    code = "conflict"


class TooLarge(ApiError):
    code = "too_large"


class RangeNotSatisfiable(ApiError):
    code = "range_not_satisfiable"


class TooManyRequests(ApiError):
    code = "rate_limited"


class InvalidModule(ApiError):
    code = "invalid_module"


class Unavailable(ApiError):
    code = "unavailable"


class ErrorDetail(BaseModel):
    # Machine-readable, one of modhub.errors.ERROR_CODES.
    code: str
    # What went wrong and what to do about it.
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer under /api/ (the OpenAPI spec documents it on every operation)."""

    error: ErrorDetail


_SUMMARIES = {
    400: "Malformed parameters or body",
    401: "No token, or one the hub does not accept",
    403: "The token's scope or publishers do not allow this",
    404: "No such module, version, file, publisher, token or blob",
    405: "The method is not allowed on this path",
    409: "The version exists already, or the name looks like an existing one",
    413: "Over one of the hub's size limits",
    416: "The Range cannot be served",
    422: "The module itself is invalid",
    429: "Too many failed authentications from this address; see Retry-After",
    503: "The hub cannot do this now",
}


def _description(status: int) -> str:
    """The OpenAPI description of a status: its summary and its codes, from ERROR_CODES."""
    codes = ", ".join(code for code, entry in ERROR_CODES.items() if entry.status == status)
    return f"{_SUMMARIES[status]} ({codes})"


_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    416: {"Content-Range": {"schema": {"type": "string"}, "description": "bytes */SIZE"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for error statuses, each with the ErrorBody schema."""
    result: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": _description(status)}
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
