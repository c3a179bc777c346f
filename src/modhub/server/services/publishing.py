"""Publishing and yanking versions.

A publish is checked in full before anything is stored: the manifest parses,
the uploaded files are exactly the listed ones with their sizes and sha256,
the task contract holds and the graph passes the safety validator (the same
checks ``modhub.format.verify.verify_module`` runs on the client, via ``check_module``), and, last
(seconds, in a child process), its formats compute the same outputs (``modhub.loading.agree``). Then the
blobs go into storage (content-addressed: identical files are stored once; a
stored blob nobody references yet is invisible and harmless), and finally one
database transaction adds the version and its files. A version is therefore
never half-visible, and since (module, version) is unique, concurrent
publishes of one version end with exactly one winner and 409 for the others.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from modhub.client.records import MemoryRecords
from modhub.errors import ContractError, IntegrityError, InvalidHandle, ManifestError, UnsafeModuleError
from modhub.format.manifest import CARD_NAME, MANIFEST_NAME, Manifest, detect_formats, parse_manifest
from modhub.handles import fold_name, parse_version, validate_name
from modhub.server.db import Database
from modhub.server.errors import BadRequest, Conflict, InvalidModule, Unavailable
from modhub.server.models import Blob, File, Module, Publisher, Token, Version, utcnow
from modhub.server.services.queries import find_module, find_version
from modhub.server.services.schemas import PublishResult, VisibilityResult, YankResult
from modhub.server.services.tokens import require_publisher
from modhub.server.storage import BlobStorage
from modhub.server.uploads import StagedUpload

log = logging.getLogger(__name__)

_REPUBLISH_HINT = (
    "Published versions never change: publish the new files as a new version "
    "(modhub publish without --version picks the next number)."
)
_RETRIES = 10


def check_names(publisher: str, name: str) -> None:
    try:
        validate_name(publisher, "publisher name")
        validate_name(name, "module name")
    except InvalidHandle as exc:
        raise BadRequest(str(exc), code="invalid_name") from None


def parse_version_field(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_version(value)
    except InvalidHandle as exc:
        raise BadRequest(str(exc)) from None


def parse_private_field(value: str | None) -> bool | None:
    if value is None:
        return None
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadRequest(f"invalid private {value[:20]!r}: send true or false (or leave it out)")


def validate_upload(upload: StagedUpload) -> Manifest:
    """Every check the client runs, on the staged upload; raises InvalidModule (422) saying the fix."""
    try:
        manifest = parse_manifest(upload.manifest)
    except ManifestError as exc:
        raise InvalidModule(f"{exc} Fix modhub.json and publish again.", code="invalid_manifest") from None
    listed = {entry.path: entry for entry in manifest.files}
    missing = sorted(set(listed) - set(upload.files))
    if missing:
        raise InvalidModule(
            f"modhub.json lists files that were not uploaded: {missing}. Publish the whole module "
            "directory (modhub publish DIR publisher/name sends every listed file).",
            code="missing_file",
        )
    extra = sorted(set(upload.files) - set(listed))
    if extra:
        raise InvalidModule(
            f"uploaded files not listed in modhub.json: {extra}. Remove them or re-export the module "
            "so that the manifest lists them.",
            code="unexpected_file",
        )
    # The upload hashed every file as it arrived: those hashes vouch for the staged files
    # (as long as their fstat is unchanged), so the checks below read only what they use.
    records = MemoryRecords()
    for path, staged in upload.files.items():
        entry = listed[path]
        if (staged.size, staged.sha256) != (entry.size, entry.sha256):
            raise InvalidModule(
                f"{path}: uploaded {staged.size} bytes with sha256 {staged.sha256}, but modhub.json says "
                f"{entry.size} bytes with sha256 {entry.sha256}. The file changed after the manifest "
                "was written: re-export the module, then publish again.",
                code="integrity_error",
            )
        if staged.stat is not None:
            records.mark_verified(upload.module_dir / path, entry, staged.stat)
    (upload.module_dir / MANIFEST_NAME).write_bytes(upload.manifest)
    _verify_module(upload.module_dir, records)
    return manifest


def check_upload_signature(upload: StagedUpload, manifest: Manifest) -> str | None:
    """The fingerprint of the key that signed the upload (None: unsigned); 422 if it does not hold.

    Same rule as the client's (``modhub.format.signature``): the signed per-file sha256 are exactly
    ``modhub.json``'s and the listed files'.
    """
    from modhub.errors import SigningError
    from modhub.format.signature import check_published_signature

    if upload.signature is None and upload.signing_key is None:
        return None
    if upload.signature is None or upload.signing_key is None:
        raise BadRequest(
            "send both 'signature' (the module's modhub.sig) and 'signing_key' (the PEM public key "
            "that made it), or neither (modhub publish DIR --signing-key KEY.pub sends both)",
            code="invalid_signature",
            status=400,  # a malformed request, not a signature that fails (ERROR_CODES' 422)
        )
    try:
        return check_published_signature(upload.signature, upload.signing_key, manifest, upload.manifest)
    except SigningError as exc:
        raise InvalidModule(str(exc), code="invalid_signature") from None


def _verify_module(module_dir: Path, records: MemoryRecords | None = None) -> None:
    try:
        from modhub.format.verify import check_module
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise Unavailable(
            f"this hub cannot check graphs ({exc}); it refuses publishes until the modhub safety "
            "validator is installed. Tell the hub's operator.",
            code="safety_unavailable",
        ) from None
    try:
        check_module(module_dir, records=records, saved_model=True)
    except ImportError as exc:
        raise Unavailable(
            f"this hub cannot check graphs ({exc}); it refuses publishes until the modhub safety "
            "validator is installed. Tell the hub's operator.",
            code="safety_unavailable",
        ) from None
    except ManifestError as exc:
        raise InvalidModule(f"{exc}", code="invalid_manifest") from None
    except IntegrityError as exc:
        raise InvalidModule(f"{exc}", code="integrity_error") from None
    except ContractError as exc:
        raise InvalidModule(
            f"{exc}. Export the module so that it meets its task's contract (see docs), then publish again.",
            code="contract_error",
        ) from None
    except UnsafeModuleError as exc:
        raise InvalidModule(
            f"{exc}. The hub refuses graphs that could run code when loaded; re-export the model "
            "with modhub.export (plain aten ops only).",
            code="unsafe_module",
        ) from None


def _check_formats_agree(module_dir: Path) -> None:
    """Refuse a module whose formats compute different outputs (``modhub.loading.agree``)."""
    from modhub.loading.agree import check_formats_agree

    report = check_formats_agree(module_dir)
    if report.unchecked is not None:
        raise InvalidModule(
            f"the hub could not check that this module's formats compute the same outputs: "
            f"{report.unchecked}. Publish fewer formats (e.g. without model.onnx), or ask the hub's "
            "operator about the limit (docs/security.md, 'Formats agree').",
            code="formats_unchecked",
        )
    if report.problems:
        raise InvalidModule(
            "this module's formats compute different outputs on the same probe inputs: "
            f"{'; '.join(report.problems)}. Export every format from the same model "
            "(hub.export(..., onnx=True)) and publish again.",
            code="formats_disagree",
        )
    for note in report.notes():
        log.info("formats of %s: %s", module_dir.name, note)


def store_blobs(storage: BlobStorage, upload: StagedUpload) -> str:
    """Move every staged file into blob storage; return the manifest's sha256."""
    for staged in upload.files.values():
        storage.put_file(upload.module_dir / staged.path, staged.sha256)
    return storage.put_stream([upload.manifest])


