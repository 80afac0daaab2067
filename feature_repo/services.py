"""Feature services: the features each model consumes."""

from features import customer_profile, driver_stats, route_stats

from featurehub import FeatureService

trip_completion_v1 = FeatureService(
    name="trip_completion_v1",
    features=[
        driver_stats[["conv_rate", "acc_rate", "rating"]],
        customer_profile[["lifetime_trips", "is_premium"]],
        route_stats,
    ],
    owner="ml-platform@example.com",
    description="Predicts whether a requested trip is completed",
)
