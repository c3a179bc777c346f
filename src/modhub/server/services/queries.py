"""Read-side services: search, module/version/publisher detail, file lookup."""

from __future__ import annotations

import threading
from dataclasses import fields, replace
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, object_session

from modhub.errors import InvalidHandle
from modhub.format.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, Signature
from modhub.format.tasks import TASK_VOCABULARY, task_names, tensor_kind
from modhub.handles import MAX_VERSION, parse_version, validate_name
from modhub.server.errors import NotFound
from modhub.server.models import Blob, File, Module, Publisher, Token, Version
from modhub.server.services.schemas import (
    CallSignature,
    ModuleDetail,
    ModuleSummary,
    PublisherDetail,
    SearchPage,
    SearchQuery,
    SignatureDetail,
    TaskCount,
    TaskList,
    VersionDetail,
    VersionInfo,
)
from modhub.server.services.visibility import may_read, readable

MAX_PER_PAGE = 100
MAX_PAGE = 100_000
__all__ = ["MAX_VERSION"]  # re-exported: routes validate with it


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_modules(session: Session, query: SearchQuery, *, reader: Token | None = None) -> SearchPage:
    """Modules matching every word of ``query.q`` and every filter; yanked-only modules are hidden,
    and private ones unless ``reader`` may read them."""
    page = min(max(1, query.page), MAX_PAGE)
    per_page = min(max(1, query.per_page), MAX_PER_PAGE)
    cleaned: dict[str, Any] = {
        f.name: _clean(v) for f in fields(query) if isinstance(v := getattr(query, f.name), str)
    }
    query = replace(query, **cleaned)
    conditions = [Module.latest_version.is_not(None), readable(reader)]
    for word in query.q.lower().split():
        conditions.append(Module.search_text.like(f"%{_escape_like(word)}%", escape="\\"))
    if query.license:
        conditions.append(func.lower(Module.license) == query.license.lower())
    if query.framework:
        conditions.append(Module.framework == query.framework)
    if query.publisher:
        conditions.append(Publisher.name == query.publisher)
    if query.format:
        conditions.append(Module.formats.like(f"% {_escape_like(query.format.lower())} %", escape="\\"))
    # Every filter but the task's: what a task filter picks from, with counts (one GROUP BY).
    grouped = session.execute(
        select(Module.task, func.count()).join(Module.publisher).where(*conditions).group_by(Module.task)
    )
    counts = {str(task): int(n) for task, n in grouped if task}
    tasks = {task: counts[task] for task in TASK_VOCABULARY if task in counts}
    tasks.update(
        sorted((t, n) for t, n in counts.items() if t not in tasks)
    )  # tasks from before the vocabulary
    if query.task:
        conditions.append(Module.task == query.task)
    stmt = select(Module).join(Module.publisher).where(*conditions)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    order = {
        "name": (Publisher.name, Module.name),
        "newest": (Module.updated_at.desc(), Module.id.desc()),
        "downloads": (Module.downloads.desc(), Publisher.name, Module.name),
    }[query.sort]
    rows = session.scalars(stmt.order_by(*order).offset((page - 1) * per_page).limit(per_page)).all()
    return SearchPage(
        items=[summarize(m) for m in rows], total=total, page=page, per_page=per_page, tasks=tasks
    )


def list_tasks(session: Session, *, reader: Token | None = None) -> TaskList:
    """Every task of the vocabulary with how many visible modules have it."""
    grouped = session.execute(
        select(Module.task, func.count())
        .join(Module.publisher)
        .where(Module.latest_version.is_not(None), readable(reader))
        .group_by(Module.task)
    )
    counts = {str(task): int(n) for task, n in grouped}
    contracts = set(task_names())
    return TaskList(
        tasks=[
            TaskCount(task=t, count=int(counts.get(t, 0)), contract=t in contracts) for t in TASK_VOCABULARY
        ]
    )


# Call signatures by manifest sha256: a published manifest never changes, and parsing one costs
# about a millisecond, on the path every client load takes (the version detail).
_SIGNATURES: dict[str, dict[str, CallSignature]] = {}
_SIGNATURES_KEPT = 4096
_SIGNATURES_LOCK = threading.Lock()


def version_signatures(manifest_sha256: str, manifest: dict[str, Any]) -> dict[str, CallSignature]:
    """``call_signatures(manifest)``, parsed once per published manifest."""
    found = _SIGNATURES.get(manifest_sha256)
    if found is None:
        found = call_signatures(manifest)
        with _SIGNATURES_LOCK:
            if len(_SIGNATURES) >= _SIGNATURES_KEPT:
                _SIGNATURES.pop(next(iter(_SIGNATURES)))
            _SIGNATURES[manifest_sha256] = found
    return found


