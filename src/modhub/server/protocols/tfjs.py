"""TF.js's protocol: ``GET /<publisher>/<name>/<version>/model.json?tfjs-format=file`` and its shards.

``tf.loadGraphModel(url, {fromTFHub: true})`` (``@tensorflow/tfjs`` 4) appends ``/`` to the
module's URL if missing, fetches ``model.json?tfjs-format=file`` there, and then each weight
shard that model.json names with the same query, beside it
(``/<publisher>/<name>/<version>/group1-shard1of4.bin?tfjs-format=file``), as tfhub.dev served
them. The files are the version's ``tfjs/`` folder (``modhub.format.manifest.TFJS_DIR``),
streamed from storage like every download (ETag, Range), never as a redirect: from a page on
another origin, a redirect to the object store would need that store's CORS too.

A page on any origin may load them, so these answers (errors and ``OPTIONS`` preflights
included) carry ``Access-Control-Allow-Origin: *``; no other route of the hub does. A private
module is found only with a read token (``Authorization: Bearer mh_...``, e.g. TF.js's
``requestInit``), by the same lookup as tensorflow_hub's (:mod:`.lookup`); the header is listed
in ``Access-Control-Allow-Headers`` for that. Without ``tfjs-format`` the same URLs stay the
site's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from modhub.format.manifest import TFJS_DIR, TFJS_MODEL, check_relative_path
from modhub.handles import is_version
from modhub.server.deps import Hub, get_hub
from modhub.server.errors import BadRequest, NotFound
from modhub.server.models import File
from modhub.server.protocols.lookup import QueryRoute, find_version, parse_repo
from modhub.server.ranges import blob_response
from modhub.server.services.downloads import is_whole_fetch

__all__ = ["CORS_HEADERS", "TFJS_FORMAT", "router"]

TFJS_FORMAT = "tfjs-format"
_FILE = "file"
MODEL_JSON = TFJS_MODEL.rsplit("/", 1)[1]
# Only on this router's answers: a page on any origin may fetch a module's TF.js files.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag",
}
_PREFLIGHT_HEADERS = {
    **CORS_HEADERS,
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    # A private module's read token travels as Authorization (not covered by "*").
    "Access-Control-Allow-Headers": "Authorization, Range, If-None-Match",
    "Access-Control-Max-Age": "600",
}


class _TfjsRoute(QueryRoute):
    """Matches only requests with a ``tfjs-format`` query parameter (others go to the site);
    every answer, errors included, carries the CORS headers."""

    query = TFJS_FORMAT
    headers = CORS_HEADERS


HubDep = Annotated[Hub, Depends(get_hub)]
router = APIRouter(route_class=_TfjsRoute, include_in_schema=False)


def _wanted_format(request: Request) -> None:
    wanted = request.query_params.get(TFJS_FORMAT, "")
    if wanted != _FILE:
        raise BadRequest(
            f"unknown tfjs-format {wanted[:50]!r}: TF.js asks for 'file' "
            "(tf.loadGraphModel(url, {fromTFHub: true})); drop the parameter to get the module page",
            code="format_not_supported",
        )


@router.options("/{publisher}/{name}/{version}/{filename}")
@router.options("/{publisher}/{name}/{filename}")
def preflight() -> Response:
    """A browser's CORS preflight (sent when the page adds a header, e.g. Authorization)."""
    return Response(status_code=204, headers=_PREFLIGHT_HEADERS)


@router.api_route("/{publisher}/{name}/{filename}", methods=["GET", "HEAD"])
def unversioned(publisher: str, name: str, filename: str, request: Request, hub: HubDep) -> Response:
    """TF.js caches by URL, and its shards' names repeat across versions: a version is needed."""
    _wanted_format(request)
    handle = parse_repo(publisher, name)
    if is_version(filename):  # the module's URL itself, not a file of it
        raise NotFound(
            f"TF.js reads /{handle.publisher}/{handle.name}/{filename}/{MODEL_JSON}?{TFJS_FORMAT}={_FILE} "
            "and the shards beside it: load the module's URL with tf.loadGraphModel(url, {fromTFHub: true})",
            code="file_not_found",
        )
    with hub.db.session() as session:
        number = find_version(session, request, handle.publisher, handle.name, None).version
    raise NotFound(
        f"TF.js loads a version, not the latest: use /{handle.publisher}/{handle.name}/{number} "
        f"(tf.loadGraphModel('<hub>/{handle.publisher}/{handle.name}/{number}', {{fromTFHub: true}}))",
        code="version_not_found",
    )


@router.api_route("/{publisher}/{name}/{version}/{filename}", methods=["GET", "HEAD"])
def tfjs_file(
    publisher: str, name: str, version: str, filename: str, request: Request, hub: HubDep
) -> Response:
    """``model.json`` or a weight shard of the version's ``tfjs/`` folder, streamed."""
    _wanted_format(request)
    handle = parse_repo(publisher, name, version)
    wanted = f"{TFJS_DIR}/{filename}"
    try:  # a name no module can list (a NUL byte, say) never reaches the database
        check_relative_path(wanted)
    except ValueError:
        raise NotFound(f"{handle} has no TF.js file {filename[:100]!r}", code="file_not_found") from None
    with hub.db.session() as session:
        row = find_version(session, request, handle.publisher, handle.name, handle.version)
        label = f"{handle.publisher}/{handle.name}/{row.version}"
        owner, module_name = row.module.publisher.name, row.module.name
        paths = (TFJS_MODEL, wanted)
        found = {
            f.path: (f.sha256, f.size)
            for f in session.scalars(select(File).where(File.version_id == row.id, File.path.in_(paths)))
        }
    if TFJS_MODEL not in found:
        raise NotFound(
            f"{label} has no TF.js model (tfjs/model.json), so TF.js cannot load it; load it with modhub "
            f"(import modhub as hub; hub.load({label!r})), or publish a version with TF.js "
            "(modhub publish SAVEDMODEL --tfjs)",
            code="format_not_available",
        )
    if wanted not in found:
        raise NotFound(f"{label} has no TF.js file {filename[:100]!r}", code="file_not_found")
    sha256, size = found[wanted]
    # Streamed, not redirected (see the module docstring).
    response = blob_response(request, hub.storage, sha256, size, filename, redirect=False)
    is_json = filename == MODEL_JSON
    response.headers["Content-Type"] = "application/json" if is_json else "application/octet-stream"
    if is_json and is_whole_fetch(request):  # one download per model load, not per shard
        hub.downloads.add(owner, module_name)
    return response
