"""Database setup: migrations on a fresh data dir, idempotent restarts, schema == models, SQLite pragmas."""

from __future__ import annotations

import hashlib
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.db import MIGRATIONS_DIR, current_revision
from modhub.server.models import Base


def _head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def test_fresh_dir_is_migrated_and_restart_is_idempotent(tmp_path: Path, database_url: str | None) -> None:
    settings = ServerSettings(data_dir=tmp_path / "fresh" / "hub", database_url=database_url)
    hub = create_hub(settings)
    assert current_revision(hub.db) == _head()
    with hub.db.write_session() as session:
        session.execute(text("INSERT INTO publishers (name, created_at) VALUES ('kept', CURRENT_TIMESTAMP)"))
        session.commit()
    hub.db.dispose()
    again = create_hub(settings)  # a restart: migrations run again, nothing changes
    assert current_revision(again.db) == _head()
    with again.db.session() as session:
        assert session.scalar(text("SELECT name FROM publishers")) == "kept"
    again.db.dispose()


def test_migrations_match_the_models(tmp_path: Path, database_url: str | None) -> None:
    hub = create_hub(ServerSettings(data_dir=tmp_path, database_url=database_url))
    with hub.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    hub.db.dispose()
    assert diff == []


def test_sqlite_pragmas(tmp_path: Path) -> None:
    hub = create_hub(ServerSettings(data_dir=tmp_path))
    with hub.db.session() as session:
        assert session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert session.scalar(text("PRAGMA foreign_keys")) == 1
        assert session.scalar(text("PRAGMA busy_timeout")) > 0
    hub.db.dispose()


def test_leftover_uploads_are_removed_on_start(tmp_path: Path) -> None:
    settings = ServerSettings(data_dir=tmp_path)
    stale = settings.staging_dir / "upload-crashed"
    stale.mkdir(parents=True)
    (stale / "part").write_bytes(b"x")
    create_hub(settings).db.dispose()  # as `modhub admin` does, next to a running server
    assert stale.exists()
    create_hub(settings, clean_staging=True).db.dispose()  # as a starting server does
    assert not stale.exists()


def test_upgrade_from_the_first_schema_keeps_the_data(
    tmp_path: Path, database_url: str | None, feature_module: Path
) -> None:
    """A hub created by the first released schema (0001), with a module, blobs and tokens in it,
    is upgraded in place on start: everything still reads, verifies and authenticates."""
    import json
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from modhub.format.manifest import MANIFEST_NAME, read_manifest
    from modhub.server.app import create_app
    from modhub.server.db import Database, head_revision, migrate
    from modhub.server.services.tokens import hash_token
    from modhub.server.storage import LocalBlobStorage

    settings = ServerSettings(data_dir=tmp_path / "old", database_url=database_url)
    old = Database(settings)
    migrate(old, settings, revision="0001")
    assert current_revision(old) == "0001"
    store = LocalBlobStorage(settings.resolved_blob_dir)
    manifest = read_manifest(feature_module)
    raw_manifest = (feature_module / MANIFEST_NAME).read_bytes()
    manifest_sha = store.put_stream([raw_manifest])
    for entry in manifest.files:
        store.put_stream([(feature_module / entry.path).read_bytes()], expected_sha256=entry.sha256)
    now = datetime.now(UTC)
    with old.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO publishers (id, name, created_at) VALUES (1, 'acme', :now)"), {"now": now}
        )
        blobs = {manifest_sha: len(raw_manifest), **{e.sha256: e.size for e in manifest.files}}
        for sha, size in blobs.items():
            conn.execute(
                text("INSERT INTO blobs (sha256, size, created_at) VALUES (:sha, :size, :now)"),
                {"sha": sha, "size": size, "now": now},
            )
        for token_id, secret, admin in ((1, "mh_old-publisher", False), (2, "mh_old-admin", True)):
            conn.execute(
                text(
                    "INSERT INTO tokens (id, name, token_hash, publishers, admin, created_at) "
                    "VALUES (:id, 'old', :hash, :pubs, :admin, :now)"
                ),
                {"id": token_id, "hash": hash_token(secret), "pubs": '["acme"]', "admin": admin, "now": now},
            )
        conn.execute(
            text(
                "INSERT INTO modules (id, publisher_id, name, folded, created_at, updated_at, downloads, "
                "latest_version, task, framework, license, formats, title, description, tags, search_text) "
                "VALUES (1, 1, 'tiny', 'acme/tiny', :now, :now, 7, 1, :task, 'torch', 'Apache-2.0', ' pt2 ', "
                "'Tiny features', '', '[]', 'acme tiny tiny features')"
            ),
            {"now": now, "task": manifest.task},
        )
        conn.execute(
            text(
                "INSERT INTO versions (id, module_id, version, created_at, manifest_sha256, manifest, card, "
                "size, yanked, yank_reason, token_id) "
                "VALUES (1, 1, 1, :now, :sha, :manifest, '', :size, :no, '', 1)"
            ),
            {
                "now": now,
                "sha": manifest_sha,
                "manifest": json.dumps(manifest.model_dump(mode="json")),
                "size": sum(e.size for e in manifest.files),
                "no": False,
            },
        )
        for i, entry in enumerate(manifest.files, start=1):
            conn.execute(
                text(
                    "INSERT INTO files (id, version_id, path, sha256, size) "
                    "VALUES (:id, 1, :path, :sha, :size)"
                ),
                {"id": i, "path": entry.path, "sha": entry.sha256, "size": entry.size},
            )
    old.dispose()

    with TestClient(create_app(settings)) as client:  # starting the hub upgrades it
        assert current_revision(client.app.state.hub.db) == head_revision()  # type: ignore[attr-defined]
        module = client.get("/api/v1/modules/acme/tiny").json()
        assert (module["latest_version"], module["downloads"], module["private"]) == (1, 7, False)
        for entry in manifest.files:
            response = client.get(f"/api/v1/modules/acme/tiny/versions/1/files/{entry.path}")
            assert (
                response.status_code == 200 and hashlib.sha256(response.content).hexdigest() == entry.sha256
            )
        me = client.get("/api/v1/tokens/me", headers={"Authorization": "Bearer mh_old-publisher"}).json()
        assert me["scope"] == "publish" and me["publishers"] == ["acme"]
        admin = client.get("/api/v1/tokens/me", headers={"Authorization": "Bearer mh_old-admin"}).json()
        assert admin["scope"] == "admin"
        assert [i["handle"] for i in client.get("/api/v1/modules").json()["items"]] == ["acme/tiny"]