def call_signatures(manifest: dict[str, Any]) -> dict[str, CallSignature]:
    """A stored manifest's call signatures, "default" first, each tensor's ``kind`` filled in where
    the task says it (the original tasks' inputs). Read tolerantly: a signature this modhub
    cannot parse (a newer format) is left out rather than failing the answer."""
    try:
        parsed: Manifest | None = Manifest.model_validate(manifest)
    except ValidationError:
        parsed = None
    if parsed is not None:
        signatures = dict(parsed.signatures)
    else:
        raw = manifest.get("signatures")
        signatures = {}
        for name, value in raw.items() if isinstance(raw, dict) else ():
            try:
                signatures[str(name)] = Signature.model_validate(value)
            except ValidationError:
                continue

    def kinded(spec: Any) -> Any:
        if parsed is None or spec.kind is not None:
            return spec
        kind = tensor_kind(parsed, spec)
        return spec.model_copy(update={"kind": kind}) if kind is not None else spec

    names = sorted(signatures, key=lambda n: (n != "default", n))
    return {
        name: CallSignature(
            inputs=[kinded(spec) for spec in signatures[name].inputs],
            outputs=list(signatures[name].outputs),
        )
        for name in names
    }


def summarize(module: Module) -> ModuleSummary:
    return ModuleSummary(
        publisher=module.publisher.name,
        name=module.name,
        handle=f"{module.publisher.name}/{module.name}",
        latest_version=module.latest_version,
        task=module.task,
        formats=module.formats.split(),
        framework=module.framework,
        license=module.license,
        title=module.title,
        description=module.description,
        tags=list(module.tags or []),
        downloads=module.downloads,
        created_at=module.created_at,
        updated_at=module.updated_at,
        private=module.private,
    )


def _valid_names(publisher: str, name: str | None = None) -> bool:
    try:
        validate_name(publisher, "publisher name")
        if name is not None:
            validate_name(name, "module name")
    except InvalidHandle:
        return False
    return True


def _clean(value: str | None) -> str | None:
    """Search input as the database can take it (PostgreSQL text cannot hold NUL)."""
    return value.replace("\x00", "") if value is not None else None


def find_module(session: Session, publisher: str, name: str, *, reader: Token | None = None) -> Module:
    """The module, if ``reader`` (None: anonymous) may see it; else the NotFound of an unknown one."""
    if not _valid_names(publisher, name):
        # Not a name any module can have: the same answer as an unknown one, without a query.
        raise NotFound(
            f"no module {publisher[:64]}/{name[:64]} on this hub; check the spelling or search with "
            "GET /api/v1/modules?q=WORDS",
            code="module_not_found",
        )
    module = session.scalar(
        select(Module).join(Module.publisher).where(Publisher.name == publisher, Module.name == name)
    )
    if module is None or not may_read(reader, module):
        raise NotFound(
            f"no module {publisher}/{name} on this hub; check the spelling or search with "
            f"GET /api/v1/modules?q={name}",
            code="module_not_found",
        )
    return module


def get_module(session: Session, publisher: str, name: str, *, reader: Token | None = None) -> ModuleDetail:
    """A module with all its versions, yanked ones included (marked)."""
    module = find_module(session, publisher, name, reader=reader)
    versions = [
        VersionInfo(
            version=v.version,
            yanked=v.yanked,
            yank_reason=v.yank_reason,
            created_at=v.created_at,
            size=v.size,
        )
        for v in module.versions
    ]
    return ModuleDetail(**summarize(module).model_dump(), versions=versions)


def find_version(
    session: Session, publisher: str, name: str, version: int | str, *, reader: Token | None = None
) -> Version:
    """A concrete version (yanked ones included), or ``"latest"``: the highest non-yanked one."""
    module = find_module(session, publisher, name, reader=reader)
    if version == "latest":
        if module.latest_version is None:
            raise NotFound(
                f"every version of {publisher}/{name} is yanked; ask for a concrete version "
                f"({publisher}/{name}/<version>) if you really need one",
                code="version_not_found",
            )
        version = module.latest_version
    number = _version_number(version)
    row = session.scalar(select(Version).where(Version.module_id == module.id, Version.version == number))
    if row is None:
        known = ", ".join(str(v.version) for v in module.versions) or "none"
        raise NotFound(
            f"{publisher}/{name} has no version {number} (versions: {known})", code="version_not_found"
        )
    return row


