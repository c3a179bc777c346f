"""The website's routes: parse the URL, call a service, render a template. No SQL here.

URL map (included after the API, but safe in any order: the first path
segment never matches a reserved name, see ``RESERVED``)::

    /                              home: search, filters, sort, pages
    /static/<file>                 the stylesheet and the copy-button script
    /<publisher>                   a publisher's modules
    /<publisher>/<name>            a module's latest version (JSON for the modhub client)
    /<publisher>/<name>/<version>  one version (JSON for the modhub client)
    anything else (outside /api/)  a 404 page that suggests the closest module names
"""

from __future__ import annotations

import hashlib
import math
from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.convertors import Convertor, register_url_convertor

import modhub.server.web.negotiate as negotiate
from modhub.errors import InvalidHandle
from modhub.handles import RESERVED_PUBLISHERS, is_version, validate_name
from modhub.server.deps import ReaderDep, get_hub, get_session
from modhub.server.errors import ApiError, NotFound, error_response
from modhub.server.models import Token
from modhub.server.services import queries, web_queries
from modhub.server.web.params import SORTS, Listing, clean_text, page_numbers
from modhub.server.web.render import environment, page
from modhub.server.web.vendor import find_runtime, tryit_csp
from modhub.server.web.vendor import router as vendor_router
from modhub.server.web.views import module_page

# First path segments that are never a publisher: the server's own paths (the one list).
RESERVED = RESERVED_PUBLISHERS
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "site.css": "text/css; charset=utf-8",
    "site.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


class _PublisherSegment(Convertor[str]):
    """One path segment that is not a reserved word."""

    regex = "(?!(?:" + "|".join(w.replace(".", r"\.") for w in sorted(RESERVED)) + ")(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _SitePath(_PublisherSegment):
    """Any path outside /api/ and /static/, which answer their own 404s (the catch-all)."""

    regex = "(?!(?:api|static)(?:/|$)).*"


register_url_convertor("modhub_publisher", _PublisherSegment())
register_url_convertor("modhub_sitepath", _SitePath())

router = APIRouter(include_in_schema=False)
# The "try it" panel's scripts, sample photos and browser runtime (/static/tryit/, /static/vendor/).
router.include_router(vendor_router)
SessionDep = Annotated[Session, Depends(get_session)]


@cache
def _static_version(filename: str) -> str:
    return hashlib.sha256((STATIC_DIR / filename).read_bytes()).hexdigest()[:12]


def static_url(filename: str) -> str:
    return f"/static/{filename}?v={_static_version(filename)}"


environment().globals["static_url"] = static_url


