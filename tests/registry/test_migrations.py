"""The migrations create exactly the tables featurehub/registry/tables.py describes, on SQLite
and PostgreSQL: a column added to one and not the other fails here, not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from featurehub.registry import SqlRegistry
from featurehub.registry.migrate import head_revision
from featurehub.registry.tables import metadata


def test_the_migrated_schema_is_the_metadata(registry_url: str) -> None:
    registry = SqlRegistry(registry_url)  # migrates an empty database to the head
    try:
        with registry.engine.connect() as connection:
            # Tables, columns, types, nullability, indexes; not server defaults, which SQLite
            # reflects in its own spelling ('' comes back as "''").
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == head_revision()
            differences = [
                diff
                for diff in compare_metadata(context, metadata)
                if not (diff[0] == "remove_table" and diff[1].name == "alembic_version")
            ]
    finally:
        registry.close()
    assert differences == []
