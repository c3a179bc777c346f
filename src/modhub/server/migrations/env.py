"""Alembic environment. Run programmatically by ``modhub.server.db.migrate``, which
passes an open connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from modhub.server.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by the plain `alembic` command
    raise SystemExit("run migrations with modhub.server.db.migrate (modhub serve does it on start)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
