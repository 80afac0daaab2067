"""Your features. Add views here or in more .py files of this folder."""

from datetime import timedelta

from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(
        path="data/driver_stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],
    ttl=timedelta(days=1),
    schedule="@hourly",
)

driver_model = FeatureService(name="driver_model", features=[driver_stats])
