"""Private modules: a module is public (default) or private to its publisher's readers.

Revision ID: 0015
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing module stays public.
    with op.batch_alter_table("modules") as batch:
        batch.add_column(sa.Column("private", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("modules") as batch:
        batch.drop_column("private")
