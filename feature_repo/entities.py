"""The things ride-hailing features describe."""

from featurehub import Entity
from featurehub.types import Int64, String

driver = Entity(name="driver", join_keys=["driver_id"], value_type=Int64, description="A driver")
customer = Entity(name="customer", join_keys=["customer_id"], description="A rider")
route = Entity(
    name="route",
    join_keys=["pickup_zone", "dropoff_zone"],
    value_type=String,
    description="A pair of city zones: where a trip starts and where it ends",
)
