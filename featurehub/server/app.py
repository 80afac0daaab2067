"""The feature server: FastAPI routes over a catalog snapshot, the online store and the log.

The request path of `POST /v1/features` does no registry query and no disk write: feature
references resolve against a `Snapshot` built by a background thread (every
`registry.refresh_seconds`, or at once on SIGHUP), the look-up is one online-store round trip,
and the served vectors go to the serving log's bounded queue. The body is parsed with orjson
and checked by hand (a pydantic request model costs more than the look-up); the OpenAPI
schema documents the same shapes through `openapi_extra` and response models.

The look-up runs on the event loop: a loopback Redis answers in tens of microseconds, less
than a thread hop. An unavailable online store would block the loop for up to its timeout, so
after a failure the store is marked down and requests answer 503 at once; one request per
probe interval (and /readyz) tries the store again, and the first success marks it up.
"""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from featurehub.config import ServerConfig
from featurehub.errors import FeaturehubError
from featurehub.feature_store import FeatureStore
from featurehub.monitoring.log_format import ServedAnswer
from featurehub.monitoring.serving_log import open_serving_log
from featurehub.online.base import OnlineStoreError
from featurehub.online.lookup import OnlineResponse, lookup
from featurehub.server import response as response_body
from featurehub.server import schemas
from featurehub.server.auth import APIKeyMiddleware
from featurehub.server.metrics import ServerMetrics
from featurehub.server.predict import Models, predict
from featurehub.server.request import (
    Answer,
    ApiError,
    Disconnected,
    api_error,
    error_body,
    error_response,
    make_request_id,
    parse_request,
    read_body,
)
from featurehub.server.snapshot import OnlineHealth, Refresher, Resolved

log = logging.getLogger("featurehub.server")

JSON = "application/json"
PREDICT_PREFIX = "/v1/models/"
PREDICT_SUFFIX = "/predict"


async def _send(send: Send, answer: Answer) -> None:
    status, body, request_id = answer
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if request_id is not None:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- the app ---------------------------------------------------------------------------------


