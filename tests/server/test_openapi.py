"""Property-based check of the OpenAPI schema (schemathesis): generated requests, valid and
invalid, never get a 5xx, every answer matches the documented status codes and shapes, and
what the schema calls invalid the server refuses. Schemathesis' coverage phase (boundary
values, missing properties) also checks that what the schema calls valid is not refused for
its shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import RepoConfig
from featurehub.server import create_app
from tests.server.conftest import server_config


@pytest.fixture
def api_app(served_config: RepoConfig, tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(FeatureStore(config=served_config), server_config())
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


CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


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
            case.call_and_validate(checks=CHECKS)

        check()


def test_coverage_cases_conform(api_app: FastAPI) -> None:
    """Deterministic boundary cases: a body with only `entities` is schema-valid unless the
    schema says that one of `features`/`feature_service` is required, as the server does."""
    api = schemathesis.openapi.from_asgi("/openapi.json", api_app)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    count = 0
    for result in api.get_all_operations():
        operation = result.ok()
        config = api.config.generation_for(operation=operation)
        for case in api.iter_coverage_cases(
            operation, generation_modes=modes, generation_config=config
        ):
            case.call_and_validate(checks=[*CHECKS, positive_data_acceptance])
            count += 1
    assert count > 50


def published(api_app: FastAPI) -> dict[str, Any]:
    operation: dict[str, Any] = TestClient(api_app).get("/openapi.json").json()["paths"]
    return operation["/v1/features"]["post"]


VALID_BODY = {"feature_service": "driver_service", "entities": {"driver_id": [1001]}}


REQUEST_IDS = [("abc", True), ("r" * 128, True), ("r" * 129, False), ("a\tb", False)]
BODIES = [
    VALID_BODY,
    {"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1001]}},
    {"entities": {"driver_id": [1001]}},  # neither features nor feature_service
    {**VALID_BODY, "features": ["driver_stats:conv_rate"]},  # both
]


def test_schema_and_server_agree(api_app: FastAPI) -> None:
    """What the schema accepts the server answers (200 with real names), and what it refuses
    the server refuses. X-Request-ID: the server never refuses one, it makes its own when the
    given one is unusable (longer than 128, not printable ASCII). Bodies: exactly one of
    `features` and `feature_service`."""
    operation = published(api_app)
    client = TestClient(api_app)
    parameter = next(p for p in operation["parameters"] if p["name"] == "X-Request-ID")
    header_schema = jsonschema.Draft202012Validator(parameter["schema"])
    for request_id, kept in REQUEST_IDS:
        answer = client.post("/v1/features", json=VALID_BODY, headers={"x-request-id": request_id})
        assert header_schema.is_valid(request_id) == (answer.status_code == 200), request_id
        assert (answer.json()["request_id"] == request_id) == kept
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator(body_schema)
    for body in BODIES:
        answer = client.post("/v1/features", json=body)
        assert validator.is_valid(body) == (answer.status_code == 200), (body, answer.text)
