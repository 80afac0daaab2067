"""Bring a registry database to the newest schema with Alembic, once per process and URL."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

_MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every featurehub process.
_PG_LOCK_ID = 0x6665617475726568


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def upgrade(engine: sa.Engine) -> None:
    """Run pending migrations. On PostgreSQL an advisory lock makes concurrent first starts
    safe; on SQLite the write lock of the migration's transaction does the same."""
    head = head_revision()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        config = _alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