def publish_version(
    db: Database,
    storage: BlobStorage,
    *,
    token: Token,
    publisher: str,
    name: str,
    upload: StagedUpload,
) -> PublishResult:
    """Validate a staged upload and publish it as ``publisher/name/<version>``."""
    check_names(publisher, name)
    require_publisher(token, publisher)
    requested = parse_version_field(upload.version)
    private = parse_private_field(upload.private)
    manifest = validate_upload(upload)
    signed_by = check_upload_signature(upload, manifest)
    card = ""
    card_file = upload.module_dir / CARD_NAME
    if CARD_NAME in upload.files:
        card = card_file.read_bytes().decode("utf-8", "replace")
    with db.session() as session:  # fail early, before storing anything
        _precheck(session, publisher, name, requested)
    _check_formats_agree(upload.module_dir)  # the costly check last: seconds, in a child process
    manifest_sha = store_blobs(storage, upload)
    sizes = {f.sha256: f.size for f in upload.files.values()}
    sizes[manifest_sha] = len(upload.manifest)
    signature_sha = None
    if signed_by is not None and upload.signature is not None:
        signature_sha = storage.put_stream([upload.signature])
        sizes[signature_sha] = len(upload.signature)
    for attempt in range(_RETRIES):
        try:
            with db.write_session() as session:
                number = _insert(
                    session,
                    publisher=publisher,
                    name=name,
                    requested=requested,
                    manifest=manifest,
                    manifest_sha=manifest_sha,
                    card=card,
                    upload=upload,
                    sizes=sizes,
                    token_id=token.id,
                    private=private,
                    signature=(signature_sha, signed_by),
                )
                session.commit()
            return PublishResult(handle=f"{publisher}/{name}/{number}", version=number)
        except sa_exc.IntegrityError:
            # A concurrent publish got in first (same publisher, module, blob or version):
            # start over; the checks in _insert now see its rows.
            log.info("publish %s/%s: retrying after a concurrent write (%s)", publisher, name, attempt)
            time.sleep(random.uniform(0, 0.05 * (attempt + 1)))
    raise Conflict(
        f"could not publish {publisher}/{name}: too many concurrent publishes. Try again.",
        code="conflict",
    )


