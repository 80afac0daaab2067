"""The registry's tables (SQLAlchemy Core). Alembic migrations create and evolve them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    # Bumped by every apply that changes something: readers compare it to know when to reload.
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

registry_objects = sa.Table(
    "registry_objects",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

registry_history = sa.Table(
    "registry_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=True),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_registry_history_object", "project", "kind", "name"),
)

offline_commits = sa.Table(
    "offline_commits",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("view", sa.String(128), nullable=False),
    sa.Column("commit_id", sa.String(64), nullable=False, unique=True),
    # mode "replace": rows of this commit replace every older row whose event time is in
    # [start, end). mode "append": the rows that arrived in one window, added to what is
    # there; [start, end) then spans their event times (for superseding).
    sa.Column("mode", sa.String(16), nullable=False, server_default="replace"),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    # True once later commits cover its whole interval: no row of it is visible any more.
    sa.Column("superseded", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    # When it became superseded; its files are deleted a grace period later.
    sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
    # The commit holds the rows visible (max(event, created)) before this moment.
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
    # The latest event time of its rows (from the files' footers): freshness is measured
    # from it. Null for commits written before migration 0010.
    sa.Column("newest_event", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_offline_commits_view", "project", "view", "id"),
)

materialization_runs = sa.Table(
    "materialization_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("view", sa.String(128), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("engine", sa.String(32), nullable=False),
    # running -> success | failed. A run whose process died is failed by the next reader
    # that sees its owner gone (same host, pid not alive) or its heartbeat stale.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=True),
    sa.Column("rows_written", sa.BigInteger, nullable=True),
    sa.Column("online_rows_written", sa.BigInteger, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("host", sa.String(255), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    # backfill: event times in [start, end); incremental: rows that arrived (became visible)
    # in [start, end); online_rebuild: the online store rewritten from the offline store.
    sa.Column("kind", sa.String(16), nullable=False, server_default="backfill"),
    # Rows visible (max(event, created)) before as_of were taken; later ones are left for a
    # later run. Never after the run's start.
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=True),
    sa.Column("targets", sa.String(32), nullable=False, server_default="offline+online"),
    sa.Column("rows_pending", sa.BigInteger, nullable=True),  # in range, not visible yet
    sa.Column("rows_skipped", sa.BigInteger, nullable=True),  # no event timestamp
    sa.Index("ix_materialization_runs_view", "project", "view", "status"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    # JSON: ["view:feature", ...] in the result's column order.
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("feature_service", sa.String(128), nullable=True),
    # JSON: {view: registry version} of every view the join read.
    sa.Column("view_versions", sa.Text, nullable=False),
    sa.Column("timestamp_column", sa.String(128), nullable=False),
    sa.Column("entity_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("entity_end", sa.DateTime(timezone=True), nullable=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    # sha256 over the files' own sha256 (see featurehub/datasets/files.py).
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    # JSON: [{"name", "sha256", "bytes"}, ...] relative to `path`.
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("created_cutoff", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    # JSON: {feature column: profile} (featurehub/datasets/profile.py), computed once.
    sa.Column("profile", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project", "name", name="uq_datasets_project_name"),
)

skew_checks = sa.Table(
    "skew_checks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("feature_service", sa.String(128), nullable=False),
    # The checked window [start, end) of served_at.
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    # The saved training dataset compared against (null: replay only).
    sa.Column("dataset", sa.String(128), nullable=True),
    # The model version whose rows were checked (`featurehub skew --model`): its number as
    # text, as the serving log holds it (null, with `model`: every row of the service).
    sa.Column("model_version", sa.String(128), nullable=True),
    sa.Column("sample", sa.Float, nullable=True),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("rows_served", sa.BigInteger, nullable=False),
    # JSON: [{"feature": "view:feature", "check": "replay" or "distribution", "figure": why}]
    # for each feature whose thresholds were crossed (featurehub/registry/skew_checks.py).
    sa.Column("failed_features", sa.Text, nullable=False),
    # JSON: the whole SkewReport.to_dict() (docs/skew-checks.md).
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model", sa.String(128), nullable=True),  # migration 0012
    sa.Index("ix_skew_checks_service", "project", "feature_service", "id"),
    sa.Index("ix_skew_checks_model", "project", "feature_service", "model", "model_version", "id"),
)

# -- models (featurehub/models/): immutable versions, aliases and their history -----------------

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("flavor", sa.String(16), nullable=False),  # sklearn | onnx | pyfunc
    # The artifact, content-addressed under models.artifact_root (path relative to it).
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_path", sa.Text, nullable=False),
    sa.Column("feature_service", sa.String(128), nullable=False),
    sa.Column("feature_service_version", sa.Integer, nullable=False),
    sa.Column("training_dataset", sa.String(128), nullable=False),
    sa.Column("training_dataset_fingerprint", sa.String(64), nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),  # JSON: {name: number}
    sa.Column("params", sa.Text, nullable=False),  # JSON: {name: string}
    # JSON: {"inputs": [{"name", "type"}, ...], "output": "int64"}.
    sa.Column("signature", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project", "name", "version", name="uq_model_versions_version"),
)

# Which version holds each alias now (`production`, `staging`, `champion`, ...).
model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("set_by", sa.String(128), nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
)

# Versions in the Archived stage (promotion archives the production version it replaces).
model_archived = sa.Table(
    "model_archived",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
)

# Every lifecycle change, append-only: who moved which alias from which version to which,
# when, why, and whether the gate was overridden.
model_alias_history = sa.Table(
    "model_alias_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    # An alias name, or "archived" for archive events (not an alias: no version holds it).
    sa.Column("alias", sa.String(128), nullable=False),
    # promote | rollback | alias | remove | archive | unarchive
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),  # holds the alias after (null: removed)
    sa.Column("previous_version", sa.Integer, nullable=True),  # held it before
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    # JSON: the gate's checks when a promotion ran it (null otherwise).
    sa.Column("gate", sa.Text, nullable=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_model_alias_history_model", "project", "model", "id"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    # What is leased: "view:<name>" for a view's materialization (featurehub/scheduler).
    sa.Column("name", sa.String(255), primary_key=True),
    # host:pid:token of the holding process; only the holder renews or releases it.
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    # Past this moment the lease is free: its holder stopped renewing (killed, hung).
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

# Traffic policies of the feature server, append-only: a model's newest row is its policy now
# (none: production only), the older rows its history (featurehub/registry/traffic.py).
model_traffic = sa.Table(
    "model_traffic",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("policy", sa.String(16), nullable=False),  # production | canary | shadow | ab
    sa.Column("version", sa.Integer, nullable=True),  # the other version (null: production)
    sa.Column("percent", sa.Float, nullable=True),  # of entity keys routed to it (canary, ab)
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_model_traffic_model", "project", "model", "id"),
)
