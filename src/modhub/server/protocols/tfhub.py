"""tensorflow_hub's protocol: ``GET /<publisher>/<name>/<version>?tf-hub-format=compressed``.

``hub.load(url)`` and ``hub.KerasLayer(url)`` (tensorflow_hub 0.16) append
``?tf-hub-format=compressed`` to an http(s) handle and untar whatever 2xx body
comes back into their cache, keyed by the URL and never revalidated. So:

- the answer is a tar.gz whose root is the module's ``saved_model/`` directory:
  regular files and directories only, each directory before its files, sorted,
  fixed mtime/owner/mode and gzip mtime 0, so the bytes depend only on the files;
- it is built once per version, stored as a blob and streamed from then on;
- an unversioned handle answers 303 to the concrete version's URL (the query
  included: urllib does not carry it over), so nothing is cached under a moving URL;
- ``?tf-hub-format=uncompressed`` (a GCS path protocol) answers 400 saying to
  use the compressed format; no ``Content-Encoding`` is ever sent.

The route only matches requests that carry ``tf-hub-format``; without it the
same URL stays the module's documentation page (``modhub.server.web``).
"""

from __future__ import annotations

import gzip
import shutil
import tarfile
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from modhub.format.digests import sha256_file
from modhub.format.manifest import SAVED_MODEL_DIR
from modhub.server.deps import Hub, get_hub
from modhub.server.errors import BadRequest, NotFound
from modhub.server.models import Blob, File, TfHubArchive, Version
from modhub.server.protocols.lookup import QueryRoute, find_version, parse_repo
from modhub.server.ranges import blob_response
from modhub.server.services.downloads import is_whole_fetch
from modhub.server.storage import BlobStorage

__all__ = ["TF_HUB_FORMAT", "build_archive", "router"]

TF_HUB_FORMAT = "tf-hub-format"
_COMPRESSED = "compressed"
# Every archive member gets these: the bytes depend on the files only.
_MTIME = 0
_FILE_MODE = 0o644
_DIR_MODE = 0o755


class _TfHubRoute(QueryRoute):
    """Matches only requests with a ``tf-hub-format`` query parameter (others go to the site)."""

    query = TF_HUB_FORMAT


HubDep = Annotated[Hub, Depends(get_hub)]
router = APIRouter(route_class=_TfHubRoute, include_in_schema=False)


def _wanted_format(request: Request) -> None:
    wanted = request.query_params.get(TF_HUB_FORMAT, "")
    if wanted == _COMPRESSED:
        return
    if wanted == "uncompressed":
        raise BadRequest(
            "this hub serves TF Hub modules as tar.gz only (?tf-hub-format=compressed), not from GCS "
            "folders: unset TFHUB_MODEL_LOAD_FORMAT (or set it to COMPRESSED) and load again",
            code="format_not_supported",
        )
    raise BadRequest(
        f"unknown tf-hub-format {wanted[:50]!r}: tensorflow_hub asks for 'compressed'; drop the parameter "
        "to get the module page",
        code="format_not_supported",
    )


@router.api_route("/{publisher}/{name}", methods=["GET", "HEAD"])
def latest_archive(publisher: str, name: str, request: Request, hub: HubDep) -> Response:
    """303 to the concrete latest version: tensorflow_hub caches by URL and never revalidates."""
    _wanted_format(request)
    with hub.db.session() as session:
        row = find_version(session, request, publisher, name, None)
        number = row.version
    location = f"{request.url.path.rstrip('/')}/{number}?{TF_HUB_FORMAT}={_COMPRESSED}"
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-cache"})


@router.api_route("/{publisher}/{name}/{version}", methods=["GET", "HEAD"])
def version_archive(publisher: str, name: str, version: str, request: Request, hub: HubDep) -> Response:
    """The version's SavedModel as a deterministic tar.gz (built on first request, then stored)."""
    _wanted_format(request)
    handle = parse_repo(publisher, name, version)
    with hub.db.session() as session:
        row = find_version(session, request, handle.publisher, handle.name, handle.version)
        version_id, number = row.id, row.version
        owner, module_name = row.module.publisher.name, row.module.name
        label = f"{handle.publisher}/{handle.name}/{number}"
        archive = session.get(TfHubArchive, version_id)
        stored = (archive.sha256, archive.size) if archive is not None else None
        files = _saved_model_files(session, row)
    if not files:
        raise NotFound(
            f"{label} has no SavedModel, so tensorflow_hub cannot load it; load it with modhub "
            f"(import modhub as hub; hub.load({label!r}))",
            code="format_not_available",
        )
    if stored is None or not hub.storage.exists(stored[0]):
        stored = _store_archive(hub, version_id, files)
    sha256, size = stored
    response = blob_response(request, hub.storage, sha256, size, f"{handle.name}-{number}.tar.gz")
    response.headers["Content-Type"] = "application/gzip"
    if is_whole_fetch(request):  # tensorflow_hub fetches the archive once per cache
        hub.downloads.add(owner, module_name)
    return response


def _saved_model_files(session: Any, row: Version) -> list[tuple[str, str, int]]:
    """(path inside the SavedModel, sha256, size) of the version's ``saved_model/`` files, sorted."""
    prefix = SAVED_MODEL_DIR + "/"
    rows = session.scalars(select(File).where(File.version_id == row.id, File.path.startswith(prefix))).all()
    return sorted((f.path[len(prefix) :], f.sha256, f.size) for f in rows)


def _store_archive(hub: Hub, version_id: int, files: list[tuple[str, str, int]]) -> tuple[str, int]:
    staging = hub.new_staging()
    try:
        path = staging / "archive.tar.gz"
        with open(path, "wb") as out:
            build_archive(hub.storage, files, out)
        sha256, size = sha256_file(path), path.stat().st_size
        hub.storage.put_file(path, sha256)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        with hub.db.write_session() as session:
            if session.get(Blob, sha256) is None:
                session.add(Blob(sha256=sha256, size=size))
            archive = session.get(TfHubArchive, version_id)
            if archive is None:
                session.add(TfHubArchive(version_id=version_id, sha256=sha256, size=size))
            else:
                archive.sha256, archive.size = sha256, size
            session.commit()
    except sa_exc.IntegrityError:
        # A concurrent request stored the same archive first: the bytes are identical.
        pass
    return sha256, size


def _member(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = _DIR_MODE if directory else _FILE_MODE
    info.size = 0 if directory else size
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_archive(storage: BlobStorage, files: list[tuple[str, str, int]], out: Any) -> None:
    """Write the tar.gz of ``files`` ((path, sha256, size), paths relative to the SavedModel) to ``out``.

    Members: ``.`` first, then every directory and file sorted by path components,
    so each directory comes before what it holds.
    """
    dirs: set[tuple[str, ...]] = set()
    for path, _, _ in files:
        parts = tuple(path.split("/"))
        dirs.update(parts[:i] for i in range(1, len(parts)))
    entries: list[tuple[tuple[str, ...], str, int] | tuple[tuple[str, ...], None, int]] = [
        (d, None, 0) for d in dirs
    ]
    entries += [(tuple(p.split("/")), sha, size) for p, sha, size in files]
    entries.sort(key=lambda e: e[0])
    # mtime=0 and no file name in the gzip header: equal files give equal bytes.
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        tar.addfile(_member(".", directory=True))
        for parts, sha, size in entries:
            name = "./" + "/".join(parts)
            if sha is None:
                tar.addfile(_member(name, directory=True))
                continue
            with storage.open(sha) as fh:
                tar.addfile(_member(name, size=size), fh)
