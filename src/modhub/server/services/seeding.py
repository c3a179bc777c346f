"""Publish module directories straight into a hub's data directory (``modhub admin seed``).

``make serve`` uses this to put the starter modules on the hub before it
starts. It runs the same checks and the same publishing transaction as an
upload over HTTP; only the transport differs. Seeding is idempotent: a module
whose latest version has the same manifest is skipped, so running
``make serve`` again publishes nothing new.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from modhub.format.digests import sha256_file
from modhub.format.manifest import MANIFEST_NAME, read_manifest
from modhub.server.deps import Hub
from modhub.server.models import Module, Publisher, Token, Version
from modhub.server.services.publishing import publish_version
from modhub.server.services.tokens import create_token, revoke_token_as_operator
from modhub.server.uploads import StagedFile, StagedUpload


@dataclass(frozen=True)
class SeedResult:
    handle: str
    # "published", or "unchanged" when the latest version has the same manifest.
    status: str


def _latest_manifest_sha(hub: Hub, publisher: str, name: str) -> str | None:
    with hub.db.session() as session:
        return session.scalar(
            select(Version.manifest_sha256)
            .join(Version.module)
            .join(Module.publisher)
            .where(Publisher.name == publisher, Module.name == name, Version.yanked.is_(False))
            .order_by(Version.version.desc())
            .limit(1)
        )


def _stage(module_dir: Path, staging: Path) -> StagedUpload:
    """Copy a module into a staging directory, as an upload would have left it."""
    manifest = read_manifest(module_dir)
    upload = StagedUpload(module_dir=staging / "module", manifest=(module_dir / MANIFEST_NAME).read_bytes())
    for entry in manifest.files:
        target = upload.module_dir / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module_dir / entry.path, target)
        upload.files[entry.path] = StagedFile(
            path=entry.path, size=target.stat().st_size, sha256=sha256_file(target)
        )
    return upload


def seed(hub: Hub, module_dirs: list[Path], publisher: str) -> list[SeedResult]:
    """Publish each directory as ``publisher/<directory name>`` unless its latest version is identical."""
    results: list[SeedResult] = []
    todo: list[Path] = []
    for module_dir in module_dirs:
        read_manifest(module_dir)  # a clear error for a directory that is not a module
        if _latest_manifest_sha(hub, publisher, module_dir.name) == sha256_file(module_dir / MANIFEST_NAME):
            results.append(SeedResult(f"{publisher}/{module_dir.name}", "unchanged"))
        else:
            todo.append(module_dir)
    if not todo:
        return results
    # A short-lived token records who published (versions keep its id); revoked when done.
    with hub.db.write_session() as session:
        created = create_token(session, name="modhub admin seed", publishers=[publisher])
        session.commit()
    try:
        with hub.db.session() as session:
            token = session.get(Token, created.id)
            assert token is not None  # created just above
            session.expunge(token)
        for module_dir in todo:
            staging = hub.new_staging()
            try:
                upload = _stage(module_dir, staging)
                result = publish_version(
                    hub.db, hub.storage, token=token, publisher=publisher, name=module_dir.name, upload=upload
                )
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            results.append(SeedResult(result.handle, "published"))
    finally:
        with hub.db.write_session() as session:
            revoke_token_as_operator(session, created.id)
            session.commit()
    return results
