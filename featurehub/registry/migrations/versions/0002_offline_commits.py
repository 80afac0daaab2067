"""Offline store commits: which Parquet files of a view are published, for which interval.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offline_commits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("commit_id", sa.String(64), nullable=False, unique=True),
        sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_offline_commits_view", "offline_commits", ["project", "view", "id"])


def downgrade() -> None:
    op.drop_table("offline_commits")
