"""featurehub: a feature store that proves training/serving consistency."""

from featurehub.definitions import (
    CsvSource,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    ParquetSource,
    SqlSource,
)
from featurehub.feature_store import FeatureStore

__version__ = "0.1.0"

__all__ = [
    "CsvSource",
    "Entity",
    "FeatureService",
    "FeatureStore",
    "FeatureView",
    "Field",
    "ParquetSource",
    "SqlSource",
    "__version__",
]
