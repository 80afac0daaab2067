"""Skew check results: one row per `featurehub skew` / `store.check_skew` run.

What a scheduler or a chart needs without re-running anything: the service, the window, the
dataset compared against, whether it passed and why, the sample, and the whole result as the
documented JSON (`SkewReport.to_dict()`, docs/skew-checks.md), per-feature figures included.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "skew_checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("feature_service", sa.String(128), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dataset", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("sample", sa.Float, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("rows_served", sa.BigInteger, nullable=False),
        sa.Column("failed_features", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_skew_checks_service", "project", "feature_service", "id"),
    )


def downgrade() -> None:
    op.drop_table("skew_checks")
