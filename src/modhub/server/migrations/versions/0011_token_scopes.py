"""Token scopes (read/publish/admin), expiry, and an index for cascading revocation.

Revision ID: 0011
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("scope", sa.String(16), nullable=False, server_default="publish"))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tokens_created_by_id", ["created_by_id"])
    tokens = sa.table("tokens", sa.column("admin", sa.Boolean()), sa.column("scope", sa.String(16)))
    op.execute(tokens.update().where(tokens.c.admin.is_(True)).values(scope="admin"))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_index("ix_tokens_created_by_id")
        batch.drop_column("expires_at")
        batch.drop_column("scope")