def _lookalike(session: Session, publisher: str, name: str) -> Module | None:
    folded = f"{fold_name(publisher)}/{fold_name(name)}"
    return session.scalar(select(Module).where(Module.folded == folded))


def _find(session: Session, publisher: str, name: str, *, lock: bool = False) -> Module | None:
    stmt = select(Module).join(Module.publisher).where(Publisher.name == publisher, Module.name == name)
    if lock:
        # PostgreSQL: publishes of one module take turns (the next number is computed under the lock).
        # SQLite: a no-op; BEGIN IMMEDIATE already serialises writers.
        stmt = stmt.with_for_update(of=Module)
    return session.scalar(stmt)


def _precheck(session: Session, publisher: str, name: str, requested: int | None) -> None:
    module = _find(session, publisher, name)
    if module is None:
        _refuse_lookalike(session, publisher, name)
    elif requested is not None:
        _refuse_existing(session, module, publisher, name, requested)


def _refuse_lookalike(session: Session, publisher: str, name: str) -> None:
    clash = _lookalike(session, publisher, name)
    # The module itself may have been committed by a concurrent publish since the caller looked
    # (PostgreSQL's READ COMMITTED: each statement sees the newest commits): not a look-alike.
    if clash is not None and (clash.publisher.name, clash.name) != (publisher, name):
        if clash.private:
            # Naming it would leak a private module's name to whoever guesses a look-alike.
            raise Conflict(
                f"{publisher}/{name} is too close to the name of an existing module ('-', '_', '.', "
                "and look-alike letters and digits count as the same); choose a clearly different name.",
                code="lookalike_name",
            )
        raise Conflict(
            f"{publisher}/{name} looks like the existing module {clash.publisher.name}/{clash.name} "
            "('-', '_', '.', and look-alike letters and digits count as the same); choose a clearly "
            "different name, or publish a new version of that module if it is yours.",
            code="lookalike_name",
        )


def _refuse_existing(session: Session, module: Module, publisher: str, name: str, number: int) -> None:
    exists = session.scalar(
        select(Version.id).where(Version.module_id == module.id, Version.version == number)
    )
    if exists is not None:
        raise Conflict(
            f"{publisher}/{name}/{number} is already published. {_REPUBLISH_HINT}", code="version_exists"
        )


