"""Parsing and checking a POST /v1/features by hand (orjson, no pydantic), and the errors.

Everything a client can get wrong becomes an `ApiError` with a 4xx status and a message that
names the problem; featurehub errors are mapped by `api_error`.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import orjson
from fastapi.responses import Response
from starlette.types import Receive

from featurehub import types
from featurehub.definitions import entity_keys
from featurehub.errors import DefinitionError, FeaturehubError, NotFoundError
from featurehub.online.base import OnlineStoreError, OnlineStoreUnavailable
from featurehub.online.lookup import EntityKeyError
from featurehub.server.snapshot import Resolved, Snapshot

JSON = "application/json"


class ApiError(Exception):
    """A request the server refuses: HTTP status, a short kind (a metric label), a message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message


def api_error(exc: FeaturehubError) -> ApiError:
    """The HTTP answer for a featurehub error raised while serving a request."""
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, EntityKeyError):
        return ApiError(422, "invalid_entities", str(exc))
    if isinstance(exc, DefinitionError):
        return ApiError(422, "invalid_features", str(exc))
    if isinstance(exc, OnlineStoreUnavailable):
        return ApiError(503, "online_store_unavailable", str(exc))
    if isinstance(exc, OnlineStoreError):
        return ApiError(503, "online_store_error", str(exc))
    return ApiError(422, "invalid_request", str(exc))


def check_fields(payload: Any, allowed: tuple[str, ...]) -> None:
    """A body must be a JSON object of only the `allowed` fields (a 422 that lists them)."""
    if not isinstance(payload, dict):
        raise ApiError(422, "bad_request", "the body must be a JSON object")
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise ApiError(
            422, "bad_request", f"unknown field(s) {unknown}; allowed: {', '.join(allowed)}"
        )


def parse_request(
    payload: Any, snapshot: Snapshot, max_entities: int
) -> tuple[Resolved, list[dict[str, Any]], bool]:
    """The resolved features, entity rows and full_feature_names of a request body."""
    check_fields(payload, ("features", "feature_service", "entities", "full_feature_names"))
    full = payload.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise ApiError(422, "bad_request", "full_feature_names must be true or false")
    features = payload.get("features")
    service = payload.get("feature_service")
    if (features is None) == (service is None):
        raise ApiError(
            422, "bad_request", 'give exactly one of "features" (a list) or "feature_service"'
        )
    if service is not None:
        if not isinstance(service, str):
            raise ApiError(422, "bad_request", "feature_service must be a string")
        resolved = snapshot.services.get(service)
        if resolved is None:
            snapshot.catalog.feature_service(service)  # raises NotFoundError naming close ones
            raise ApiError(404, "not_found", f"unknown feature service {service!r}")
    else:
        if not isinstance(features, list) or not features:
            raise ApiError(
                422, "bad_request", 'features must be a non-empty list of "view:feature" strings'
            )
        if not all(isinstance(f, str) for f in features):
            raise ApiError(422, "bad_request", 'every item of features must be a "view:feature"')
        resolved = snapshot.features(tuple(features))
    return resolved, entity_rows(payload.get("entities"), resolved, max_entities), full


def entity_rows(entities: Any, resolved: Resolved, max_entities: int) -> list[dict[str, Any]]:
    """Columnar entities -> one dict of the needed join keys per row, checked."""
    if not isinstance(entities, dict) or not entities:
        raise ApiError(
            422,
            "invalid_entities",
            "entities must be an object of join key -> list of values (columnar), e.g. "
            '{"driver_id": [1001, 1002]}',
        )
    length = -1
    first = ""
    for name, column in entities.items():
        if not isinstance(column, list):
            raise ApiError(
                422,
                "invalid_entities",
                f"entities.{name} must be a list of values: entities are columnar, e.g. "
                f'{{"{name}": [1001, 1002]}}',
            )
        if length < 0:
            length, first = len(column), name
        elif len(column) != length:
            raise ApiError(
                422,
                "invalid_entities",
                f"entity columns differ in length: {first} has {length} values, {name} has "
                f"{len(column)}; give one value per entity row in every column",
            )
    if length == 0:
        raise ApiError(422, "invalid_entities", "no entity rows: the entity columns are empty")
    if length > max_entities:
        raise ApiError(
            413,
            "too_many_entities",
            f"{length} entity rows; at most {max_entities} per request (server.max_entities)",
        )
    columns = []
    for key, dtype, view in resolved.join_keys:
        column = entities.get(key)
        if column is None:
            raise ApiError(
                422,
                "invalid_entities",
                f"entities has no {key!r}, a join key of feature view {view!r}; add a "
                f'"{key}" column',
            )
        _check_keys(key, dtype, column)
        columns.append(column)
    names = [key for key, _, _ in resolved.join_keys]
    # dict displays for the usual one or two keys: dict(zip(...)) per row costs 10x more
    if len(names) == 1:
        name = names[0]
        return [{name: value} for value in columns[0]]
    if len(names) == 2:
        first, second = names
        return [{first: a, second: b} for a, b in zip(*columns, strict=True)]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _check_keys(key: str, dtype: types.ValueType | None, column: list[Any]) -> None:
    """The SDK's rule (featurehub.definitions.entity_keys), answered as a 422."""
    index = entity_keys.first_refused(dtype, column)
    if index is not None:
        raise ApiError(
            422,
            "invalid_entities",
            f"entities.{key}[{index}] is {orjson.dumps(column[index]).decode()[:40]}, but "
            f"{key} keys are {entity_keys.describe(dtype)}",
        )


class Disconnected(Exception):
    """The client went away before sending its whole body."""


async def read_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    """The body, refused with 413 beyond `limit` bytes (declared or streamed), and with 415
    when compressed: decoding would put a decompressor (and its size bomb) on the hot path
    for bodies that are a few kilobytes of JSON."""
    encoding = headers.get(b"content-encoding", b"").strip().lower()
    if encoding not in (b"", b"identity"):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding.decode(errors='replace')[:20]!r} is not supported; "
            "send the JSON body uncompressed",
        )
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", "the Content-Length header is not a number")
        if int(declared) > limit:
            raise ApiError(
                413,
                "body_too_large",
                f"the body is {int(declared)} bytes; at most {limit} (server.max_body_bytes)",
            )
    message = await receive()
    if message["type"] != "http.request":
        raise Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, "body_too_large", f"the body exceeds {limit} bytes (server.max_body_bytes)"
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


_ID_PREFIX = os.urandom(6).hex()
_ID_COUNTER = itertools.count(1)


def make_request_id(given: bytes | None) -> str:
    """The client's X-Request-ID when printable ASCII (at most 128), else a new one: a random
    per-process prefix and a counter (no system call per request)."""
    if given and len(given) <= 128:
        try:
            text = given.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable():
            return text
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


Answer = tuple[int, bytes, str | None]
"""(status, JSON body, request id) of /v1/features."""


def error_body(error: ApiError, request_id: str | None) -> bytes:
    return orjson.dumps({"error": error.kind, "message": error.message, "request_id": request_id})


def error_response(error: ApiError, request_id: str | None) -> Response:
    headers = {"x-request-id": request_id} if request_id else None
    return Response(error_body(error, request_id), error.status, headers=headers, media_type=JSON)
