"""The generated OpenAPI spec, made to say exactly what the hub does.

FastAPI documents a 422 ``HTTPValidationError`` on every operation with
parameters; the hub answers malformed requests with 400 and the common
``ErrorBody`` instead (``errors.install_handlers``), so that entry is
replaced. Path parameters get the patterns the hub's parsers accept
(``modhub.handles``): anything else is answered 404, like an unknown name.
Operations that need a token name the ``bearer`` security scheme.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from modhub.format.digests import SHA256_PATTERN
from modhub.handles import END_OF_TEXT, MAX_VERSION, NAME_PATTERN, PUBLISHER_PATTERN, VERSION_PATTERN

# The path-parameter patterns the parsers enforce (handles.validate_name and parse_version; the
# routes answer 404 otherwise, or 400 where a name is created).
_PATTERNS = {
    "publisher": PUBLISHER_PATTERN,
    "name": NAME_PATTERN,
    "version": rf"^(?:latest|{VERSION_PATTERN}){END_OF_TEXT}",
    "sha256": SHA256_PATTERN,
}
_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _is_fastapi_validation(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == _VALIDATION_REF)


def _tidy(schema: dict[str, Any]) -> dict[str, Any]:
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.get("responses", {})
            if _is_fastapi_validation(responses.get("422", {})):
                del responses["422"]
                if "400" not in responses:
                    responses["400"] = {
                        "description": "Malformed parameters or body (invalid_request)",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                        },
                    }
            for param in operation.get("parameters", []):
                if param.get("in") != "path" or param["name"] not in _PATTERNS:
                    continue
                if param["name"] == "version" and path.endswith("/yank"):
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_VERSION}
                else:
                    param["schema"] = {**param.get("schema", {}), "pattern": _PATTERNS[param["name"]]}
            _ = method
    components = schema.setdefault("components", {})
    schemas = components.get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token (mh_...): `modhub admin create-token`, or POST /api/v1/tokens",
    }
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the tidied spec at ``app.openapi_url`` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _tidy(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
