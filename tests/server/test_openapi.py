"""Property-based check of the OpenAPI schema (schemathesis): generated requests, valid and
invalid, never get a 5xx, and every answer matches the documented status codes and shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from featurehub import FeatureStore
from featurehub.config import RepoConfig
from featurehub.server import create_app
from tests.server.conftest import server_config


@pytest.fixture
def api_app(served_config: RepoConfig, tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(FeatureStore(config=served_config), server_config(tmp_path / "logs"))
    server = app.state.server
    server.start()  # what the lifespan does; schemathesis' ASGI client does not run it
    yield app
    server.stop()


KEYS = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=4),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
)
ENTITIES = st.dictionaries(
    st.sampled_from(["driver_id", "zone", "other"]), st.lists(KEYS, max_size=4), max_size=3
)
NEAR_VALID = st.one_of(
    st.fixed_dictionaries(
        {"feature_service": st.sampled_from(["driver_service", "dispatch"]), "entities": ENTITIES},
        optional={"full_feature_names": st.booleans()},
    ),
    st.fixed_dictionaries(
        {
            "features": st.lists(
                st.sampled_from(
                    ["driver_stats:*", "zone_stats:label", "driver_stats:conv_rate", "dispatch"]
                ),
                min_size=1,
                max_size=3,
            ),
            "entities": ENTITIES,
        },
        optional={"full_feature_names": st.booleans()},
    ),
)


def with_body(pair: tuple[schemathesis.Case, dict[str, object]]) -> schemathesis.Case:
    case, body = pair
    case.body = body
    return case


def test_api_conforms_to_its_schema(api_app: FastAPI) -> None:
    # Driven by hand: schemathesis' pytest plugin does not support pytest 9 yet.
    api = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/features", "/readyz", "/metrics"}
    for operation in operations:
        examples = 60 if operation.path == "/v1/features" else 5
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        strategies = [operation.as_strategy(generation_mode=m) for m in modes]
        if operation.path == "/v1/features":  # random names all 404: also try real ones
            strategies.append(st.tuples(strategies[0], NEAR_VALID).map(with_body))

        @given(case=st.one_of(*strategies))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                checks=[
                    not_a_server_error,
                    status_code_conformance,
                    content_type_conformance,
                    response_schema_conformance,
                ]
            )

        check()
