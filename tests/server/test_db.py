"""Database setup: migrations on a fresh data dir, idempotent restarts, schema == models, SQLite pragmas."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from modhub.server.app import create_hub
from modhub.server.config import ServerSettings
from modhub.server.db import MIGRATIONS_DIR, current_revision
from modhub.server.models import Base


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


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
