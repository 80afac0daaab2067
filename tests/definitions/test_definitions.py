from datetime import timedelta

import pytest

from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource, SqlSource
from featurehub.definitions.catalog import Catalog
from featurehub.errors import DefinitionError, NotFoundError
from featurehub.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
route = Entity(name="route", join_keys=["pickup_zone", "dropoff_zone"], value_type=String)
source = ParquetSource(path="data/drivers.parquet", created_timestamp_field="created")


def view(**overrides: object) -> FeatureView:
    fields = dict(
        name="driver_stats",
        entities=[driver],
        source=source,
        schema=[Field("conv_rate", Float64), Field("trips", Int64)],
        ttl=timedelta(days=1),
    )
    fields.update(overrides)
    return FeatureView(**fields)  # type: ignore[arg-type]


def test_entity_defaults_join_key_to_its_name_and_records_key_types() -> None:
    assert Entity(name="customer").join_keys == ["customer"]
    assert route.key_types == {"pickup_zone": String, "dropoff_zone": String}


@pytest.mark.parametrize("name", ["", "1abc", "has space", "dash-name", "a" * 129, None])
def test_invalid_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(DefinitionError, match="letters, digits and underscores"):
        Entity(name=name)  # type: ignore[arg-type]


def test_source_name_defaults_to_file_stem() -> None:
    assert source.name == "drivers"
    assert ParquetSource(path="data/trips/").name == "trips"


def test_sql_source_needs_a_name_and_a_query() -> None:
    with pytest.raises(DefinitionError, match="needs name="):
        SqlSource(query="SELECT 1")
    with pytest.raises(DefinitionError, match="needs query="):
        SqlSource(name="q", query=" ")


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(DefinitionError, match="ttl -1 day.*negative"):
        view(ttl=timedelta(days=-1))


def test_zero_ttl_means_no_ttl() -> None:
    assert view(ttl=timedelta(0)).ttl is None


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "0 */6 * * *", "*/5 * * * *"])
def test_valid_schedules(schedule: str) -> None:
    assert view(schedule=schedule).schedule == schedule


@pytest.mark.parametrize("schedule", ["hourly", "61 * * * *", "@sometimes", ""])
def test_invalid_schedule_names_the_view_and_the_fix(schedule: str) -> None:
    with pytest.raises(DefinitionError, match="driver_stats.*schedule.*@hourly"):
        view(schedule=schedule)


def test_duplicate_feature_names_are_refused() -> None:
    with pytest.raises(DefinitionError, match="declared twice"):
        view(schema=[Field("a", Float64), Field("a", Int64)])


def test_feature_named_like_a_join_key_is_refused() -> None:
    with pytest.raises(DefinitionError, match="clash with a join key"):
        view(schema=[Field("driver_id", Int64)])


def test_field_dtype_must_be_a_featurehub_type() -> None:
    with pytest.raises(DefinitionError, match="featurehub.types.Float64"):
        Field("x", float)  # type: ignore[arg-type]


def test_composite_keys_from_two_entities_and_one_composite_entity() -> None:
    both = view(name="pair", entities=[driver, route])
    assert both.join_keys == ["driver_id", "pickup_zone", "dropoff_zone"]


def test_projection_and_service() -> None:
    stats = view()
    with pytest.raises(DefinitionError, match="no feature 'conv_rat'.*'conv_rate'"):
        stats[["conv_rat"]]
    service = FeatureService(name="svc", features=[stats[["trips"]]])
    assert service.to_spec()["features"] == [{"view": "driver_stats", "features": ["trips"]}]
    whole = FeatureService(name="svc2", features=[stats])
    assert whole.to_spec()["features"][0]["features"] == ["conv_rate", "trips"]
    with pytest.raises(DefinitionError, match="listed twice"):
        FeatureService(name="svc3", features=[stats, stats[["trips"]]])


def catalog() -> Catalog:
    stats = view()
    service = FeatureService(name="svc", features=[stats[["trips"]]])
    return Catalog(
        entities={"driver": driver},
        sources={source.name: source},
        feature_views={stats.name: stats},
        feature_services={service.name: service},
    )


def test_specs_round_trip() -> None:
    original = catalog()
    again = Catalog.from_specs(original.to_specs())
    assert again.to_specs() == original.to_specs()
    assert again.feature_view("driver_stats") == original.feature_view("driver_stats")


def test_resolve_feature_references() -> None:
    c = catalog()
    resolved = c.resolve(["driver_stats:conv_rate", "svc", "driver_stats:conv_rate"])
    assert [(p.view.name, p.features) for p in resolved] == [
        ("driver_stats", ["conv_rate", "trips"])
    ]
    assert [p.features for p in c.resolve("svc")] == [["trips"]]
    assert [p.features for p in c.resolve(["driver_stats:*"])] == [["conv_rate", "trips"]]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("driver_stat:conv_rate", "unknown feature view 'driver_stat'.*'driver_stats'"),
        ("driver_stats:conv", "no feature 'conv'.*'conv_rate'"),
        ("svcc", "unknown feature service 'svcc'.*'svc'"),
        ("driver_stats:", "no feature after ':'"),
    ],
)
def test_unknown_references_suggest_the_closest_name(ref: str, message: str) -> None:
    with pytest.raises((NotFoundError, DefinitionError), match=message):
        catalog().resolve([ref])


def test_transformation_must_read_source() -> None:
    with pytest.raises(DefinitionError, match="reads the view's source as the table `source`"):
        view(transformation="SELECT 1")
    transformed = view(transformation="SELECT * FROM source WHERE trips > 0")
    spec = transformed.to_spec()
    assert spec["transformation"] == "SELECT * FROM source WHERE trips > 0"


def test_catchup_and_freshness_are_checked_and_kept_in_the_spec() -> None:
    with pytest.raises(DefinitionError, match="catchup 'some' is not a policy; use 'latest'"):
        view(schedule="@hourly", catchup="some")
    with pytest.raises(DefinitionError, match="freshness must be a positive"):
        view(freshness=timedelta(0))
    with pytest.raises(DefinitionError, match="freshness must be a positive"):
        view(freshness=3600)
    declared = view(schedule="@hourly", catchup="all", freshness=timedelta(hours=3))
    spec = declared.to_spec()
    assert (spec["catchup"], spec["freshness_seconds"]) == ("all", 10800.0)
    again = FeatureView.from_spec(spec, {"driver": driver}, {source.name: source})
    assert (again.catchup, again.freshness) == ("all", timedelta(hours=3))
    # The defaults are not written: a spec from before these fields loads, and is unchanged.
    old = view(schedule="@hourly").to_spec()
    assert "catchup" not in old and "freshness_seconds" not in old
    loaded = FeatureView.from_spec(old, {"driver": driver}, {source.name: source})
    assert (loaded.catchup, loaded.freshness) == ("latest", None)
