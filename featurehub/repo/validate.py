"""Check a repo's definitions against their sources before anything is written.

Every problem is collected (not only the first) and each names the object, the field and
the fix. The result also carries what only the sources know: the type of each join key.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from featurehub import types
from featurehub.definitions import FeatureView
from featurehub.definitions.catalog import Catalog
from featurehub.errors import ValidationError
from featurehub.offline.source_reader import SourceError, source_schema, view_schema


def _key_type(arrow_type: pa.DataType) -> types.ValueType | None:
    """Join keys compare by value, so every integer width is one key type."""
    found = types.from_arrow(arrow_type)
    return types.Int64 if found is types.Int32 else found


def _check_view(
    view: FeatureView, schema: pa.Schema, key_types: dict[str, dict[types.ValueType, str]]
) -> list[str]:
    where = f"feature view {view.name!r}"
    source = view.source
    origin = "its transformation's output" if view.transformation else f"source {source.name!r}"
    problems = []
    columns = {f.name: f.type for f in schema}
    listing = ", ".join(columns)
    timestamp_fields = [("timestamp_field", source.timestamp_field)]
    if source.created_timestamp_field:
        timestamp_fields.append(("created_timestamp_field", source.created_timestamp_field))
    for label, column in timestamp_fields:
        if column not in columns:
            problems.append(
                f"source {source.name!r}: {label} {column!r} is not a column of the source "
                f"(columns: {listing}); set {label}= to the right column"
            )
        elif not types.Timestamp.accepts(columns[column]):
            problems.append(
                f"source {source.name!r}: {label} {column!r} has type {columns[column]}, not a "
                "timestamp; cast it in a SqlSource or point to a timestamp column"
            )
    for entity in view.entities:
        for key in entity.join_keys:
            if key not in columns:
                problems.append(
                    f"{where}: join key {key!r} of entity {entity.name!r} is not a column of "
                    f"{origin} (columns: {listing}); add it to the source or "
                    "use an entity whose join_keys match"
                )
                continue
            declared = entity.value_type
            if declared is not None and not declared.accepts(columns[key]):
                problems.append(
                    f"{where}: join key {key!r} is {columns[key]} in source {source.name!r} but "
                    f"entity {entity.name!r} declares value_type={declared.name}; fix one of them"
                )
            found = declared or _key_type(columns[key])
            if found is None:
                problems.append(
                    f"{where}: join key {key!r} has type {columns[key]}, which cannot be an "
                    "entity key; use an integer or string column"
                )
            else:
                key_types.setdefault(key, {}).setdefault(found, view.name)
    for field in view.schema:
        if field.name not in columns:
            problems.append(
                f"{where}: feature {field.name!r} is not a column of {origin} "
                f"(columns: {listing}); remove it from schema or add it to the source"
            )
        elif not field.dtype.accepts(columns[field.name]):
            problems.append(
                f"{where}: feature {field.name!r} is declared {field.dtype.name} but the source "
                f"column has type {columns[field.name]}; declare a compatible type "
                f"(e.g. {types.from_arrow(columns[field.name]) or 'another column'})"
            )
    return problems


def validate_repo(catalog: Catalog, repo_path: Path) -> Catalog:
    """Check every view against its source; return the catalog with join key types filled in.

    Raises ValidationError listing every problem; reads only source metadata.
    """
    problems: list[str] = []
    key_types: dict[str, dict[types.ValueType, str]] = {}
    schemas: dict[str, pa.Schema] = {}
    for name, source in sorted(catalog.sources.items()):
        try:
            schemas[name] = source_schema(source, repo_path)
        except SourceError as exc:
            problems.append(str(exc))
    for view in catalog.feature_views.values():
        if not view.entities:
            problems.append(
                f"feature view {view.name!r}: entities is empty; every view needs at least "
                "one Entity to key its rows by"
            )
        if view.source.name not in schemas:
            continue
        schema = schemas[view.source.name]
        if view.transformation is not None:
            try:
                schema = view_schema(view, repo_path)
            except SourceError as exc:
                problems.append(str(exc))
                continue
        problems.extend(_check_view(view, schema, key_types))
    for key, found in sorted(key_types.items()):
        if len(found) > 1:
            detail = ", ".join(f"{t.name} in view {v!r}" for t, v in found.items())
            problems.append(
                f"join key {key!r} has different types across sources ({detail}); make the "
                "source columns agree, e.g. cast in a SqlSource"
            )
    if problems:
        raise ValidationError(problems)
    specs = catalog.to_specs()
    for name, entity in catalog.entities.items():
        inferred = {k: next(iter(key_types[k])) for k in entity.join_keys if k in key_types}
        specs["entity"][name] = entity.with_key_types({**inferred, **entity.key_types}).to_spec()
    return Catalog.from_specs(specs)