def _insert(
    session: Session,
    *,
    publisher: str,
    name: str,
    requested: int | None,
    manifest: Manifest,
    manifest_sha: str,
    card: str,
    upload: StagedUpload,
    sizes: dict[str, int],
    token_id: int,
    private: bool | None = None,
    signature: tuple[str | None, str | None] = (None, None),
) -> int:
    pub = session.scalar(select(Publisher).where(Publisher.name == publisher))
    if pub is None:
        pub = Publisher(name=publisher)
        session.add(pub)
        session.flush()
    module = _find(session, publisher, name, lock=True)
    if module is None:
        _refuse_lookalike(session, publisher, name)
        module = _find(session, publisher, name, lock=True)  # committed meanwhile (see above)
    if module is None:
        module = Module(
            publisher=pub,
            name=name,
            folded=f"{fold_name(publisher)}/{fold_name(name)}",
            downloads=0,
            tags=[],
            private=bool(private),
        )
        session.add(module)
        session.flush()
    elif private is not None:
        module.private = private
    if requested is None:
        number = (
            session.scalar(select(func.max(Version.version)).where(Version.module_id == module.id)) or 0
        ) + 1
    else:
        _refuse_existing(session, module, publisher, name, requested)
        number = requested
    for sha256, size in sizes.items():
        if session.get(Blob, sha256) is None:
            session.add(Blob(sha256=sha256, size=size))
    session.flush()
    version = Version(
        module=module,
        version=number,
        manifest_sha256=manifest_sha,
        manifest=manifest.model_dump(mode="json"),
        card=card,
        size=upload.total_size,
        yanked=False,
        yank_reason="",
        token_id=token_id,
        signature_sha256=signature[0],
        signature_fingerprint=signature[1],
    )
    session.add(version)
    for staged in upload.files.values():
        session.add(File(version=version, path=staged.path, sha256=staged.sha256, size=staged.size))
    session.flush()
    refresh_module(session, module, touched=True)
    session.execute(
        update(Token)
        .where(Token.id == token_id)
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return number


def refresh_module(session: Session, module: Module, *, touched: bool = False) -> None:
    """Copy the latest non-yanked version's summary onto the module row (None: hide from search)."""
    latest = session.scalar(
        select(Version)
        .where(Version.module_id == module.id, Version.yanked.is_(False))
        .order_by(Version.version.desc())
        .limit(1)
    )
    if touched:
        module.updated_at = utcnow()
    if latest is None:
        module.latest_version = None
        return
    module.latest_version = latest.version
    _apply_summary(module, latest.manifest)


def _apply_summary(module: Module, manifest: dict[str, Any]) -> None:
    meta = manifest.get("metadata") or {}
    paths = {entry["path"] for entry in manifest.get("files", [])}
    formats = detect_formats(paths)
    tags = [str(tag) for tag in meta.get("tags", [])]
    module.task = manifest.get("task", "")
    module.framework = manifest.get("framework", "")
    module.license = manifest.get("license", "")
    module.formats = f" {' '.join(formats)} " if formats else ""
    module.title = (meta.get("title") or "")[:300]
    module.description = meta.get("description") or ""
    module.tags = tags
    module.search_text = " ".join(
        [module.publisher.name, module.name, module.title, module.description, module.task, *tags]
    ).lower()


def change_visibility(
    session: Session, *, token: Token, publisher: str, name: str, private: bool
) -> VisibilityResult:
    """Make a module private or public. A module the token may not even read is 404 (no name
    leaks); one it may read but not publish under is 403. The caller commits."""
    module = find_module(session, publisher, name, reader=token)
    require_publisher(token, publisher)
    module.private = private
    module.updated_at = utcnow()
    session.flush()
    return VisibilityResult(handle=f"{publisher}/{name}", private=module.private)


def yank_version(
    session: Session, *, token: Token, publisher: str, name: str, version: int, reason: str
) -> YankResult:
    """Hide a version from "latest" and search; it stays downloadable by its full handle.

    Yanking twice is harmless. The caller commits.
    """
    require_publisher(token, publisher)
    row = find_version(session, publisher, name, version, reader=token)
    if not row.yanked:
        row.yanked = True
        row.yank_reason = reason
        row.yanked_at = utcnow()
        session.flush()
        refresh_module(session, row.module)
    return YankResult(
        handle=f"{publisher}/{name}/{row.version}",
        version=row.version,
        yanked=True,
        yank_reason=row.yank_reason,
    )
