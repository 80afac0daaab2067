"""What the router answers around the API: unknown paths, wrong methods, trailing slashes,
HEAD probes and compressed bodies, all in the documented error shape."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

BODY = {"feature_service": "driver_service", "entities": {"driver_id": [1001]}}


def assert_error_shape(answer: httpx.Response, status: int, kind: str) -> str:
    """The documented {"error", "message", "request_id"} answer; returns the message."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    data = answer.json()
    assert set(data) == {"error", "message", "request_id"}
    assert data["error"] == kind
    assert data["request_id"] == answer.headers["x-request-id"]
    message: str = data["message"]
    return message


def test_unknown_path_is_a_404_listing_the_endpoints(client: TestClient) -> None:
    answer = client.get("/v2/features", headers={"x-request-id": "lost-1"})
    message = assert_error_shape(answer, 404, "not_found")
    assert answer.json()["request_id"] == "lost-1"
    assert "/v2/features" in message and "/v1/features" in message and "/healthz" in message


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/healthz/"), ("GET", "/v1/feature-views/"), ("POST", "/v1/features/")],
)
def test_trailing_slash_is_a_404_naming_the_path(
    client: TestClient, method: str, path: str
) -> None:
    answer = client.request(method, path, json=BODY, follow_redirects=False)
    message = assert_error_shape(answer, 404, "not_found")
    assert f"did you mean {path.rstrip('/')} (no trailing slash)" in message


def test_wrong_method_is_a_405_naming_the_allowed_one(client: TestClient) -> None:
    answer = client.get("/v1/features")
    message = assert_error_shape(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "POST"
    assert message == "GET /v1/features is not allowed; use POST"
    assert_error_shape(client.delete("/v1/feature-views"), 405, "method_not_allowed")
    probe = client.put("/healthz")
    assert assert_error_shape(probe, 405, "method_not_allowed").endswith("use GET, HEAD")
    assert probe.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_probes_answer_200_without_a_body(client: TestClient, path: str) -> None:
    answer = client.head(path)
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-type"] == "application/json"


def test_a_compressed_body_is_415(client: TestClient) -> None:
    answer = client.post(
        "/v1/features",
        content=gzip.compress(orjson.dumps(BODY)),
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    message = assert_error_shape(answer, 415, "unsupported_encoding")
    assert "'gzip'" in message and "uncompressed" in message
    identity = client.post(
        "/v1/features",
        content=orjson.dumps(BODY),
        headers={"content-type": "application/json", "content-encoding": "identity"},
    )
    assert identity.status_code == 200, identity.text
