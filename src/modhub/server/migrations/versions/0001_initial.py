"""Initial schema: publishers, modules, versions, files, blobs, tokens.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publishers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("publishers", sa.JSON(), nullable=False),
        sa.Column("admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("tokens.id"), nullable=True),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.Column("last_used_at", _TS, nullable=True),
    )
    op.create_table(
        "modules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "publisher_id", sa.Integer(), sa.ForeignKey("publishers.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("folded", sa.String(140), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("framework", sa.String(32), nullable=False),
        sa.Column("license", sa.String(64), nullable=False),
        sa.Column("formats", sa.String(64), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.UniqueConstraint("publisher_id", "name", name="uq_modules_publisher_name"),
    )
    op.create_index("ix_modules_publisher_id", "modules", ["publisher_id"])
    op.create_index("ix_modules_updated_at", "modules", ["updated_at"])
    op.create_index("ix_modules_downloads", "modules", ["downloads"])
    op.create_index("ix_modules_task", "modules", ["task"])
    op.create_index("ix_modules_license", "modules", ["license"])
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "module_id", sa.Integer(), sa.ForeignKey("modules.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("manifest_sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("card", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("yanked", sa.Boolean(), nullable=False),
        sa.Column("yank_reason", sa.Text(), nullable=False),
        sa.Column("yanked_at", _TS, nullable=True),
        sa.Column("token_id", sa.Integer(), sa.ForeignKey("tokens.id"), nullable=True),
        sa.UniqueConstraint("module_id", "version", name="uq_versions_module_version"),
    )
    op.create_index("ix_versions_module_id", "versions", ["module_id"])
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "version_id", sa.Integer(), sa.ForeignKey("versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("blobs.sha256"), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("version_id", "path", name="uq_files_version_path"),
    )
    op.create_index("ix_files_version_id", "files", ["version_id"])
    op.create_index("ix_files_sha256", "files", ["sha256"])


def downgrade() -> None:
    for table in ("files", "versions", "modules", "tokens", "blobs", "publishers"):
        op.drop_table(table)
