"""Leases: one holder at a time per named job (a view's materialization), across processes.

A scheduler (or `featurehub materialize-incremental`) holds a view's lease while it runs the
view, renews it by heartbeat, and releases it when done; a holder that dies stops renewing
and its lease expires, so another process takes the view over.

Also each offline commit's newest event time, which freshness is measured from (null for
older commits: their interval's end stands for it).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )

    with op.batch_alter_table("offline_commits") as batch:
        batch.add_column(sa.Column("newest_event", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offline_commits") as batch:
        batch.drop_column("newest_event")
    op.drop_table("leases")
