"""Feature views of the ride-hailing example."""

from datetime import timedelta

from entities import customer, driver, route

from featurehub import FeatureView, Field, ParquetSource
from featurehub.types import Bool, Float32, Float64, Int64, String

driver_stats_source = ParquetSource(
    name="driver_hourly_stats",
    path="data/driver_hourly_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_field="created",
)

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=driver_stats_source,
    schema=[
        Field("conv_rate", Float64, description="Share of offers the driver accepted"),
        Field("acc_rate", Float64, description="Share of accepted trips completed"),
        Field("avg_daily_trips", Int64),
        Field("rating", Float32, description="Mean rating over the last 100 trips"),
        Field("trips_today", Int64),
    ],
    ttl=timedelta(days=2),
    schedule="@hourly",
    owner="marketplace@example.com",
    tags={"team": "marketplace"},
    description="Hourly driver performance statistics",
)

customer_profile = FeatureView(
    name="customer_profile",
    entities=[customer],
    source=ParquetSource(
        path="data/customer_profile.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[
        Field("current_balance", Float64),
        Field("lifetime_trips", Int64),
        Field("avg_passenger_count", Float64),
        Field("is_premium", Bool),
        Field("home_zone", String),
    ],
    ttl=timedelta(days=30),
    schedule="@daily",
    owner="growth@example.com",
    tags={"team": "growth", "pii": "false"},
    description="Daily customer profile snapshot",
)

route_stats = FeatureView(
    name="route_stats",
    entities=[route],
    source=ParquetSource(
        path="data/route_stats.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_field="created",
    ),
    schema=[
        Field("avg_fare", Float64),
        Field("avg_duration_min", Float64),
        Field("trip_count", Int64),
    ],
    ttl=timedelta(days=7),
    schedule="0 */6 * * *",
    owner="pricing@example.com",
    tags={"team": "pricing"},
    description="Fares and durations between two zones, every six hours",
)

driver_daily_activity = FeatureView(
    name="driver_daily_activity",
    entities=[driver],
    source=driver_stats_source,
    # A running aggregate: at each of a driver's updates, the driver's activity over the 24
    # hours up to and including it. A row is stamped with the time of the last update it
    # includes (never a time still to come), and created when the last of its inputs was
    # written: a training row sees only aggregates whose every input existed at its time, and
    # a late backfill makes new versions of the aggregates it belongs to, created when it
    # arrived. A value expires a day after the driver's last update (ttl), when the day it
    # describes is over.
    transformation="""
        SELECT driver_id,
               event_timestamp,
               max(created) OVER last_24h AS created,
               max(conv_rate) OVER last_24h AS max_conv_rate_1d,
               CAST(sum(trips_today) OVER last_24h AS BIGINT) AS trips_1d,
               count(*) OVER last_24h AS updates_1d
        FROM source
        WHERE acc_rate > 0.5
        WINDOW last_24h AS (
            PARTITION BY driver_id
            ORDER BY event_timestamp
            RANGE BETWEEN INTERVAL 24 HOURS PRECEDING AND CURRENT ROW
        )
    """,
    schema=[
        Field("max_conv_rate_1d", Float64),
        Field("trips_1d", Int64),
        Field("updates_1d", Int64),
    ],
    ttl=timedelta(days=1),
    schedule="@hourly",
    owner="marketplace@example.com",
    tags={"team": "marketplace"},
    description=(
        "Driver activity over the 24 hours up to each update (a running aggregate of the "
        "hourly statistics), stamped at that update"
    ),
)
