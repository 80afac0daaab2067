"""Models: immutable versions, the aliases that point at them, and the aliases' history.

A version row is written once (artifact sha256, feature service and its registry version,
training dataset and its fingerprint, metrics, params, signature) and never updated. The
lifecycle is kept beside it: which version holds each alias now, which versions are
archived, and an append-only history of every change (who, when, why, forced or not).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("flavor", sa.String(16), nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("artifact_path", sa.Text, nullable=False),
        sa.Column("feature_service", sa.String(128), nullable=False),
        sa.Column("feature_service_version", sa.Integer, nullable=False),
        sa.Column("training_dataset", sa.String(128), nullable=False),
        sa.Column("training_dataset_fingerprint", sa.String(64), nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project", "name", "version", name="uq_model_versions_version"),
    )
    op.create_table(
        "model_aliases",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("alias", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "model_archived",
        sa.Column("project", sa.String(128), primary_key=True),
        sa.Column("model", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("gate", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_model_alias_history_model", "project", "model", "id"),
    )


def downgrade() -> None:
    op.drop_table("model_alias_history")
    op.drop_table("model_archived")
    op.drop_table("model_aliases")
    op.drop_table("model_versions")
