"""Skew checks record which model version they were for: `model` beside `model_version`.

`featurehub skew --model NAME:V` checks only the log rows that version answered, against its
training set; the record says whose rows they were, so the history and the model gate can
tell a check of version 3's traffic from one of the whole service (both null). 0008 reserved
`model_version` (the version number as text, as the serving log holds it); this adds the
model's name and an index for "the newest check of this version".

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("skew_checks") as batch:
        batch.add_column(sa.Column("model", sa.String(128), nullable=True))
    op.create_index(
        "ix_skew_checks_model",
        "skew_checks",
        ["project", "feature_service", "model", "model_version", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_skew_checks_model", table_name="skew_checks")
    with op.batch_alter_table("skew_checks") as batch:
        batch.drop_column("model")
