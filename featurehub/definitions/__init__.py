"""What users write in a feature repo: entities, sources, feature views and services."""

from featurehub.definitions.entity import Entity
from featurehub.definitions.feature_service import FeatureService
from featurehub.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from featurehub.definitions.monitor import Monitor
from featurehub.definitions.source import CsvSource, DataSource, ParquetSource, SqlSource

__all__ = [
    "CsvSource",
    "DataSource",
    "Entity",
    "FeatureService",
    "FeatureView",
    "FeatureViewProjection",
    "Field",
    "Monitor",
    "ParquetSource",
    "SqlSource",
]