class Server:
    """The state the routes share: store, snapshot refresher, breaker, metrics, log."""

    def __init__(self, store: FeatureStore, config: ServerConfig | None = None) -> None:
        self.store = store
        self.config = config or store.config.server
        self.metrics = ServerMetrics()
        self.metrics.online_up.set(1)
        # Refuses to start when keys were listed but all are empty (an unset ${VAR:-}).
        self.api_keys = self.config.accepted_keys(str(store.config.config_file))
        if not self.api_keys:
            log.info("no server.api_keys configured: every endpoint answers without a key")
        self.refresher = Refresher(store, store.config.registry.refresh_seconds, self.metrics)
        timeout = store.config.online_store.timeout_seconds
        self.health = OnlineHealth(min(1.0, max(0.05, timeout)))
        # `serving_log:`, which the SDK shares, with this section's deprecated log_* keys.
        settings = self.config.log_settings(store.config.serving_log)
        self.log = open_serving_log(
            settings,
            store.repo_path,
            on_dropped=self.metrics.log_dropped.inc,
            on_written=self.metrics.log_written.inc,
        )
        self.sample_rates = {name: settings.sample_rate_of(name) for name in settings.sample_rates}
        self.default_rate = settings.sample_rate
        self.models = Models(self)
        self.refresher.also.append(self.models.refresh)

    def start(self) -> None:
        self.refresher.refresh()
        self.refresher.start()
        self.log.start()

    def stop(self) -> None:
        self.refresher.stop()
        self.log.close()
        self.store.close()

    async def asgi_features(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /v1/features as a bare ASGI app: the fast path `FastPath` routes to."""
        await _send(send, await self.features(scope["headers"], receive))

    async def features(self, raw_headers: list[tuple[bytes, bytes]], receive: Receive) -> Answer:
        """The answer to a POST /v1/features: never raises for anything a client sends."""
        started = time.perf_counter()
        headers = dict(raw_headers)
        request_id = make_request_id(headers.get(b"x-request-id"))
        label = "unknown"
        try:
            snapshot = self.refresher.snapshot
            if snapshot is None:
                raise ApiError(
                    503,
                    "registry_unavailable",
                    f"the registry has not been read yet ({self.refresher.error})",
                )
            body = await read_body(headers, receive, self.config.max_body_bytes)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise ApiError(
                    400, "malformed_json", f"the body is not valid JSON: {exc}"
                ) from None
            resolved, rows, full = parse_request(payload, snapshot, self.config.max_entities)
            label = resolved.label
            response = self.online_lookup(resolved, rows, full)
        except ApiError as error:
            return self._refused(error, request_id, label, started)
        except Disconnected:
            return 400, b"", None
        except FeaturehubError as exc:
            return self._refused(api_error(exc), request_id, label, started)
        except Exception:  # a bug: answer JSON, log the traceback, count it
            log.exception("POST /v1/features failed (request_id %s)", request_id)
            internal = ApiError(500, "internal", "internal error; the server log has details")
            return self._refused(internal, request_id, label, started)

        stamps = response_body.event_timestamps(response)
        body = response_body.answer_body(request_id, resolved.service, response, stamps)
        metrics = self.metrics
        for statuses in response.statuses.values():
            if statuses.count("present") != len(statuses):
                if missing := statuses.count("not_found"):
                    metrics.not_found.inc(missing)
                if expired := statuses.count("expired"):
                    metrics.expired.inc(expired)
        rate = self.sample_rates.get(label, self.default_rate)
        if rate >= 1.0 or (rate > 0.0 and random.random() < rate):
            self.log.log(ServedAnswer(request_id, time.time(), resolved.service, len(rows), body))
        metrics.observe("/v1/features", label, 200, time.perf_counter() - started)
        return 200, body, request_id

    def online_lookup(
        self, resolved: Resolved, rows: list[dict[str, Any]], full: bool = False
    ) -> OnlineResponse:
        """The one online look-up of both endpoints, behind the breaker: while the store is
        marked down, a 503 at once (one request per probe interval tries it)."""
        if not self.health.allow():
            raise ApiError(503, "online_store_unavailable", self.health.retry_message())
        looked_up = time.perf_counter()
        try:
            response = lookup(
                self.store.online_store, resolved.projections, rows, full_feature_names=full
            )
        except OnlineStoreError as exc:
            self.health.failed(str(exc))
            self.metrics.online_up.set(0)
            raise
        finally:
            self.metrics.online_latency.observe(time.perf_counter() - looked_up)
        if not self.health.up:
            self.health.succeeded()
            self.metrics.online_up.set(1)
        return response

    async def asgi_predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /v1/models/{name}/predict as a bare ASGI app (the fast path)."""
        name = scope["path"][len(PREDICT_PREFIX) : -len(PREDICT_SUFFIX)]
        answer = await predict(self, name, scope["headers"], receive)
        await _send(send, answer)

    def _refused(self, error: ApiError, request_id: str, label: str, started: float) -> Answer:
        self.metrics.error(error.kind)
        self.metrics.observe("/v1/features", label, error.status, time.perf_counter() - started)
        return error.status, error_body(error, request_id), request_id

    async def ready(self) -> tuple[bool, dict[str, Any]]:
        """Registry read, online store answering a ping (which also resets the breaker), and
        still holding what was written to it (checked here and at each registry refresh)."""
        registry_ok = self.refresher.snapshot is not None
        try:
            await run_in_threadpool(self.store.online_store.ping)
            online_ok, online_error = True, None
            self.health.succeeded()
        except FeaturehubError as exc:
            online_ok, online_error = False, str(exc)
            self.health.failed(str(exc))
        self.metrics.online_up.set(1 if online_ok else 0)
        if online_ok:
            await run_in_threadpool(self.refresher.check_online_data)
        lost = self.refresher.lost_views or {}
        return registry_ok and online_ok and not lost, {
            "registry": {"ok": registry_ok, "error": None if registry_ok else self.refresher.error},
            "online_store": {"ok": online_ok, "error": online_error},
            "online_data": {"ok": not lost, "lost_views": lost},
        }


class FastPath:
    """The ASGI app served: POST /v1/features goes straight to the handler, everything else
    (metadata, probes, /metrics, /docs, /openapi.json) through FastAPI. It skips FastAPI's
    routing, dependency solving and Request object on the hot path (~100 us per request)."""

    def __init__(self, api: FastAPI, server: Server) -> None:
        self.api = api
        self.server = server
        self.state = api.state
        self.app: ASGIApp = api
        if server.api_keys:
            self.app = APIKeyMiddleware(api, server.api_keys)
            self.features: ASGIApp = APIKeyMiddleware(server.asgi_features, server.api_keys)
            self.predict: ASGIApp = APIKeyMiddleware(server.asgi_predict, server.api_keys)
        else:
            self.features = server.asgi_features
            self.predict = server.asgi_predict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/features"
            and scope["method"] == "POST"
        ):
            await self.features(scope, receive, send)
            return
        if scope["type"] == "http" and scope["method"] == "POST" and _is_predict(scope["path"]):
            await self.predict(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_predict(path: str) -> bool:
    """/v1/models/NAME/predict with one path segment as NAME (a name has no slash)."""
    if not (path.startswith(PREDICT_PREFIX) and path.endswith(PREDICT_SUFFIX)):
        return False
    name = path[len(PREDICT_PREFIX) : -len(PREDICT_SUFFIX)]
    return bool(name) and "/" not in name


def create_app(store: FeatureStore, config: ServerConfig | None = None) -> FastPath:
    """The feature server of `store`'s repo (an ASGI app; FastAPI behind a fast path for
    POST /v1/features). `config` replaces featurehub.yaml's `server:` section."""
    server = Server(store, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(server.start)
        # Imports and the catalog are long-lived: move them out of the collector's sight, so
        # that a full collection scans what requests allocate, not the whole heap (a full
        # collection over it stalled requests by tens of milliseconds).
        gc.collect()
        gc.freeze()
        _on_sighup(server.refresher.wake)
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)
            gc.unfreeze()

    app = FastAPI(
        title="featurehub feature server",
        version="1",
        description=schemas.DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,  # paths are exact: /healthz/ is a 404, not a redirect
        exception_handlers={HTTPException: _http_error},
    )
    app.state.server = server

    @app.post(
        "/v1/features",
        summary="Online feature values of entities",
        response_model=None,
        responses=schemas.FEATURES_RESPONSES,
        openapi_extra=schemas.FEATURES_OPENAPI,
        tags=["features"],
    )
    async def get_features(request: Request) -> Response:
        # FastPath answers this route before FastAPI sees it; this is the same handler, for
        # the OpenAPI schema and for anyone mounting the FastAPI app without FastPath.
        status, body, request_id = await server.features(request.scope["headers"], request.receive)
        headers = {"x-request-id": request_id} if request_id else None
        return Response(body, status, headers=headers, media_type=JSON)

    @app.post(
        "/v1/models/{name}/predict",
        summary="Predictions of a model over its feature service's online features",
        response_model=None,
        responses=schemas.PREDICT_RESPONSES,
        openapi_extra=schemas.PREDICT_OPENAPI,
        tags=["models"],
    )
    async def predict_route(name: str, request: Request) -> Response:
        # FastPath answers this route first; the same handler, for the OpenAPI schema.
        status, body, request_id = await predict(
            server, name, request.scope["headers"], request.receive
        )
        headers = {"x-request-id": request_id} if request_id else None
        return Response(body, status, headers=headers, media_type=JSON)

    @app.get(
        "/v1/feature-services",
        summary="Registered feature services",
        response_model=None,
        responses=schemas.metadata_responses(schemas.FeatureServices),
        tags=["metadata"],
    )
    async def feature_services() -> Response:
        return _metadata(server, "services_json", "/v1/feature-services")

    @app.get(
        "/v1/feature-views",
        summary="Registered feature views",
        response_model=None,
        responses=schemas.metadata_responses(schemas.FeatureViews),
        tags=["metadata"],
    )
    async def feature_views() -> Response:
        return _metadata(server, "views_json", "/v1/feature-views")

    # HEAD answers as GET without the body (Starlette drops it): load balancers probe with it.
    liveness: dict[str, Any] = {
        "summary": "Liveness: the process answers",
        "response_model": None,
        "responses": {200: {"model": schemas.Health, "description": "The process is up."}},
        "tags": ["probes"],
    }

    @app.head("/healthz", operation_id="healthz_head", **liveness)
    @app.get("/healthz", **liveness)
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    readiness: dict[str, Any] = {
        "summary": "Readiness: registry read and online store reachable",
        "response_model": None,
        "responses": {
            200: {"model": schemas.Readiness, "description": "Ready to serve."},
            503: {"model": schemas.Readiness, "description": "Not ready; see which part."},
        },
        "tags": ["probes"],
    }

    @app.head("/readyz", operation_id="readyz_head", **readiness)
    @app.get("/readyz", **readiness)
    async def readyz() -> Response:
        ok, parts = await server.ready()
        body = orjson.dumps({"status": "ok" if ok else "unavailable", **parts})
        return Response(body, 200 if ok else 503, media_type=JSON)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_model=None,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
        tags=["probes"],
    )
    async def metrics() -> Response:
        return Response(generate_latest(server.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    if server.api_keys:
        schemas.document_auth(app)
    return FastPath(app, server)


def from_env() -> FastPath:
    """The app of the repo `$FEATUREHUB_REPO` (default: the working directory), for
    `uvicorn --factory featurehub.server.app:from_env` and `featurehub serve`."""
    return create_app(FeatureStore(os.environ.get("FEATUREHUB_REPO", ".")))


async def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and any other answer of FastAPI's router, in the documented error shape."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        error = ApiError(404, "not_found", f"no endpoint {path}{_endpoint_hint(request, path)}")
    elif exc.status_code == 405:
        # every method of the path: the router names only those of the first route matched
        # (GET /healthz, not its HEAD twin)
        methods = {m for r in _api_routes(request) if r.path == path for m in r.methods or ()}
        headers["Allow"] = allowed = ", ".join(sorted(methods)) or headers.get("Allow", "")
        error = ApiError(
            405, "method_not_allowed", f"{method} {path} is not allowed; use {allowed}"
        )
    else:
        kind = str(exc.detail).lower().replace(" ", "_")
        error = ApiError(exc.status_code, kind, str(exc.detail))
    request_id = make_request_id(request.headers.get("x-request-id", "").encode() or None)
    answer = error_response(error, request_id)
    answer.headers.update(headers)
    return answer


def _api_routes(request: Request) -> list[APIRoute]:
    return [route for route in request.app.routes if isinstance(route, APIRoute)]


def _endpoint_hint(request: Request, path: str) -> str:
    """'; did you mean /x (no trailing slash)?' when the path is an endpoint's plus a slash,
    else the list of endpoints."""
    paths = sorted({route.path for route in _api_routes(request)})
    if path.rstrip("/") in paths:
        return f"; did you mean {path.rstrip('/')} (no trailing slash)?"
    return "; the endpoints are " + ", ".join(paths) + " (see /openapi.json)"


def _metadata(server: Server, attribute: str, endpoint: str) -> Response:
    started = time.perf_counter()
    snapshot = server.refresher.snapshot
    if snapshot is None:
        error = ApiError(
            503,
            "registry_unavailable",
            f"the registry has not been read yet ({server.refresher.error})",
        )
        server.metrics.observe(endpoint, "", 503, time.perf_counter() - started)
        return error_response(error, None)
    server.metrics.observe(endpoint, "", 200, time.perf_counter() - started)
    return Response(getattr(snapshot, attribute), media_type=JSON)


def _on_sighup(callback: Any) -> None:
    """Re-read the registry on SIGHUP (main thread of a process with an event loop only)."""
    import asyncio

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        log.debug("SIGHUP handler not installed (not the main thread)")
