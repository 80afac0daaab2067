"""Per-feature skew thresholds, `Field(..., skew={...})`: checked when defined, in the spec,
and put over featurehub.yaml's `monitoring:` when a feature is judged."""

from __future__ import annotations

from typing import Any

import pytest

from featurehub import Field
from featurehub.config import MonitoringConfig
from featurehub.definitions.catalog import Catalog
from featurehub.errors import DefinitionError
from featurehub.skew.thresholds import judged_by
from featurehub.types import Float64, Int64
from tests.definitions.test_definitions import catalog, view


def test_keys_are_the_monitoring_keys_and_values_keep_their_type() -> None:
    field = Field("conv_rate", Float64, skew={"psi_fail": 0.1, "max_value_skew_rate": 0})
    assert field.skew == {"max_value_skew_rate": 0.0, "psi_fail": 0.1}
    assert Field("n", Int64, skew={"min_rows": 50}).skew == {"min_rows": 50}
    assert Field("n", Int64).skew == {}
    assert hash(field) == hash(
        Field("conv_rate", Float64, skew={"psi_fail": 0.1, "max_value_skew_rate": 0.0})
    )


@pytest.mark.parametrize(
    ("skew", "message"),
    [
        ({"psi": 0.1}, "field 'conv_rate': skew threshold 'psi' is not a monitoring key"),
        ({"max_stale": 0.1}, "Did you mean 'max_stale_rate'"),
        ({"psi_fail": "0.1"}, "skew threshold 'psi_fail' = '0.1' is invalid"),
        ({"psi_fail": True}, "'psi_fail' = True is invalid"),
        ({"min_rows": 10.5}, "'min_rows' = 10.5 is invalid (Input should be a valid integer)"),
        ({"js_fail": 2.0}, "'js_fail' = 2.0 is invalid (Input should be less than or equal to 1)"),
        ({"max_stale_rate": -0.1}, "'max_stale_rate' = -0.1 is invalid"),
        ({"psi_warn": 0.3, "psi_fail": 0.2}, "psi_warn 0.3 is above psi_fail 0.2"),
        (0.1, "skew must be a dict of thresholds"),
    ],
)
def test_bad_thresholds_name_the_field_the_key_and_the_accepted_keys(
    skew: Any, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        Field("conv_rate", Float64, skew=skew)
    text = str(caught.value)
    assert "field 'conv_rate'" in text and message in text, text
    if "not a monitoring key" in text:
        assert "Accepted keys: psi_warn, psi_fail" in text and "max_value_skew_rate" in text


def test_thresholds_are_in_the_spec_and_old_specs_still_load() -> None:
    strict = view(
        schema=[Field("conv_rate", Float64, skew={"psi_fail": 0.1}), Field("trips", Int64)]
    )
    spec = strict.to_spec()
    assert spec["schema"][0]["skew"] == {"psi_fail": 0.1}
    assert "skew" not in spec["schema"][1]  # unset: the spec is as before
    specs = catalog().to_specs()
    specs["feature_view"]["driver_stats"] = spec
    again = Catalog.from_specs(specs).feature_view("driver_stats")
    assert again.feature("conv_rate").skew == {"psi_fail": 0.1} and again == strict
    old = {"name": "trips", "dtype": "Int64", "description": ""}  # a spec of before
    assert Field.from_spec(old) == Field("trips", Int64)


def test_a_feature_is_judged_by_monitoring_with_its_own_keys_over_it() -> None:
    monitoring = MonitoringConfig(psi_warn=0.1, psi_fail=0.25, max_stale_rate=0.05)
    assert judged_by(monitoring, {}) is monitoring
    own = judged_by(monitoring, {"psi_fail": 0.05, "max_value_skew_rate": 0.01})
    assert (own.psi_warn, own.psi_fail, own.max_value_skew_rate) == (0.05, 0.05, 0.01)
    assert own.max_stale_rate == 0.05  # the rest from monitoring:
    raised = judged_by(monitoring, {"psi_warn": 0.4})
    assert (raised.psi_warn, raised.psi_fail) == (0.4, 0.4)