@router.api_route("/static/{filename}", methods=["GET", "HEAD"])
def static(filename: str) -> Response:
    media_type = STATIC_FILES.get(filename)
    if media_type is None or not (STATIC_DIR / filename).is_file():
        return Response("not found\n", status_code=404, media_type="text/plain")
    return FileResponse(
        STATIC_DIR / filename,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.api_route("/", methods=["GET", "HEAD"])
def home(request: Request, session: SessionDep, reader: ReaderDep) -> Response:
    listing = Listing.parse(request.query_params)
    results = queries.search_modules(session, listing.search_query(), reader=reader)
    pages = max(1, math.ceil(results.total / listing.per_page))
    return page(
        request,
        "home.html",
        {
            "listing": listing,
            "results": results,
            "facets": web_queries.facets(session, reader=reader),
            "pages": pages,
            "page_numbers": page_numbers(listing.page, pages),
            "sorts": SORTS,
        },
    )


@router.api_route("/{publisher:modhub_publisher}", methods=["GET", "HEAD"])
def publisher_page(publisher: str, request: Request, session: SessionDep, reader: ReaderDep) -> Response:
    try:
        _check_name(publisher, "publisher")
        detail = queries.list_publisher(session, publisher, reader=reader)
    except NotFound as exc:
        return _not_found(request, session, exc, reader=reader)
    if negotiate.wants_json(request):
        return _json(detail.model_dump(mode="json"))
    return page(request, "publisher.html", {"publisher": detail}, headers={"Vary": negotiate.VARY})


@router.api_route("/{publisher:modhub_publisher}/{name}", methods=["GET", "HEAD"])
def module_latest(
    publisher: str, name: str, request: Request, session: SessionDep, reader: ReaderDep
) -> Response:
    return _module(request, session, reader, publisher, name, None)


@router.api_route("/{publisher:modhub_publisher}/{name}/{version}", methods=["GET", "HEAD"])
def module_version(
    publisher: str, name: str, version: str, request: Request, session: SessionDep, reader: ReaderDep
) -> Response:
    return _module(request, session, reader, publisher, name, version)


@router.api_route("/{path:modhub_sitepath}", methods=["GET", "HEAD"])
def not_found(path: str, request: Request, session: SessionDep, reader: ReaderDep) -> Response:
    message = f"there is no page /{path[:200]} on this hub"
    return _not_found(request, session, NotFound(message), reader=reader)


def _module(
    request: Request, session: Session, reader: Token | None, publisher: str, name: str, version: str | None
) -> Response:
    # ?tf-hub-format= requests never get here: modhub.server.protocols.tfhub answers them.
    as_json = negotiate.wants_json(request)
    try:
        _check_name(publisher, "publisher")
        _check_name(name, "module")
        if version is not None:
            _check_version(publisher, name, version)
        if as_json:
            # The same answer as GET /api/v1/modules/{publisher}/{name}/versions/{version}.
            detail = queries.get_version(session, publisher, name, version or "latest", reader=reader)
            return _json(detail.model_dump(mode="json"))
        module = queries.get_module(session, publisher, name, reader=reader)
        if version is None:
            # Every version yanked: show the newest one, marked as yanked.
            shown = module.latest_version or max((v.version for v in module.versions), default=0)
            detail = queries.get_version(session, publisher, name, shown or "latest", reader=reader)
        else:
            detail = queries.get_version(session, publisher, name, version, reader=reader)
    except NotFound as exc:
        return _not_found(request, session, exc, as_json=as_json, reader=reader)
    settings = get_hub(request).settings
    runtime = find_runtime(settings)
    view = module_page(
        module, detail, base_url=str(request.base_url), is_latest_view=version is None, runtime=runtime
    )
    headers = {
        "Vary": negotiate.VARY,
        **({"Content-Security-Policy": tryit_csp(settings)} if view.tryit else {}),
    }
    return page(request, "module.html", {"page": view}, headers=headers)


def _check_version(publisher: str, name: str, version: str) -> None:
    """Versions are positive integers (or "latest"); a 30-digit one must not reach the database."""
    if version != "latest" and not is_version(version):
        raise NotFound(
            f"{publisher}/{name} has no version {version[:30]!r}: versions are positive integers",
            code="version_not_found",
        )


def _check_name(value: str, what: str) -> None:
    try:
        validate_name(value, f"{what} name")
    except InvalidHandle:
        raise NotFound(f"{value[:100]!r} is not a valid {what} name", code=f"{what}_not_found") from None


def _json(body: object) -> JSONResponse:
    return JSONResponse(body, headers={"Vary": negotiate.VARY})


def _not_found(
    request: Request,
    session: Session,
    exc: ApiError,
    *,
    as_json: bool | None = None,
    reader: Token | None = None,
) -> Response:
    if as_json or (as_json is None and negotiate.wants_json(request)):
        return error_response(exc)
    wanted = request.url.path
    segments = wanted.strip("/").split("/")
    if exc.code == "module_not_found":
        message = f"There is no module {'/'.join(segments[:2])} on this hub."
    elif exc.code == "publisher_not_found":
        message = f"There is no publisher {segments[0]} on this hub."
    elif exc.code == "version_not_found":
        message = exc.message + "."
    else:
        message = "There is no page at this address."
    index = get_hub(request).suggestions.refresh(session)
    suggestions = web_queries.closest_handles(index, wanted, reader=reader)
    publishers = web_queries.closest_publishers(index, segments[0], reader=reader)
    words = [s for s in segments[:2] if s and not is_version(s)]
    return page(
        request,
        "not_found.html",
        {
            "message": message,
            "path": wanted[:300],
            "suggestions": suggestions,
            "publishers": publishers,
            # Nothing close: offer the most downloaded modules instead.
            "popular": []
            if suggestions or publishers
            else web_queries.visible_handles(session, limit=5, reader=reader),
            "search_words": clean_text(" ".join(words[-1:]).replace("-", " ").replace("_", " "), 100),
        },
        status=404,
    )
