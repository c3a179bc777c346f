"""The read side of the Hugging Face Hub API, for ``huggingface_hub`` with ``HF_ENDPOINT=<hub>``.

A module ``publisher/name`` is a model repo; each version is a commit whose
40-hex id is fixed (``commit_sha``); revision ``main`` is the latest
non-yanked version, a version number or a commit id names one version. The
files of a revision are the module's files plus ``modhub.json``, so a
snapshot is a complete module directory.

    GET  /api/models/{repo}                      model_info (main)
    GET  /api/models/{repo}/revision/{rev}       model_info
    GET  /api/models/{repo}/tree/{rev}[/{path}]  list_repo_tree / snapshot_download
    GET  /{repo}/resolve/{rev}/{path}            hf_hub_download (also HEAD); Range, ETag
                                                 = sha256, X-Repo-Commit

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound
with ``X-Repo-Commit``), which the client maps to its exception types. No
``X-Xet-*`` header is ever sent (the client would switch to the Xet protocol).
Every file is described as an LFS file (``lfs.oid`` = its sha256), the way
the Hub describes large files, so the client checks sha256s.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, Response

from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME
from modhub.handles import is_version, parse_version
from modhub.server.deps import Hub, get_hub
from modhub.server.errors import ApiError, NotFound
from modhub.server.models import Blob, File, Version
from modhub.server.protocols.lookup import find_module, parse_repo
from modhub.server.ranges import blob_response
from modhub.server.services.downloads import is_whole_fetch

__all__ = ["commit_sha", "router"]

HubDep = Annotated[Hub, Depends(get_hub)]
router = APIRouter(include_in_schema=False)

MAIN = "main"
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# huggingface_hub's pipeline tags for modhub's tasks (what the Hub's filters call them).
PIPELINE_TAGS = {
    "image-classification": "image-classification",
    "image-feature-vector": "image-feature-extraction",
    "text-embedding": "sentence-similarity",
    "text-classification": "text-classification",
}


def commit_sha(publisher: str, name: str, version: int, manifest_sha256: str) -> str:
    """The fixed 40-hex commit id of one version (the client's snapshot folder name)."""
    text = f"modhub {publisher}/{name}/{version} {manifest_sha256}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class HfError(Exception):
    def __init__(self, status: int, code: str, message: str, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit

    def response(self, method: str) -> Response:
        headers = {"X-Error-Code": self.code, "X-Error-Message": self.message}
        if self.commit is not None:
            headers["X-Repo-Commit"] = self.commit
        if method == "HEAD":
            return Response(status_code=self.status, headers=headers)
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


@dataclass(frozen=True)
class _Entry:
    path: str
    sha256: str
    size: int

    def lfs(self) -> dict[str, Any]:
        pointer = _pointer(self)
        return {"oid": self.sha256, "sha256": self.sha256, "size": self.size, "pointerSize": len(pointer)}

    def oid(self) -> str:
        """Git blob sha1 of the LFS pointer file, as the Hub reports for LFS files."""
        pointer = _pointer(self)
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer, usedforsecurity=False).hexdigest()


def _pointer(entry: _Entry) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry.sha256}\nsize {entry.size}\n"
    ).encode()


@dataclass(frozen=True)
class _Revision:
    publisher: str
    name: str
    version: Version
    sha: str


def _revision(session: Session, request: Request, publisher: str, name: str, rev: str) -> _Revision:
    try:
        handle = parse_repo(publisher, name)
        module = find_module(session, request, handle.publisher, handle.name)
    except NotFound:
        raise HfError(
            404,
            "RepoNotFound",
            f"Repository Not Found for url: {request.url.path}. No model {publisher}/{name}.",
        ) from None
    pub = module.publisher.name
    versions = {v.version: v for v in module.versions}
    row: Version | None = None
    if rev == MAIN:
        row = versions.get(module.latest_version) if module.latest_version is not None else None
    elif is_version(rev):
        row = versions.get(parse_version(rev))
    elif _COMMIT_RE.match(rev):
        row = next(
            (
                v
                for v in versions.values()
                if commit_sha(pub, module.name, v.version, v.manifest_sha256) == rev
            ),
            None,
        )
    if row is None:
        known = ", ".join(str(v) for v in sorted(versions)) or "none"
        raise HfError(
            404,
            "RevisionNotFound",
            f"Invalid rev id: {rev[:80]}. {pub}/{module.name} has the revisions main, a version number "
            f"({known}) or a version's commit id.",
        )
    return _Revision(pub, module.name, row, commit_sha(pub, module.name, row.version, row.manifest_sha256))


