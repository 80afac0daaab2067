"""Offline commits: when a commit was superseded, so that its files can be removed once no
reader can still be using them.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offline_commits") as batch:
        batch.add_column(sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    # Commits superseded before this migration: count from now, the grace period still holds.
    op.execute("UPDATE offline_commits SET superseded_at = CURRENT_TIMESTAMP WHERE superseded")


def downgrade() -> None:
    with op.batch_alter_table("offline_commits") as batch:
        batch.drop_column("superseded_at")
