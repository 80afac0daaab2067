"""featurehub: a feature store that proves training/serving consistency."""

from typing import TYPE_CHECKING, Any

from featurehub.definitions import (
    CsvSource,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    Monitor,
    ParquetSource,
    SqlSource,
)

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore

__version__ = "0.1.0"

__all__ = [
    "CsvSource",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "Monitor",
    "ParquetSource",
    "SqlSource",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """`FeatureStore` is imported on first use: it pulls in DuckDB, SQLAlchemy and pandas,
    which processes that import only a part of featurehub (the serving log's writer, a
    feature repo's definitions) do not need."""
    if name == "FeatureStore":
        from featurehub.feature_store import FeatureStore

        return FeatureStore
    raise AttributeError(f"module 'featurehub' has no attribute {name!r}")
