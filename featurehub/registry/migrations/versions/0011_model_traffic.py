"""Model traffic policies: which versions of a model a feature server routes requests to.

Append-only: every change (by `featurehub models traffic`, or a server's automatic canary
rollback) is a new row, so the newest row of a model is its policy now and the rows before
it are the history of who changed it, when and why.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_traffic",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("percent", sa.Float, nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_model_traffic_model", "project", "model", "id"),
    )


def downgrade() -> None:
    op.drop_table("model_traffic")
