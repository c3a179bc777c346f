"""The one place the tensorflow_hub and Hugging Face routes find a module or a version.

Every lookup of those protocols goes through :func:`find_module` or
:func:`find_version` (never ``queries`` directly), so a rule about who may see
a module — private modules, say — is applied here once, for both protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, ClassVar
from urllib.parse import parse_qs

from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from modhub.errors import InvalidHandle
from modhub.handles import Handle, is_version, parse_handle
from modhub.server.deps import get_reader
from modhub.server.errors import ApiError, NotFound, error_response
from modhub.server.models import Module, Token, Version
from modhub.server.services import queries
from modhub.server.services.tokens import TOKEN_PREFIX

__all__ = ["QueryRoute", "find_module", "find_version", "parse_repo"]


class QueryRoute(APIRoute):
    """A protocol's route: matches only requests with the query parameter ``query`` (the same
    URLs without it are the site's pages). An ApiError becomes its JSON answer (the clients show
    only the status line; the body says the fix to a human), and every answer carries ``headers``."""

    query: ClassVar[str]
    headers: ClassVar[dict[str, str]] = {}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") == "http":
            params = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if self.query not in params:
                return Match.NONE, {}
        return super().matches(scope)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc)
            response.headers.update(self.headers)
            return response

        return route


def parse_repo(publisher: str, name: str, version: str | None = None) -> Handle:
    """Validate the path segments with the handle parser; anything invalid is simply not found."""
    text = f"{publisher}/{name}" if version is None else f"{publisher}/{name}/{version}"
    if version is not None and not is_version(version):
        raise NotFound(
            f"no version {version[:30]!r} of {publisher[:64]}/{name[:64]}", code="version_not_found"
        )
    try:
        return parse_handle(text)
    except InvalidHandle:
        raise NotFound(f"no module {text[:200]!r} on this hub", code="module_not_found") from None


def protocol_reader(request: Request) -> Token | None:
    """The modhub token a protocol request carries, None for an anonymous one.

    huggingface_hub sends the user's stored Hugging Face token to whatever endpoint it
    talks to: a bearer token that is not a modhub token (``mh_...``) is not ours to judge
    and counts as anonymous. A modhub token must be valid, as on every route.
    """
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip().startswith(TOKEN_PREFIX):
        return None
    return get_reader(request)


def find_module(session: Session, request: Request, publisher: str, name: str) -> Module:
    """The module ``publisher/name`` as the asker may see it (private: a read token), else NotFound."""
    handle = parse_repo(publisher, name)
    return queries.find_module(session, handle.publisher, handle.name, reader=protocol_reader(request))


def find_version(
    session: Session, request: Request, publisher: str, name: str, version: int | None
) -> Version:
    """A concrete version (yanked ones included), or the latest non-yanked one for None."""
    handle = parse_repo(publisher, name)
    # The same reader for the module and its version: a private module's read token counts.
    wanted = "latest" if version is None else version
    return queries.find_version(
        session, handle.publisher, handle.name, wanted, reader=protocol_reader(request)
    )
