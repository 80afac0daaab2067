"""Check a repo's definitions against their sources before anything is written.

Every problem is collected (not only the first) and each names the object, the field and
the fix. The result also carries what only the sources know: the type of each join key.

`check_view_source` holds the rules for one view. `apply` runs it on the repo's views, and
materialization runs it again on the registered views, because a source can change after
apply (a column retyped or dropped upstream): the engines would otherwise cast a string to a
number, or fail deep in DuckDB, instead of refusing with apply's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from featurehub import types
from featurehub.definitions import FeatureView
from featurehub.definitions.catalog import Catalog
from featurehub.errors import FeaturehubError, ValidationError
from featurehub.offline.source_reader import SourceError, source_schema, view_schema


def _key_type(arrow_type: pa.DataType) -> types.ValueType | None:
    """Join keys compare by value, so every integer width is one key type."""
    found = types.from_arrow(arrow_type)
    return types.Int64 if found is types.Int32 else found


@dataclass(frozen=True)
class SourceCheck:
    """What checking one view against its source found: the problems (empty when the view
    fits its source) and the type of each join key it could type."""

    problems: list[str]
    key_types: dict[str, types.ValueType]


class SourceDriftError(FeaturehubError):
    """A registered view no longer fits its source: it changed after `apply`."""

    def __init__(self, view: str, problems: list[str]) -> None:
        self.view = view
        self.problems = problems
        listed = (
            problems[0]
            if len(problems) == 1
            else " ".join(f"({number}) {problem}" for number, problem in enumerate(problems, 1))
        )
        super().__init__(
            f"feature view {view!r} no longer matches its source, nothing was materialized: "
            f"{listed}. The source changed after apply: fix the source, or change the "
            "definition and run `featurehub apply`"
        )


def check_view_source(view: FeatureView, repo_path: Path) -> SourceCheck:
    """Check `view` against its source (through its transformation, if any): timestamp
    columns, join keys and their types, feature columns and their types.

    A join key's type is checked against `entity.key_types`: the declared `value_type` when
    the repo is applied, the type apply recorded when a registered view is materialized.
    Reads only source metadata.
    """
    try:
        schema = source_schema(view.source, repo_path)
        if view.transformation is not None:
            schema = view_schema(view, repo_path)
    except SourceError as exc:
        return SourceCheck([str(exc)], {})
    return _check_view(view, schema)


def drifted_views(views: Iterable[FeatureView], repo_path: Path) -> dict[str, SourceDriftError]:
    """The views whose source no longer fits them, each with the error that refuses it.

    Materialization asks this for every view of a run before the first is computed; a
    drifted view is recorded as a failed run and writes nothing, the others go on.
    """
    drifted = {}
    for view in views:
        problems = check_view_source(view, repo_path).problems
        if problems:
            drifted[view.name] = SourceDriftError(view.name, problems)
    return drifted


def _check_view(view: FeatureView, schema: pa.Schema) -> SourceCheck:
    where = f"feature view {view.name!r}"
    source = view.source
    origin = "its transformation's output" if view.transformation else f"source {source.name!r}"
    problems = []
    key_types: dict[str, types.ValueType] = {}
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
            declared = entity.key_types.get(key)
            if declared is not None and not declared.accepts(columns[key]):
                stated = (
                    f"declares value_type={declared.name}"
                    if entity.value_type is not None
                    else f"has key type {declared.name} (recorded by apply)"
                )
                problems.append(
                    f"{where}: join key {key!r} is {columns[key]} in source {source.name!r} but "
                    f"entity {entity.name!r} {stated}; fix one of them"
                )
            found = declared or _key_type(columns[key])
            if found is None:
                problems.append(
                    f"{where}: join key {key!r} has type {columns[key]}, which cannot be an "
                    "entity key; use an integer or string column"
                )
            else:
                key_types[key] = found
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
    return SourceCheck(problems, key_types)


def validate_repo(catalog: Catalog, repo_path: Path) -> Catalog:
    """Check every view against its source; return the catalog with join key types filled in.

    Raises ValidationError listing every problem; reads only source metadata.
    """
    problems: list[str] = []
    key_types: dict[str, dict[types.ValueType, str]] = {}
    for view in catalog.feature_views.values():
        if not view.entities:
            problems.append(
                f"feature view {view.name!r}: entities is empty; every view needs at least "
                "one Entity to key its rows by"
            )
        checked = check_view_source(view, repo_path)
        problems.extend(checked.problems)
        for key, key_type in checked.key_types.items():
            key_types.setdefault(key, {}).setdefault(key_type, view.name)
    used = {view.source.name for view in catalog.feature_views.values()}
    for name, source in sorted(catalog.sources.items()):
        if name not in used:  # registered all the same: it must be readable
            try:
                source_schema(source, repo_path)
            except SourceError as exc:
                problems.append(str(exc))
    for key, found in sorted(key_types.items()):
        if len(found) > 1:
            detail = ", ".join(f"{t.name} in view {v!r}" for t, v in found.items())
            problems.append(
                f"join key {key!r} has different types across sources ({detail}); make the "
                "source columns agree, e.g. cast in a SqlSource"
            )
    if problems:
        raise ValidationError(list(dict.fromkeys(problems)))  # a shared source's, once
    specs = catalog.to_specs()
    for name, entity in catalog.entities.items():
        inferred = {k: next(iter(key_types[k])) for k in entity.join_keys if k in key_types}
        specs["entity"][name] = entity.with_key_types({**inferred, **entity.key_types}).to_spec()
    return Catalog.from_specs(specs)