def _entries(session: Session, rev: _Revision) -> list[_Entry]:
    files = session.scalars(select(File).where(File.version_id == rev.version.id)).all()
    entries = [_Entry(f.path, f.sha256, f.size) for f in files]
    manifest_size = session.scalar(select(Blob.size).where(Blob.sha256 == rev.version.manifest_sha256)) or 0
    entries.append(_Entry(MANIFEST_NAME, rev.version.manifest_sha256, manifest_size))
    signature = rev.version.signature_sha256
    if signature is not None:  # so that a snapshot verifies with MODHUB_TRUSTED_KEYS like a hub load
        signature_size = session.scalar(select(Blob.size).where(Blob.sha256 == signature)) or 0
        entries.append(_Entry(SIGNATURE_NAME, signature, signature_size))
    return sorted(entries, key=lambda e: e.path)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _card_data(card: str) -> dict[str, Any]:
    if not card.startswith("---"):
        return {}
    end = card.find("\n---", 3)
    if end < 0:
        return {}
    try:
        data = yaml.safe_load(card[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _model_info(session: Session, rev: _Revision) -> dict[str, Any]:
    version = rev.version
    module = version.module
    manifest = version.manifest
    tags = ["modhub", *[str(t) for t in (manifest.get("metadata") or {}).get("tags", [])]]
    license = manifest.get("license", "")
    if license:
        tags.append(f"license:{license.lower()}")
    info: dict[str, Any] = {
        "_id": rev.sha[:24],
        "id": f"{rev.publisher}/{rev.name}",
        "modelId": f"{rev.publisher}/{rev.name}",
        "author": rev.publisher,
        "sha": rev.sha,
        "lastModified": _iso(version.created_at),
        "createdAt": _iso(module.created_at),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": module.downloads,
        "likes": 0,
        "library_name": "modhub",
        "tags": tags,
        "cardData": _card_data(version.card),
        "siblings": [
            {
                "rfilename": e.path,
                "size": e.size,
                "lfs": {"sha256": e.sha256, "size": e.size, "pointerSize": e.lfs()["pointerSize"]},
            }
            for e in _entries(session, rev)
        ],
    }
    pipeline = PIPELINE_TAGS.get(manifest.get("task", ""))
    if pipeline:
        info["pipeline_tag"] = pipeline
    return info


def _hf(handler: Any) -> Any:
    """Answer HfError (and any ApiError) the way the Hugging Face Hub does."""
    import functools

    @functools.wraps(handler)
    def wrapped(*args: Any, **kwargs: Any) -> Response:
        request: Request = kwargs["request"]
        try:
            result: Response = handler(*args, **kwargs)
            return result
        except HfError as exc:
            return exc.response(request.method)
        except ApiError as exc:
            return HfError(exc.status, "", exc.message).response(request.method)

    return wrapped


@router.get("/api/models/{publisher}/{name}")
@_hf
def model_info(publisher: str, name: str, request: Request, hub: HubDep) -> Response:
    with hub.db.session() as session:
        rev = _revision(session, request, publisher, name, MAIN)
        return JSONResponse(_model_info(session, rev))


@router.get("/api/models/{publisher}/{name}/revision/{revision}")
@_hf
def model_info_revision(publisher: str, name: str, revision: str, request: Request, hub: HubDep) -> Response:
    with hub.db.session() as session:
        rev = _revision(session, request, publisher, name, revision)
        return JSONResponse(_model_info(session, rev))


@router.get("/api/models/{publisher}/{name}/tree/{revision}")
@_hf
def tree_root(
    publisher: str,
    name: str,
    revision: str,
    request: Request,
    hub: HubDep,
    recursive: str = Query("false"),
) -> Response:
    return _tree(hub, request, publisher, name, revision, "", recursive)


@router.get("/api/models/{publisher}/{name}/tree/{revision}/{path:path}")
@_hf
def tree_path(
    publisher: str,
    name: str,
    revision: str,
    path: str,
    request: Request,
    hub: HubDep,
    recursive: str = Query("false"),
) -> Response:
    return _tree(hub, request, publisher, name, revision, path.strip("/"), recursive)


def _tree(
    hub: Hub, request: Request, publisher: str, name: str, revision: str, path: str, recursive: str
) -> Response:
    deep = recursive.lower() in ("1", "true")
    with hub.db.session() as session:
        rev = _revision(session, request, publisher, name, revision)
        entries = _entries(session, rev)
    prefix = f"{path}/" if path else ""
    below = [e for e in entries if e.path.startswith(prefix)]
    if path and not below:
        raise HfError(404, "EntryNotFound", f"{path} does not exist on {revision}", commit=rev.sha)
    items: list[dict[str, Any]] = []
    dirs: set[str] = set()
    for entry in below:
        rest = entry.path[len(prefix) :].split("/")
        for depth in range(1, len(rest)):
            if depth > 1 and not deep:
                break
            dirs.add(prefix + "/".join(rest[:depth]))
        if deep or len(rest) == 1:
            items.append(
                {
                    "type": "file",
                    "path": entry.path,
                    "size": entry.size,
                    "oid": entry.oid(),
                    "lfs": {
                        "oid": entry.sha256,
                        "size": entry.size,
                        "pointerSize": entry.lfs()["pointerSize"],
                    },
                }
            )
    for directory in dirs:
        oid = hashlib.sha1(f"tree {rev.sha} {directory}".encode(), usedforsecurity=False).hexdigest()
        items.append({"type": "directory", "path": directory, "oid": oid})
    items.sort(key=lambda item: item["path"])
    return JSONResponse(items)


@router.api_route("/{publisher}/{name}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
@_hf
def resolve(publisher: str, name: str, revision: str, path: str, request: Request, hub: HubDep) -> Response:
    with hub.db.session() as session:
        rev = _revision(session, request, publisher, name, revision)
        found = next((e for e in _entries(session, rev) if e.path == path), None)
    if found is None:
        raise HfError(
            404,
            "EntryNotFound",
            f"{path[:200]} does not exist in {rev.publisher}/{rev.name} at {revision}",
            commit=rev.sha,
        )
    response = blob_response(request, hub.storage, found.sha256, found.size, found.path)
    response.headers["X-Repo-Commit"] = rev.sha
    if path == MANIFEST_NAME and is_whole_fetch(request):
        # Every huggingface_hub download of a module fetches its modhub.json (as the
        # Hugging Face Hub counts config.json): one download. Other files are not.
        hub.downloads.add(rev.publisher, rev.name)
    return response
