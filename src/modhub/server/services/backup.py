"""Backups of a hub while it serves (``modhub admin backup OUT``), and restoring one (``restore``).

A backup is a directory:

    backup.json            what it is: format_version, schema revision, row counts, blob store
    database/<table>.jsonl one JSON object per row, every table of the schema
    blobs/<aa>/<bb>/<sha>  the blobs (local blob store): exactly those the rows name, verified
    blobs.txt              or, for object storage, the list "<sha256> <size>" the rows need

Consistency: every table is read in one read-only transaction, a snapshot (SQLite's WAL gives a
reader a fixed view of the database; PostgreSQL runs it REPEATABLE READ). A publish commits its
rows after its blobs are stored, so every blob the snapshot names is in the store; a publish
still in progress is either wholly in the snapshot or not at all. The directory is written under
a temporary name and renamed at the end: a backup that exists is complete.

The rows are written in a portable form (datetimes tagged), so a backup of a SQLite hub restores
into PostgreSQL and the other way round. Restoring creates the schema at the backup's revision in
an empty database, inserts the rows in one transaction and then upgrades to this code's newest
revision, so an older backup restores into a newer hub. Blobs go into the target's blob store
first (any backend: a local backup restores into S3 too); for a backup that only lists blobs,
the target store must already hold every one of them.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, inspect, select, text

from modhub.errors import BackupError, IntegrityError
from modhub.format.atomic import replace_directory
from modhub.format.digests import read_chunks, sha256_stream
from modhub.server.config import ServerSettings
from modhub.server.db import Database, current_revision, migrate
from modhub.server.deps import Hub
from modhub.server.models import Blob
from modhub.server.storage import BlobStorage, LocalBlobStorage, check_sha256, open_storage

FORMAT_VERSION = 1
MANIFEST = "backup.json"
_SKIP_TABLES = frozenset({"alembic_version"})


@dataclass(frozen=True)
class BackupReport:
    path: Path
    revision: str
    rows: dict[str, int]
    blobs: int
    blob_bytes: int
    # "copied" (local blob store) or "listed" (object storage).
    blob_mode: str


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return {"$datetime": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in a backup")


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$datetime"}:
        return datetime.fromisoformat(obj["$datetime"])
    return obj


def _tables(conn: Connection) -> MetaData:
    metadata = MetaData()
    metadata.reflect(conn)
    return metadata


@contextmanager
def _snapshot(db: Database) -> Iterator[Connection]:
    """A connection inside one read-only snapshot transaction."""
    conn = db.engine.connect()
    if not db.is_sqlite:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            yield conn
    finally:
        conn.close()


def write_backup(hub: Hub, out: Path) -> BackupReport:
    """Write a consistent backup of ``hub`` to the new directory ``out``."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupError(f"{out} already exists and is not empty; name a new directory for the backup")
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    partial.mkdir(parents=True)
    try:
        report = _write(hub, partial, out)
        # Appears whole or not at all (an empty ``out`` given by the user is replaced).
        replace_directory(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return report


def _write(hub: Hub, folder: Path, final: Path) -> BackupReport:
    (folder / "database").mkdir()
    rows: dict[str, int] = {}
    with _snapshot(hub.db) as conn:
        revision = _revision(conn)
        metadata = _tables(conn)
        for table in metadata.sorted_tables:
            if table.name in _SKIP_TABLES:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            count = 0
            with open(folder / "database" / f"{table.name}.jsonl", "w", encoding="utf-8") as fh:
                for row in conn.execute(select(table).order_by(*order)):
                    fh.write(json.dumps(dict(row._mapping), default=_encode, sort_keys=True) + "\n")
                    count += 1
            rows[table.name] = count
        named = conn.execute(select(Blob.sha256, Blob.size).order_by(Blob.sha256))
        blobs = [(str(sha), int(size)) for sha, size in named]
    local = isinstance(hub.storage, LocalBlobStorage)
    if local:
        for sha256, size in blobs:
            _copy_blob(hub.storage, sha256, size, folder / "blobs" / sha256[:2] / sha256[2:4] / sha256)
    else:
        missing = [sha for sha, _ in blobs if not hub.storage.exists(sha)]
        if missing:
            raise BackupError(
                f"the blob store lacks {len(missing)} blob(s) the database names (e.g. {missing[0]}); "
                "the hub is damaged: run `modhub admin gc --dry-run` and tell whoever runs the store"
            )
        (folder / "blobs.txt").write_text("".join(f"{sha} {size}\n" for sha, size in blobs))
    report = BackupReport(
        path=final,
        revision=revision,
        rows=rows,
        blobs=len(blobs),
        blob_bytes=sum(size for _, size in blobs),
        blob_mode="copied" if local else "listed",
    )
    header = {
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "revision": revision,
        "database": hub.db.engine.dialect.name,
        "blob_store": getattr(hub.storage, "url", "local"),
        "blob_mode": report.blob_mode,
        "rows": rows,
        "blobs": report.blobs,
        "blob_bytes": report.blob_bytes,
    }
    (folder / MANIFEST).write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
    return report


def _revision(conn: Connection) -> str:
    from alembic.migration import MigrationContext

    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is None:
        raise BackupError("this database has no modhub schema yet: there is nothing to back up")
    return revision


def _copy_blob(storage: BlobStorage, sha256: str, size: int, target: Path) -> None:
    """Copy one blob, hashing on the way: a backup never holds bytes that do not match their name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = storage.open(sha256)
    except FileNotFoundError:
        raise BackupError(
            f"blob {sha256} is named by the database but missing from the blob store; the hub is "
            "damaged (restore it from an earlier backup, or publish that version again)"
        ) from None
    with source, open(target, "wb") as fh:
        digest, copied = sha256_stream(source, sink=fh.write)
    if digest != sha256 or copied != size:
        raise IntegrityError(f"blob {sha256} in the blob store is damaged; the backup was not written")


# --- restore -------------------------------------------------------------------------


def read_header(backup: Path) -> dict[str, Any]:
    try:
        header: dict[str, Any] = json.loads((Path(backup) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BackupError(f"{backup} is not a modhub backup ({MANIFEST}: {exc})") from None
    if header.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{backup} has backup format {header.get('format_version')!r}; this modhub reads "
            f"format {FORMAT_VERSION}"
        )
    return header


def restore_backup(settings: ServerSettings, backup: Path) -> dict[str, Any]:
    """Restore ``backup`` into the empty hub ``settings`` name; returns the backup's header."""
    backup = Path(backup)
    header = read_header(backup)
    db = Database(settings)
    if db.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        with db.engine.connect() as conn:
            existing = [t for t in inspect(conn).get_table_names() if t not in _SKIP_TABLES]
        if existing or current_revision(db) is not None:
            raise BackupError(
                "the target hub is not empty (its database has tables); restore into a new data "
                "directory or an empty database"
            )
        storage = open_storage(settings)
        _restore_blobs(storage, backup, header)
        migrate(db, settings, revision=header["revision"])
        _restore_rows(db, backup)
        migrate(db, settings)
    finally:
        db.dispose()
    return header


def _restore_blobs(storage: BlobStorage, backup: Path, header: dict[str, Any]) -> None:
    if header.get("blob_mode") == "copied":
        root = backup / "blobs"
        for path in sorted(root.glob("??/??/*")):
            sha256 = check_sha256(path.name)
            with open(path, "rb") as fh:
                storage.put_stream(read_chunks(fh), expected_sha256=sha256)
        return
    missing = []
    for line in (backup / "blobs.txt").read_text().splitlines():
        sha256, _, size = line.partition(" ")
        if not storage.exists(check_sha256(sha256)) or storage.size(sha256) != int(size):
            missing.append(sha256)
    if missing:
        raise BackupError(
            f"this backup lists its blobs instead of holding them (it was made from "
            f"{header.get('blob_store')}), and the target blob store lacks {len(missing)} of them "
            f"(e.g. {missing[0]}). Restore with MODHUB_SERVER_BLOB_URL naming that store, or copy "
            "the objects there first."
        )


def _restore_rows(db: Database, backup: Path) -> None:
    with db.engine.begin() as conn:
        metadata = _tables(conn)
        for table in metadata.sorted_tables:
            source = backup / "database" / f"{table.name}.jsonl"
            if table.name in _SKIP_TABLES or not source.is_file():
                continue
            with open(source, encoding="utf-8") as fh:
                rows = [json.loads(line, object_hook=_decode) for line in fh if line.strip()]
            # Parents before children within a table too (tokens.created_by_id): by primary key.
            if rows:
                conn.execute(table.insert(), rows)
            if conn.dialect.name == "postgresql" and "id" in table.columns and rows:
                # Rows came with their ids: move the id sequence past them.
                name = table.name
                sequence = f"pg_get_serial_sequence('{name}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, MAX(id)) FROM {name}"))
