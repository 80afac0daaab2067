"""Saved training datasets: immutable, named results of a point-in-time join.

One row per dataset: what was asked (features, service, created-time cutoff), what it read
(the registry version of every view), what came out (entity time range, rows, the files and
their sha256) and a profile per feature computed once, when it was saved.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("feature_service", sa.String(128), nullable=True),
        sa.Column("view_versions", sa.Text, nullable=False),
        sa.Column("timestamp_column", sa.String(128), nullable=False),
        sa.Column("entity_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entity_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("created_cutoff", sa.Boolean, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project", "name", name="uq_datasets_project_name"),
    )


def downgrade() -> None:
    op.drop_table("datasets")
