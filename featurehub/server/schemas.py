"""The JSON shapes of the feature server, for its OpenAPI schema and its metadata answers.

The pydantic models here document responses only: the server builds its answers with orjson
and never validates them at run time. The request body of /v1/features is a JSON Schema dict
(`FEATURES_REQUEST`) the handler's hand-written checks follow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from featurehub.definitions.catalog import Catalog

DESCRIPTION = (
    "Online feature values for models, with a status per value (present, not_found, expired) "
    "and its event timestamp. Entities are columnar, as in Feast: "
    '`{"driver_id": [1001, 1002]}`. See docs/feature-server.md.'
)


KEY_VALUE = {"anyOf": [{"type": "integer"}, {"type": "string"}]}

FEATURES_REQUEST: dict[str, Any] = {
    "title": "FeaturesRequest",
    "type": "object",
    "additionalProperties": False,
    "required": ["entities"],
    "oneOf": [{"required": ["features"]}, {"required": ["feature_service"]}],
    "description": 'Exactly one of "features" or "feature_service".',
    "properties": {
        "features": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string"},
            "description": '"view:feature" references ("view:*" for all of a view); '
            "a feature service name is accepted as an item too.",
        },
        "feature_service": {"type": "string", "description": "A feature service name."},
        "entities": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "array", "minItems": 1, "items": KEY_VALUE},
            "description": "Columnar entity keys: join key -> one value per entity row. "
            "Integers are 64-bit; null is not a key.",
        },
        "full_feature_names": {
            "type": "boolean",
            "default": False,
            "description": "Name features view__feature instead of feature.",
        },
    },
    "example": {
        "feature_service": "trip_completion_v1",
        "entities": {
            "driver_id": [1001, 1002],
            "customer_id": [7, 8],
            "pickup_zone": ["z1", "z2"],
            "dropoff_zone": ["z3", "z4"],
        },
    },
}

FEATURES_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": FEATURES_REQUEST}},
    },
    "parameters": [
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Used as request_id when printable ASCII of at most 128 characters; "
            "else (longer, or not printable ASCII) the server makes one: a request is never "
            "refused for its id.",
        }
    ],
}


class FeatureColumn(BaseModel):
    values: list[Any] = Field(description="One value per entity row; null unless present.")
    statuses: list[Literal["present", "not_found", "expired"]]
    event_timestamps: list[datetime | None] = Field(
        description="Event time of each stored value (ISO 8601, UTC), null when not found."
    )


class FeaturesResponse(BaseModel):
    request_id: str
    feature_service: str | None
    keys: dict[str, list[int | str]] = Field(description="The join keys used, columnar.")
    features: dict[str, FeatureColumn] = Field(description="Feature name -> its column.")


class ErrorResponse(BaseModel):
    error: str = Field(description="A short kind, e.g. not_found, invalid_entities.")
    message: str = Field(description="What is wrong and how to fix it.")
    request_id: str | None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


FEATURES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": FeaturesResponse, "description": "Feature values, columnar."},
    400: _error("Malformed JSON or headers."),
    401: _error("Missing or invalid API key (when keys are configured)."),
    404: _error("Unknown feature service or feature view."),
    413: _error("Body larger than server.max_body_bytes, or more entity rows than allowed."),
    415: _error("A compressed body (Content-Encoding): send it uncompressed."),
    422: _error("Invalid request: unknown feature, missing join key, wrong key type, ..."),
    503: _error("Online store unavailable, or the registry not read yet."),
}


PREDICT_REQUEST: dict[str, Any] = {
    "title": "PredictRequest",
    "type": "object",
    "additionalProperties": False,
    "required": ["entities"],
    "properties": {
        "entities": FEATURES_REQUEST["properties"]["entities"],
        "version": {
            "type": "integer",
            "minimum": 1,
            "description": "Answer with this version (arm pinned) instead of the traffic policy's.",
        },
        "include_features": {
            "type": "boolean",
            "default": False,
            "description": "Also answer the online features the model was given.",
        },
    },
    "example": {"entities": {"driver_id": [1001, 1002]}},
}

PREDICT_OPENAPI: dict[str, Any] = {
    **FEATURES_OPENAPI,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PREDICT_REQUEST}},
    },
}


class PredictResponse(BaseModel):
    model: str
    version: int | None = Field(description="The version that answered (null: several).")
    arm: str = Field(description="production, canary, a, b or pinned; mixed: several.")
    request_id: str
    predictions: list[Any] = Field(description="One prediction per entity row.")
    versions: list[int] = Field(description="The version that answered each row.")
    arms: list[str] = Field(description="The arm of each row (by a hash of its key).")
    features: dict[str, list[Any]] | None = Field(
        default=None, description="With include_features: feature -> one value per row."
    )


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **FEATURES_RESPONSES,
    200: {"model": PredictResponse, "description": "One prediction per entity row."},
    404: _error("Unknown model or version, or a model without a production version."),
    500: _error("model_error: the model failed on well-formed input (a genuine model error)."),
}


class FeatureRef(BaseModel):
    name: str
    dtype: str
    description: str


class FeatureViewInfo(BaseModel):
    name: str
    entities: list[str]
    join_keys: list[str]
    features: list[FeatureRef]
    ttl_seconds: float | None
    online: bool
    owner: str
    tags: dict[str, str]
    description: str


class FeatureViews(BaseModel):
    feature_views: list[FeatureViewInfo]


class FeatureServiceInfo(BaseModel):
    name: str
    features: list[str] = Field(description='"view:feature" references, in serving order.')
    join_keys: list[str]
    owner: str
    tags: dict[str, str]
    description: str


class FeatureServices(BaseModel):
    feature_services: list[FeatureServiceInfo]


class Health(BaseModel):
    status: Literal["ok"]


class PartHealth(BaseModel):
    ok: bool
    error: str | None


class DataHealth(BaseModel):
    ok: bool
    lost_views: dict[str, str]  # view -> why we think its online data is gone, and the fix


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    registry: PartHealth
    online_store: PartHealth
    online_data: DataHealth


def metadata_responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"model": model, "description": "Registered definitions."},
        401: _error("Missing or invalid API key (when keys are configured)."),
        503: _error("The registry has not been read yet."),
    }


def feature_views_json(catalog: Catalog) -> dict[str, Any]:
    views = []
    for name in sorted(catalog.feature_views):
        view = catalog.feature_views[name]
        views.append(
            {
                "name": view.name,
                "entities": [entity.name for entity in view.entities],
                "join_keys": list(view.join_keys),
                "features": [
                    {"name": f.name, "dtype": f.dtype.name, "description": f.description}
                    for f in view.schema
                ],
                "ttl_seconds": view.ttl.total_seconds() if view.ttl is not None else None,
                "online": view.online,
                "owner": view.owner,
                "tags": dict(view.tags),
                "description": view.description,
            }
        )
    return {"feature_views": views}


def feature_services_json(catalog: Catalog) -> dict[str, Any]:
    services = []
    for name in sorted(catalog.feature_services):
        service = catalog.feature_services[name]
        projections = service.projections
        services.append(
            {
                "name": service.name,
                "features": [f"{p.view.name}:{f}" for p in projections for f in p.features],
                "join_keys": list(dict.fromkeys(k for p in projections for k in p.view.join_keys)),
                "owner": service.owner,
                "tags": dict(service.tags),
                "description": service.description,
            }
        )
    return {"feature_services": services}


def document_auth(app: FastAPI) -> None:
    """Add the API-key schemes to the OpenAPI schema (every operation but the probes)."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema.get("paths", {}).items():
            if path in ("/healthz", "/readyz"):
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
