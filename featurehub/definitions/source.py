"""Data sources: where a feature view's raw rows come from.

Definitions are data only: a source says where rows are and which column holds event time.
Reading one is the job of `featurehub.offline.source_reader` (DuckDB) and of the engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, ClassVar

from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError


@dataclass(frozen=True)
class DataSource:
    """Common fields of every source. `kind` names the subclass in the registry."""

    kind: ClassVar[str] = ""

    name: str = ""
    timestamp_field: str = "event_timestamp"
    created_timestamp_field: str | None = None
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def _check_common(self) -> None:
        check_name(f"{self.kind} source", self.name)
        check_name(f"source {self.name!r} timestamp_field", self.timestamp_field)
        if self.created_timestamp_field is not None:
            check_name(
                f"source {self.name!r} created_timestamp_field", self.created_timestamp_field
            )
            if self.created_timestamp_field == self.timestamp_field:
                raise DefinitionError(
                    f"source {self.name!r}: created_timestamp_field must differ from "
                    f"timestamp_field ({self.timestamp_field!r}); omit it if there is none"
                )
        object.__setattr__(self, "tags", dict(self.tags))

    def __hash__(self) -> int:
        return hash(("source", self.name))

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "description": self.description,
            "tags": dict(sorted(self.tags.items())),
            **self._location_spec(),
        }

    def _location_spec(self) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> DataSource:
        spec = dict(spec)
        kind = spec.pop("kind")
        try:
            cls = SOURCE_KINDS[kind]
        except KeyError:
            raise DefinitionError(f"unknown source kind {kind!r}") from None
        return cls(**spec)


def _default_name(path: str) -> str:
    stem = PurePath(path.rstrip("/*")).name.split(".")[0]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in stem) or "source"


def _outside_repo_spec(allowed: bool) -> dict[str, Any]:
    """`allow_outside_repo` in a spec only when set, so specs registered before the option
    existed compare equal to today's and `plan` shows no change for them."""
    return {"allow_outside_repo": True} if allowed else {}


@dataclass(frozen=True)
class ParquetSource(DataSource):
    """A Parquet file, a directory of Parquet files (read recursively, hive partitions
    understood) or a glob. A relative path is relative to the feature repo; a local path
    outside the repo is refused unless `allow_outside_repo=True` says it is meant (URLs such
    as s3://... are read as given)."""

    kind: ClassVar[str] = "parquet"
    path: str = ""
    allow_outside_repo: bool = False

    def __post_init__(self) -> None:
        if not self.path:
            raise DefinitionError("ParquetSource needs path=, e.g. 'data/driver_stats.parquet'")
        if not self.name:
            object.__setattr__(self, "name", _default_name(self.path))
        self._check_common()

    def _location_spec(self) -> dict[str, Any]:
        return {"path": self.path, **_outside_repo_spec(self.allow_outside_repo)}


@dataclass(frozen=True)
class CsvSource(DataSource):
    """A CSV file (or glob) with a header row; column types are sniffed by DuckDB. Paths
    follow ParquetSource's rules, `allow_outside_repo` included."""

    kind: ClassVar[str] = "csv"
    path: str = ""
    delimiter: str = ","
    allow_outside_repo: bool = False

    def __post_init__(self) -> None:
        if not self.path:
            raise DefinitionError("CsvSource needs path=, e.g. 'data/trips.csv'")
        if not self.name:
            object.__setattr__(self, "name", _default_name(self.path))
        self._check_common()

    def _location_spec(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "delimiter": self.delimiter,
            **_outside_repo_spec(self.allow_outside_repo),
        }


@dataclass(frozen=True)
class SqlSource(DataSource):
    """A DuckDB SQL query over files, e.g. a join of two Parquet files. Relative file
    paths inside the query are resolved against the feature repo. The query is code of the
    repo, like its Python: it reads what it names, inside the repo or not."""

    kind: ClassVar[str] = "sql"
    query: str = ""

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise DefinitionError("SqlSource needs query=, e.g. \"SELECT * FROM 'data/x.parquet'\"")
        if not self.name:
            raise DefinitionError("SqlSource needs name=: a query has no file name to derive one")
        self._check_common()

    def _location_spec(self) -> dict[str, Any]:
        return {"query": self.query}


SOURCE_KINDS: dict[str, type[DataSource]] = {
    cls.kind: cls for cls in (ParquetSource, CsvSource, SqlSource)
}
