"""Runs know what they covered and when; commits may append.

A run records its kind (a backfill of an event-time interval, an incremental run over an
arrival-time window, or an online rebuild), the moment its data was taken as of (rows visible
after it are left for a later run), the stores it targets, and how many source rows it left
for later or skipped. An offline commit either replaces an event-time interval or appends
the rows that arrived in a window; `as_of` tells which rows a replacing commit already holds.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("materialization_runs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(16), nullable=False, server_default="backfill")
        )
        batch.add_column(sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("targets", sa.String(32), nullable=False, server_default="offline+online")
        )
        batch.add_column(sa.Column("rows_pending", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("rows_skipped", sa.BigInteger, nullable=True))
    with op.batch_alter_table("offline_commits") as batch:
        batch.add_column(sa.Column("mode", sa.String(16), nullable=False, server_default="replace"))
        batch.add_column(sa.Column("as_of", sa.DateTime(timezone=True), nullable=True))
    # Before this revision a commit held every source row of its interval that existed when
    # it was written, and runs were all backfills whose data was taken as of their start.
    op.execute("UPDATE offline_commits SET as_of = committed_at")
    op.execute("UPDATE materialization_runs SET as_of = started_at")


def downgrade() -> None:
    with op.batch_alter_table("offline_commits") as batch:
        batch.drop_column("as_of")
        batch.drop_column("mode")
    with op.batch_alter_table("materialization_runs") as batch:
        for column in ("rows_skipped", "rows_pending", "targets", "as_of", "kind"):
            batch.drop_column(column)
