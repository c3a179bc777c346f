"""The JSON API under /api/v1/: thin routes that parse, call a service, and answer.

The contract is docs/http-api.md; the generated spec is /api/v1/openapi.json.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session
from starlette.responses import Response

from modhub.format.tasks import TASK_VOCABULARY
from modhub.server.deps import Hub, ReaderDep, get_hub, get_session
from modhub.server.errors import BadRequest, TooLarge, error_responses
from modhub.server.models import Token
from modhub.server.ranges import blob_response
from modhub.server.services import queries
from modhub.server.services.publishing import change_visibility, check_names, publish_version, yank_version
from modhub.server.services.schemas import (
    CreatedToken,
    ModuleDetail,
    PublisherDetail,
    PublishResult,
    RevokedToken,
    SearchPage,
    SearchQuery,
    SortKey,
    TaskList,
    TokenCreate,
    TokenInfo,
    VersionDetail,
    VisibilityRequest,
    VisibilityResult,
    YankRequest,
    YankResult,
)
from modhub.server.services.tokens import (
    authenticate,
    create_token,
    describe,
    require_publisher,
    revoke_token,
)
from modhub.server.storage import check_sha256
from modhub.server.uploads import receive_upload

router = APIRouter(prefix="/api/v1")

HubDep = Annotated[Hub, Depends(get_hub)]
SessionDep = Annotated[Session, Depends(get_session)]
AuthHeader = Annotated[str | None, Header(alias="Authorization", include_in_schema=False)]
# Sent by the modhub client when it fetches a manifest to load a module: counted as a download.
CLIENT_HEADER = "x-modhub-client"
# A task filter: one id of the vocabulary ("" or absent: any task).
TaskParam = Annotated[
    str | None, Query(json_schema_extra={"enum": ["", *TASK_VOCABULARY]}, description="a task id")
]


def check_task(task: str | None) -> None:
    """BadRequest naming the vocabulary unless ``task`` is one of its ids (or no filter)."""
    if task and task not in TASK_VOCABULARY:
        raise BadRequest(
            f"unknown task {task[:100]!r}: use a task id of the vocabulary (GET /api/v1/tasks), "
            "e.g. image-classification, text-embedding, image-style-transfer, or 'other'",
            code="invalid_request",
        )


_PUBLISH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["manifest", "files"],
                    "additionalProperties": False,
                    "properties": {
                        "manifest": {"type": "string", "format": "binary", "description": "modhub.json"},
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one part per file; the part's filename is its path in the module",
                        },
                        "version": {"type": "integer", "description": "default: the next number"},
                        "private": {
                            "type": "boolean",
                            "description": "make the module private (or public); default: unchanged "
                            "(a new module is public)",
                        },
                        "signature": {
                            "type": "string",
                            "format": "binary",
                            "description": "modhub.sig (model-signing bundle of modhub sign); "
                            "with signing_key",
                        },
                        "signing_key": {
                            "type": "string",
                            "format": "binary",
                            "description": "the PEM public key that made signature; with signature",
                        },
                    },
                }
            }
        },
    }
}


# Documented error answers, one dict per kind of operation (each with the ErrorBody schema).
# Reads take an optional token (private modules): a bad one is 401, repeated ones 429.
_READ = error_responses(400, 401, 404, 429)
_AUTHENTICATED = error_responses(400, 401, 403, 404, 429)
_SECURED: dict[str, Any] = {"security": [{"bearer": []}]}
_TOKEN_LINKS: dict[str, Any] = {
    "RevokeToken": {
        "operationRef": "#/paths/~1api~1v1~1tokens~1{token_id}/delete",
        "parameters": {"token_id": "$response.body#/id"},
    }
}
_VERSION_LINKS: dict[str, Any] = {
    "GetVersion": {
        "operationRef": "#/paths/~1api~1v1~1modules~1{publisher}~1{name}~1versions~1{version}/get",
        "parameters": {
            "publisher": "$request.path.publisher",
            "name": "$request.path.name",
            "version": "$response.body#/version",
        },
    },
    "YankVersion": {
        "operationRef": "#/paths/~1api~1v1~1modules~1{publisher}~1{name}~1versions~1{version}~1yank/post",
        "parameters": {
            "publisher": "$request.path.publisher",
            "name": "$request.path.name",
            "version": "$response.body#/version",
        },
    },
}


def _server_version() -> str:
    try:
        return package_version("modhub")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health", tags=["meta"])
def health(hub: HubDep) -> dict[str, Any]:
    """Liveness, and the upload limits a publisher should know before sending."""
    s = hub.settings
    return {
        "status": "ok",
        "version": _server_version(),
        "limits": {
            "max_file_bytes": s.max_file_bytes,
            "max_version_bytes": s.max_version_bytes,
            "max_manifest_bytes": s.max_manifest_bytes,
            "max_files": s.max_files,
        },
    }


@router.get("/modules", tags=["modules"], responses=error_responses(400))
def search(
    session: SessionDep,
    reader: ReaderDep,
    q: str = "",
    task: TaskParam = None,
    format: str | None = None,
    publisher: str | None = None,
    license: str | None = None,
    framework: str | None = None,
    sort: SortKey = "downloads",
    page: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=queries.MAX_PER_PAGE)] = 20,
) -> SearchPage:
    """Search modules; every word of ``q`` must match the name, title, description or tags.

    ``task`` is a task id of the vocabulary (GET /api/v1/tasks); ``tasks`` in the answer counts
    the matches per task without the task filter."""
    check_task(task)
    query = SearchQuery(
        q=q,
        task=task or None,
        format=format or None,
        publisher=publisher or None,
        license=license or None,
        framework=framework or None,
        sort=sort,
        page=page,
        per_page=per_page,
    )
    return queries.search_modules(session, query, reader=reader)


@router.get("/tasks", tags=["modules"], responses=error_responses(400))
def tasks(session: SessionDep, reader: ReaderDep) -> TaskList:
    """Every task id of the vocabulary (TF Hub's, and "other"), with how many modules have it
    and whether it has a contract."""
    return queries.list_tasks(session, reader=reader)


@router.get("/modules/{publisher}/{name}", tags=["modules"], responses=_READ)
def module_detail(publisher: str, name: str, session: SessionDep, reader: ReaderDep) -> ModuleDetail:
    return queries.get_module(session, publisher, name, reader=reader)


@router.get("/modules/{publisher}/{name}/versions/{version}", tags=["modules"], responses=_READ)
def version_detail(
    publisher: str, name: str, version: str, request: Request, hub: HubDep, reader: ReaderDep
) -> VersionDetail:
    """The manifest and model card of a version; ``latest`` is the highest non-yanked one."""
    with hub.db.session() as session:
        detail = queries.get_version(session, publisher, name, version, reader=reader)
    if request.headers.get(CLIENT_HEADER):
        hub.downloads.add(detail.publisher, detail.name)  # written in batches, not per request
    return detail


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "the bytes; ETag is the sha256"},
    206: {"content": {"application/octet-stream": {}}, "description": "the requested Range"},
    304: {"description": "If-None-Match matched the ETag"},
    307: {"description": "the object store serves the bytes: Location is a presigned URL (send Range there)"},
    **error_responses(400, 401, 404, 416, 429, 503),
}
_FILE_PATH = "/modules/{publisher}/{name}/versions/{version}/files/{path:path}"


@router.head(_FILE_PATH, include_in_schema=False, response_class=Response)
@router.get(_FILE_PATH, tags=["files"], response_class=Response, responses=_FILE_RESPONSES)
def download_file(
    publisher: str, name: str, version: str, path: str, request: Request, hub: HubDep, reader: ReaderDep
) -> Response:
    """One file of a version (``modhub.json`` included; ``modhub.sig`` for a signed version).

    ETag is the sha256; Range is supported."""
    with hub.db.session() as session:
        sha256, size = queries.find_file(session, publisher, name, version, path, reader=reader)
    return blob_response(request, hub.storage, sha256, size, path)


@router.head("/blobs/{sha256}", include_in_schema=False, response_class=Response)
@router.get("/blobs/{sha256}", tags=["files"], response_class=Response, responses=_FILE_RESPONSES)
def download_blob(sha256: str, request: Request, hub: HubDep, reader: ReaderDep) -> Response:
    """Bytes by content address (any file of any published version)."""
    try:
        check_sha256(sha256)
    except ValueError:
        sha256 = ""
    with hub.db.session() as session:
        size = queries.blob_size(session, sha256, reader=reader)
    return blob_response(request, hub.storage, sha256, size, sha256)


@router.post(
    "/modules/{publisher}/{name}/versions",
    status_code=201,
    tags=["publishing"],
    openapi_extra={**_PUBLISH_BODY, **_SECURED},
    responses={
        201: {"links": _VERSION_LINKS},
        **error_responses(400, 401, 403, 404, 409, 413, 422, 429, 503),
    },
)
async def publish(
    publisher: str, name: str, request: Request, hub: HubDep, authorization: AuthHeader = None
) -> PublishResult:
    """Publish a new version (multipart: ``manifest``, ``files``..., optional ``version``, ``private``)."""
    token = await run_in_threadpool(auth_token, hub, request, authorization)
    check_names(publisher, name)
    require_publisher(token, publisher)
    limit = (
        hub.settings.max_version_bytes
        + hub.settings.max_manifest_bytes
        + 1024 * (hub.settings.max_files + 16)
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(
            f"the upload is {declared} bytes, over this hub's limit of {hub.settings.max_version_bytes} "
            "bytes per version; make the module smaller or ask the operator to raise "
            "MODHUB_SERVER_MAX_VERSION_BYTES"
        )
    staging = hub.new_staging()
    try:
        upload = await receive_upload(
            request.headers.get("content-type", ""), request.stream(), hub.settings, staging
        )
        return await run_in_threadpool(
            publish_version, hub.db, hub.storage, token=token, publisher=publisher, name=name, upload=upload
        )
    finally:
        await run_in_threadpool(shutil.rmtree, staging, True)


@router.post(
    "/modules/{publisher}/{name}/versions/{version}/yank",
    tags=["publishing"],
    responses=_AUTHENTICATED,
    openapi_extra=_SECURED,
)
def yank(
    publisher: str,
    name: str,
    version: str,
    request: Request,
    hub: HubDep,
    body: YankRequest | None = None,
    authorization: AuthHeader = None,
) -> YankResult:
    """Hide a version from "latest" and search; it stays downloadable by its full handle."""
    token = auth_token(hub, request, authorization)
    with hub.db.write_session() as session:
        result = yank_version(
            session,
            token=token,
            publisher=publisher,
            name=name,
            version=queries.parse_version_path(version),
            reason=(body or YankRequest()).reason,
        )
        session.commit()
    return result


@router.post(
    "/tokens",
    status_code=201,
    tags=["tokens"],
    responses={201: {"links": _TOKEN_LINKS}, **_AUTHENTICATED},
    openapi_extra=_SECURED,
)
def new_token(
    body: TokenCreate, request: Request, hub: HubDep, authorization: AuthHeader = None
) -> CreatedToken:
    """Create a token (shown once), no wider than yours: scope, publishers and lifetime.

    ``expires_in`` (seconds) sets its lifetime; without it, it expires when your token does.
    """
    creator = auth_token(hub, request, authorization)
    with hub.db.write_session() as session:
        created = create_token(
            session,
            name=body.name,
            publishers=body.publishers,
            admin=body.admin,
            scope=body.scope,
            expires_in=timedelta(seconds=body.expires_in) if body.expires_in is not None else None,
            created_by=creator,
        )
        session.commit()
    return created


@router.get("/tokens/me", tags=["tokens"], responses=_AUTHENTICATED, openapi_extra=_SECURED)
def whoami(request: Request, hub: HubDep, authorization: AuthHeader = None) -> TokenInfo:
    """The token you sent: its id, name, scope, publishers and expiry."""
    return describe(auth_token(hub, request, authorization))


# ``:int`` keeps "/tokens/me" out of this route, so DELETE /tokens/me is 405 (GET only), not 400.
@router.delete("/tokens/{token_id:int}", tags=["tokens"], responses=_AUTHENTICATED, openapi_extra=_SECURED)
def delete_token(
    token_id: int, request: Request, hub: HubDep, authorization: AuthHeader = None
) -> RevokedToken:
    """Revoke a token and every token it created (and theirs): admins any, others their own tree."""
    by = auth_token(hub, request, authorization)
    with hub.db.write_session() as session:
        result = revoke_token(session, token_id, by=by)
        session.commit()
    return result


@router.get("/publishers/{publisher}", tags=["modules"], responses=_READ)
def publisher_detail(publisher: str, session: SessionDep, reader: ReaderDep) -> PublisherDetail:
    return queries.list_publisher(session, publisher, reader=reader)


@router.put(
    "/modules/{publisher}/{name}/visibility",
    tags=["publishing"],
    responses=_AUTHENTICATED,
    openapi_extra=_SECURED,
)
def set_visibility(
    publisher: str,
    name: str,
    body: VisibilityRequest,
    request: Request,
    hub: HubDep,
    authorization: AuthHeader = None,
) -> VisibilityResult:
    """Make a module private (only tokens that may read for its publisher see it) or public."""
    token = auth_token(hub, request, authorization)
    with hub.db.write_session() as session:
        result = change_visibility(session, token=token, publisher=publisher, name=name, private=body.private)
        session.commit()
    return result


def auth_token(hub: Hub, request: Request, authorization: str | None) -> Token:
    """The request's token (401 if missing or bad); repeated failures from one address get 429.

    In a read session of its own, before any write session: a failure is counted in the
    limiter's own transaction (shared by every worker), which must not wait for a write
    lock this request holds.
    """
    client = request.client.host if request.client is not None else ""
    with hub.db.session() as session:
        return authenticate(session, authorization, limiter=hub.auth_limiter, client=client)