def parse_version_path(version: str) -> int:
    """A concrete version number from a URL path segment (not "latest"), else 404."""
    return _version_number(version)


def _version_number(version: int | str) -> int:
    try:
        return parse_version(version)
    except InvalidHandle:
        shown = version[:30] if isinstance(version, str) else version
        raise NotFound(
            f"invalid version {shown!r}: use a positive integer or 'latest'", code="version_not_found"
        ) from None


def version_detail(row: Version) -> VersionDetail:
    module = row.module
    return VersionDetail(
        publisher=module.publisher.name,
        name=module.name,
        version=row.version,
        handle=f"{module.publisher.name}/{module.name}/{row.version}",
        yanked=row.yanked,
        yank_reason=row.yank_reason,
        created_at=row.created_at,
        size=row.size,
        manifest=row.manifest,
        manifest_sha256=row.manifest_sha256,
        card=row.card,
        signature=_signature(row),
        task=str(row.manifest.get("task", "")),
        signatures=version_signatures(row.manifest_sha256, row.manifest),
    )


def _signature(row: Version) -> SignatureDetail | None:
    if row.signature_sha256 is None or row.signature_fingerprint is None:
        return None
    session = object_session(row)
    size = session.scalar(select(Blob.size).where(Blob.sha256 == row.signature_sha256)) if session else None
    return SignatureDetail(fingerprint=row.signature_fingerprint, sha256=row.signature_sha256, size=size or 0)


def get_version(
    session: Session, publisher: str, name: str, version: int | str, *, reader: Token | None = None
) -> VersionDetail:
    """Version detail: the manifest and model card. ``version`` may be ``"latest"``."""
    return version_detail(find_version(session, publisher, name, version, reader=reader))


def find_file(
    session: Session,
    publisher: str,
    name: str,
    version: int | str,
    path: str,
    *,
    reader: Token | None = None,
) -> tuple[str, int]:
    """(sha256, size) of one file of a version; ``modhub.json`` is the manifest itself."""
    row = find_version(session, publisher, name, version, reader=reader)
    if path == MANIFEST_NAME:
        size = session.scalar(select(Blob.size).where(Blob.sha256 == row.manifest_sha256)) or 0
        return row.manifest_sha256, size
    if path == SIGNATURE_NAME and row.signature_sha256 is not None:
        size = session.scalar(select(Blob.size).where(Blob.sha256 == row.signature_sha256)) or 0
        return row.signature_sha256, size
    entry = (
        session.scalar(select(File).where(File.version_id == row.id, File.path == path))
        if "\x00" not in path and len(path) <= 1024
        else None
    )
    if entry is None:
        raise NotFound(
            f"{publisher}/{name}/{row.version} has no file {path[:200]!r}; its manifest lists the files",
            code="file_not_found",
        )
    return entry.sha256, entry.size


def list_publisher(session: Session, publisher: str, *, reader: Token | None = None) -> PublisherDetail:
    """A publisher and its modules (those with at least one non-yanked version), by name.

    A publisher whose every module is private to ``reader`` does not exist for it."""
    valid = _valid_names(publisher)
    row = session.scalar(select(Publisher).where(Publisher.name == publisher)) if valid else None
    hidden = row is not None and (
        session.scalar(select(func.count()).where(Module.publisher_id == row.id, readable(reader))) == 0
        and session.scalar(select(func.count()).where(Module.publisher_id == row.id)) != 0
    )
    if row is None or hidden:
        raise NotFound(f"no publisher {publisher[:64]!r} on this hub", code="publisher_not_found")
    modules = session.scalars(
        select(Module)
        .where(Module.publisher_id == row.id, Module.latest_version.is_not(None), readable(reader))
        .order_by(Module.name)
    ).all()
    return PublisherDetail(name=row.name, created_at=row.created_at, modules=[summarize(m) for m in modules])


def blob_size(session: Session, sha256: str, *, reader: Token | None = None) -> int:
    """Size of a blob that some version of a module ``reader`` may see references."""
    size = session.scalar(select(Blob.size).where(Blob.sha256 == sha256))
    used = (
        select(Version.id)
        .join(Version.module)
        .where(
            or_(Version.manifest_sha256 == sha256, Version.files.any(File.sha256 == sha256)),
            readable(reader),
        )
        .limit(1)
    )
    if size is None or session.scalar(used) is None:
        raise NotFound(f"no blob {sha256!r} on this hub", code="blob_not_found")
    return size
