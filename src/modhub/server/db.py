"""Database engine, sessions and migrations.

SQLite is the embedded default. Each SQLite connection gets WAL (readers never
block the writer), foreign keys on, and a busy timeout. Python's sqlite3 module
opens transactions lazily and SQLite then upgrades a read lock to a write lock
on the first write, which fails at once ("database is locked") when another
writer got in between; so transactions are begun by hand, and sessions that
write (``Database.write_session``) begin with ``BEGIN IMMEDIATE``, taking the
write lock up front and waiting for it. PostgreSQL needs none of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from filelock import FileLock
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from modhub.server.config import ServerSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """The engine plus two session factories: reads, and writes (``BEGIN IMMEDIATE`` on SQLite)."""

    def __init__(self, settings: ServerSettings) -> None:
        url = settings.resolved_database_url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, settings.sqlite_busy_timeout)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(modhub_write=True), expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads (it may also do small writes, such as counting downloads)."""
        with self._read() as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session that holds the write lock from its first statement (SQLite)."""
        with self._write() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (see module docstring).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("modhub_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# Any constant; PostgreSQL advisory locks are named by a 64-bit integer.
_MIGRATE_LOCK_KEY = 0x6D6F64687562  # "modhub"


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrate(db: Database, settings: ServerSettings, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default; Alembic). Safe to run on every start.

    Servers starting at once (several workers, several machines) must not
    migrate concurrently: on PostgreSQL a transaction-level advisory lock makes
    them take turns (the others then find nothing to do); SQLite lives in the
    data directory, so a file lock there does the same.
    """
    from alembic import command

    config = _alembic_config()
    if db.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        lock: Any = FileLock(str(settings.data_dir / ".migrate.lock"))
    else:
        lock = nullcontext()
    with lock, db.engine.connect() as conn:
        if db.is_sqlite:
            # A batch migration rebuilds a table (copy, drop, rename); with foreign keys on, dropping
            # a table others reference fails. SQLite ignores this pragma inside a transaction, so
            # it is set on the raw connection first, and the keys are checked before it is set back.
            raw: Any = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK_KEY})
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                if db.is_sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration left rows without their parents: {broken[:5]}")
        finally:
            if db.is_sqlite:
                raw.execute("PRAGMA foreign_keys=ON")


def head_revision() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or "base"


def current_revision(db: Database) -> str | None:
    from alembic.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
