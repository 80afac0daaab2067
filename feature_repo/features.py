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
    # One row per driver and day, known once the day is over: the event time is the end of
    # the day, so a training row never sees a day that was not complete at its time.
    transformation="""
        SELECT driver_id,
               date_trunc('day', event_timestamp) + INTERVAL 1 DAY AS event_timestamp,
               max(created) AS created,
               max(conv_rate) AS max_conv_rate_1d,
               CAST(sum(trips_today) AS BIGINT) AS trips_1d,
               count(*) AS updates_1d
        FROM source
        WHERE acc_rate > 0.5
        GROUP BY driver_id, date_trunc('day', event_timestamp)
    """,
    schema=[
        Field("max_conv_rate_1d", Float64),
        Field("trips_1d", Int64),
        Field("updates_1d", Int64),
    ],
    ttl=timedelta(days=2),
    schedule="@daily",
    owner="marketplace@example.com",
    tags={"team": "marketplace"},
    description="Daily driver activity, aggregated from the hourly statistics",
)
