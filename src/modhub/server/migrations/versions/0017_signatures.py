"""Signed versions: the stored modhub.sig blob and the fingerprint of the key that made it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("signature_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("signature_fingerprint", sa.String(80), nullable=True))
        batch.create_foreign_key("fk_versions_signature_blob", "blobs", ["signature_sha256"], ["sha256"])


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_constraint("fk_versions_signature_blob", type_="foreignkey")
        batch.drop_column("signature_fingerprint")
        batch.drop_column("signature_sha256")
