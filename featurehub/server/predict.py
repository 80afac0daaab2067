"""POST /v1/models/{name}/predict: the model's features from the online store, its answer.

The features come through the same path as POST /v1/features (`Server.online_lookup`: the
snapshot's resolved service, the entity checks, the breaker on the online store). Routes
(each model's production version and traffic policy) are read with the catalog snapshot, in
the background, so a policy change reaches a running server within
`registry.refresh_seconds` (at once on SIGHUP). A request takes the route it started with:
an in-flight request finishes on its versions even if the policy changes meanwhile.

Models are loaded once per version (`store.models.load`, which checks the artifact's
sha256) and kept while a route names them or a pinned request used them within
`models.keep_unused_seconds`; the rest are unloaded at a registry refresh. A request holds
the `LoadedModel`s it started with, so an unload never breaks one. A pinned version the
registry does not hold is remembered as missing until the next refresh, so `{"version": 999}`
costs no registry query per request. A model typically faster than `INLINE_SECONDS` predicts
on the event loop; a slower one in a worker thread, so that it does not hold the loop the
feature endpoint runs on. The model is given the look-up's values as a matrix when it takes
one (`LoadedModel.predict_online`): no DataFrame or Arrow table is built per request.

A failing canary (its predict raises, or its artifact cannot be loaded) does not fail the
request: production answers its rows, which the answer and the serving log then give as
production's, while the failure counts as a canary error in /metrics and in the canary's
rollback window. An A/B arm b does not fall back (an experiment's arm must not silently
become the other), nor does a pinned version; a failing shadow never touches the answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool

from featurehub.config import CanaryBounds
from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError, FeaturehubError, NotFoundError
from featurehub.models.loaded import LoadedModel, ModelPredictError
from featurehub.models.traffic import (
    CANARY_ARM,
    PINNED,
    PRODUCTION,
    SHADOW_ARM,
    assign,
    shadow_version,
    splits,
)
from featurehub.monitoring.log_format import ModelServed, ServedAnswer, answer_body
from featurehub.online.lookup import OnlineResponse
from featurehub.registry.models import ModelError, ModelNotFoundError
from featurehub.registry.traffic import CANARY, Route, TrafficPolicy
from featurehub.server import response as response_body
from featurehub.server.request import (
    Answer,
    ApiError,
    Disconnected,
    api_error,
    check_fields,
    entity_rows,
    error_body,
    make_request_id,
    read_body,
)

if TYPE_CHECKING:
    from featurehub.server.app import Server

log = logging.getLogger("featurehub.server")

# A version whose predict typically takes less than this runs on the event loop.
# A worker thread frees the loop only while the model releases the GIL (onnxruntime, numpy
# on big arrays) or runs past the interpreter's 5 ms switch interval; a scikit-learn model on
# a few rows does neither, and the hop (0.1-0.3 ms, and a loop wake-up) costs more than it
# frees. Slower versions (and a version's first predict, not measured yet) run in a thread.
INLINE_SECONDS = 0.002
RECENT_PREDICTS = 7  # a version's typical predict: the median of its last 7
MAX_VERSION = 2**31 - 1  # the registry's integer column
ROLLBACK_ACTOR = "featurehub-server"
# Pinned versions remembered as missing until the next registry refresh, at most: beyond it
# a missing version is looked up each time (a client cycling made-up names costs queries,
# not memory).
MAX_MISSING = 10_000


class Models:
    """The server's models: routes (refreshed with the snapshot), loaded versions."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.registry = server.store.models
        self.routes: dict[str, Route] = {}
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        # Each version's last predicts' seconds (a request's rows of it), and their median:
        # one slow call (a GC pause, the process preempted on a busy machine) does not send
        # the next requests to a thread.
        self._recent: dict[tuple[str, int], deque[float]] = {}
        self.predict_seconds: dict[tuple[str, int], float] = {}
        # When each loaded version was last named by a route (stamped at each refresh) or
        # used by a pinned request: what `unload_unused` compares with keep_unused_seconds.
        self.last_used: dict[tuple[str, int], float] = {}
        self.keep_unused_seconds = server.store.config.models.keep_unused_seconds
        # (name, version) -> the 404 message, for pinned versions the registry did not hold
        # at their first request since the last refresh (a new dict at each refresh).
        self._missing: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self.watch = CanaryWatch(server, self, server.store.config.models.canary)

    def refresh(self) -> None:
        """Read every model's route, forget the missing versions (one registered since is
        found at its next request), unload the unused ones (called by the snapshot's
        refresher thread)."""
        routes = self.registry.traffic_catalog.routes()
        self.routes = routes
        self._missing = {}
        self.unload_unused(routes, time.monotonic())

    def unload_unused(self, routes: dict[str, Route], now: float) -> None:
        """Drop the loaded versions no route names and no pinned request used within
        `keep_unused_seconds`. Requests in flight hold their `LoadedModel`; a version asked
        for again is loaded again (its sha256 checked again)."""
        named = {
            (name, version)
            for name, route in routes.items()
            for version in (route.production, route.policy.version)
            if version is not None
        }
        for key in list(self._loaded):
            if key in named:
                self.last_used[key] = now
            elif now - self.last_used.get(key, now) >= self.keep_unused_seconds:
                self._loaded.pop(key, None)
                self.last_used.pop(key, None)
                self._recent.pop(key, None)
                self.predict_seconds.pop(key, None)  # its next first predict: in a thread
                log.info(
                    "unloaded model %s version %s: no traffic route names it and no request "
                    "used it for models.keep_unused_seconds (%gs)",
                    *key,
                    self.keep_unused_seconds,
                )

    def used(self, name: str, version: int) -> None:
        """A pinned request used the version (routed ones are stamped at each refresh)."""
        self.last_used[(name, version)] = time.monotonic()

    def missing(self, name: str, version: int) -> str | None:
        """The 404 message of a version the registry did not hold since the last refresh."""
        return self._missing.get((name, version))

    def timed(self, name: str, version: int, seconds: float) -> None:
        """One predict's seconds (on the loop or in a worker thread)."""
        key = (name, version)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent.setdefault(key, deque(maxlen=RECENT_PREDICTS))
        recent.append(seconds)
        self.predict_seconds[key] = sorted(recent)[len(recent) // 2]  # the median, or near

    def inline(self, name: str, versions: Iterable[int]) -> bool:
        """Whether every version typically predicts in under `INLINE_SECONDS` (a version
        not measured yet does not: its first predict runs in a thread)."""
        seconds = self.predict_seconds
        return all(seconds.get((name, version), 1.0) < INLINE_SECONDS for version in versions)

    def cached(self, name: str, version: int) -> LoadedModel | None:
        return self._loaded.get((name, version))

    def loaded(self, name: str, version: int) -> LoadedModel:
        """The version, loaded on first use (artifact checked then) and kept; a version the
        registry does not hold is remembered as missing until the next refresh."""
        key = (name, version)
        model = self._loaded.get(key)
        if model is None:
            missing = self._missing  # a refresh meanwhile replaces it: no stale entry then
            with self._lock:  # one load per version, however many requests wait for it
                model = self._loaded.get(key)
                if model is None:
                    try:
                        model = self.registry.load(f"{name}:{version}")
                    except ModelNotFoundError as exc:
                        message = (
                            f"{exc} (as of the server's last registry read: a version "
                            "registered since is served after the next one, within "
                            "registry.refresh_seconds, or at once on SIGHUP)"
                        )
                        if len(missing) < MAX_MISSING:
                            missing[key] = message
                        raise ModelNotFoundError(message) from None
                    self.last_used[key] = time.monotonic()
                    self._loaded[key] = model
        return model


@dataclass
class CanaryWatch:
    """The canary arm's last `window` outcomes per model; above a bound, the server stops
    routing to it (at once, here), records a production-only policy with the reason (the
    other servers follow at their next refresh), and counts it."""

    server: Server
    models: Models
    bounds: CanaryBounds
    outcomes: dict[tuple[str, int], deque[tuple[bool, float]]] = field(default_factory=dict)

    def observe(self, name: str, route: Route, failed: bool, seconds: float) -> None:
        bounds = self.bounds
        if bounds.max_error_rate is None and bounds.max_p99_ms is None:
            return
        key = (name, route.policy_id)
        window = self.outcomes.get(key)
        if window is None:
            window = self.outcomes[key] = deque(maxlen=bounds.window)
        window.append((failed, seconds))
        if len(window) < bounds.window:
            return
        reason = self.crossed(window)
        if reason is None:
            return
        del self.outcomes[key]
        self.roll_back(name, route, reason)

    def crossed(self, window: deque[tuple[bool, float]]) -> str | None:
        bounds = self.bounds
        errors = sum(failed for failed, _ in window)
        rate = errors / len(window)
        if bounds.max_error_rate is not None and rate > bounds.max_error_rate:
            return (
                f"error rate {rate:.3g} over the last {len(window)} canary requests exceeds "
                f"models.canary.max_error_rate {bounds.max_error_rate:g}"
            )
        p99 = float(np.percentile([seconds for _, seconds in window], 99)) * 1000
        if bounds.max_p99_ms is not None and p99 > bounds.max_p99_ms:
            return (
                f"p99 latency {p99:.3g} ms over the last {len(window)} canary requests exceeds "
                f"models.canary.max_p99_ms {bounds.max_p99_ms:g}"
            )
        return None

    def roll_back(self, name: str, route: Route, reason: str) -> None:
        version = route.policy.version
        message = f"canary version {version} of {name} rolled back automatically: {reason}"
        log.error(message)
        self.models.routes = {
            **self.models.routes,
            name: Route(route.production, TrafficPolicy(), route.policy_id),
        }
        self.server.metrics.canary_rollbacks.labels(name, str(version)).inc()
        thread = threading.Thread(
            target=self._record, args=(name, route, message), name="featurehub-rollback"
        )
        thread.start()

    def _record(self, name: str, route: Route, message: str) -> None:
        """In the registry, unless someone changed the policy since (their change stands)."""
        try:
            self.models.registry.traffic_catalog.set(
                name,
                TrafficPolicy(),
                actor=ROLLBACK_ACTOR,
                reason=message,
                unless_changed_since=route.policy_id,
            )
        except Exception as exc:  # the local rollback holds; the next one will retry
            log.error("could not record the rollback of %s: %s: %s", name, type(exc).__name__, exc)
        self.server.refresher.wake()


@dataclass
class Routing:
    """Who answers a request's rows: each row's version and arm, the canary whose rows
    production answers if it fails (None: no canary, or a pinned request), the shadow, and
    the versions loaded for it (held by the request: an unload does not reach them) or why
    one could not be (a canary's or shadow's; anyone else's fails the request)."""

    versions: list[int]
    arms: list[str]
    production: int | None
    canary: int | None
    shadow: int | None
    loaded: dict[int, LoadedModel]
    unavailable: dict[int, str] = field(default_factory=dict)


@dataclass
class Prediction:
    """Predictions per row, and the version and arm that answered each (a failed canary's
    rows are production's); per version (the shadow's as -version) its predictions and its
    predict's seconds (observed in the metrics on the loop, as the worker thread may not)."""

    values: list[Any]
    versions: list[int]
    arms: list[str]
    shadow: list[Any] | None = None
    shadow_error: str | None = None
    canary_error: str | None = None  # the canary failed: production answered its rows
    fallen_back: int = 0  # how many rows
    arrays: dict[int, np.ndarray] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)


async def predict(
    server: Server, name: str, raw_headers: list[tuple[bytes, bytes]], receive: Any
) -> Answer:
    """The answer to a POST /v1/models/{name}/predict: never raises for anything a client
    sends; a model failing on well-formed input is a 500 named model_error."""
    started = time.perf_counter()
    headers = dict(raw_headers)
    request_id = make_request_id(headers.get(b"x-request-id"))
    models: Models = server.models
    route: Route | None = None
    versions: list[int] = []
    arms: list[str] = []
    try:
        snapshot = server.refresher.snapshot
        if snapshot is None:
            raise ApiError(
                503,
                "registry_unavailable",
                f"the registry has not been read yet ({server.refresher.error})",
            )
        body = await read_body(headers, receive, server.config.max_body_bytes)
        payload = _payload(body)
        pinned = payload.get("version")
        route = models.routes.get(name)
        if route is None:
            try:
                check_name("model", name)
            except DefinitionError as exc:
                raise ApiError(404, "model_not_found", str(exc)[:300]) from None
        if pinned is None and (route is None or route.production is None):
            raise ApiError(
                404,
                "model_not_found",
                f"model {name!r} has no production version (as of the server's last registry "
                f"read). Promote one: featurehub models promote {name} VERSION --stage "
                'production, or name a version: {"version": N}',
            )
        first: int = pinned if pinned is not None else route.production  # type: ignore[union-attr,assignment]
        model = await _loaded(models, name, first)
        resolved = snapshot.services.get(model.version.feature_service)
        if resolved is None:
            raise ApiError(
                503,
                "feature_service_unavailable",
                f"model {name} version {first} reads feature service "
                f"{model.version.feature_service!r}, which the registry no longer holds; "
                "apply it again or promote a version of a current service",
            )
        rows = entity_rows(payload["entities"], resolved, server.config.max_entities)
        response = server.online_lookup(resolved, rows)
        if pinned is not None:
            models.used(name, pinned)
            versions, arms = [pinned] * len(rows), [PINNED] * len(rows)
            routing = Routing(versions, arms, None, None, None, {pinned: model})
        else:
            assert route is not None
            # The keys only when arms depend on them: a production-only route builds none.
            keys = [list(row.values()) for row in rows] if splits(route) else [()] * len(rows)
            versions, arms = assign(name, route, keys)
            routing = await _routing(models, name, route, versions, arms, model)
        needed = routing.loaded.keys()
        if models.inline(name, needed):
            result = _predict(name, response, routing, models)
        else:
            result = await run_in_threadpool(_predict, name, response, routing, models)
        versions, arms = result.versions, result.arms
        if result.canary_error is not None:
            log.warning(
                "canary version %s of %s failed (request_id %s); production answered its "
                "rows (%d) instead: %s",
                routing.canary,
                name,
                request_id,
                result.fallen_back,
                result.canary_error,
            )
    except ApiError as refused:
        return _refused(server, name, route, versions, arms, refused, request_id, started)
    except Disconnected:
        return 400, b"", None
    except ModelPredictError as exc:
        failed = ApiError(500, "model_error", str(exc))
        return _refused(server, name, route, versions, arms, failed, request_id, started)
    except FeaturehubError as exc:
        mapped = api_error(exc)
        if isinstance(exc, ModelError) and not isinstance(exc, NotFoundError):
            mapped = ApiError(500, "model_unavailable", str(exc))  # the artifact, not the client
        return _refused(server, name, route, versions, arms, mapped, request_id, started)
    except Exception:
        log.exception("POST /v1/models/%s/predict failed (request_id %s)", name, request_id)
        internal = ApiError(500, "internal", "internal error; the server log has details")
        return _refused(server, name, route, versions, arms, internal, request_id, started)

    pairs = list(dict.fromkeys(zip(versions, arms, strict=True)))  # once, for answer and metrics
    answer: dict[str, Any] = {
        "model": name,
        "version": versions[0] if all(version == versions[0] for version, _ in pairs) else None,
        "arm": arms[0] if all(arm == arms[0] for _, arm in pairs) else "mixed",
        "request_id": request_id,
        "predictions": result.values,
        "versions": versions,
        "arms": arms,
    }
    if payload.get("include_features"):
        answer["features"] = response.values
    body = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    seconds = time.perf_counter() - started
    _observe(server, name, route, pairs, 200, seconds, result)
    _log(server, name, request_id, resolved.service, response, result, routing.shadow)
    return 200, body, request_id


def _payload(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    check_fields(payload, ("entities", "version", "include_features"))
    version = payload.get("version")
    if version is not None and (type(version) is not int or not 1 <= version <= MAX_VERSION):
        raise ApiError(422, "bad_request", "version must be a positive integer, e.g. 3")
    if not isinstance(payload.get("include_features", False), bool):
        raise ApiError(422, "bad_request", "include_features must be true or false")
    if "entities" not in payload:
        raise ApiError(
            422,
            "invalid_entities",
            'the body needs "entities": join key -> list of values, e.g. {"driver_id": [1001]}',
        )
    return payload


async def _loaded(models: Models, name: str, version: int) -> LoadedModel:
    """Loaded already: no thread hop; known missing: its 404 at once; else loaded in a
    worker thread (it reads the registry and the file)."""
    model = models.cached(name, version)
    if model is not None:
        return model
    missing = models.missing(name, version)
    if missing is not None:
        raise ModelNotFoundError(missing)
    return await run_in_threadpool(models.loaded, name, version)


async def _routing(
    models: Models,
    name: str,
    route: Route,
    versions: list[int],
    arms: list[str],
    production: LoadedModel,
) -> Routing:
    """The versions the route's rows need, loaded; a canary or shadow that cannot be loaded
    is noted (its failure is handled by `_predict`), any other fails the request."""
    first = production.version.version
    shadow = shadow_version(route)
    needed = {*versions, shadow} if shadow else set(versions)
    policy = route.policy
    canary = policy.version if policy.policy == CANARY and policy.version in needed else None
    routing = Routing(versions, arms, first, canary, shadow, {first: production})
    for version in needed - {first}:
        try:
            routing.loaded[version] = await _loaded(models, name, version)
        except ModelError as exc:
            if version not in (canary, routing.shadow) or isinstance(exc, NotFoundError):
                raise
            routing.unavailable[version] = str(exc)
    return routing


def _predict(name: str, response: OnlineResponse, routing: Routing, models: Models) -> Prediction:
    """Each version predicts its rows (the canary first: production answers its rows if it
    fails), and the shadow every row; on the event loop or in a worker thread
    (`INLINE_SECONDS`)."""
    versions = routing.versions
    result = Prediction([None] * len(versions), versions, routing.arms)
    canary = routing.canary
    if canary is not None:
        rows = [i for i, v in enumerate(versions) if v == canary]
        try:
            _answer(name, canary, _model(routing, canary), response, rows, result, models)
        except ModelError as exc:  # a genuine model error, or its artifact could not load
            result.canary_error = str(exc)
            result.fallen_back = len(rows)
            production = routing.production
            assert production is not None
            result.versions = [production if v == canary else v for v in versions]
            pairs = zip(versions, routing.arms, strict=True)
            result.arms = [PRODUCTION if v == canary else a for v, a in pairs]
            canary = None
    distinct = set(result.versions) - {canary}
    for version in distinct:
        indices = None
        if len(distinct) != 1 or canary is not None:
            indices = [i for i, v in enumerate(result.versions) if v == version]
        _answer(name, version, routing.loaded[version], response, indices, result, models)
    shadow = routing.shadow
    if shadow is not None:
        try:
            began = time.perf_counter()
            shadowed = _model(routing, shadow).predict_online(response)
            result.seconds[-shadow] = seconds = time.perf_counter() - began
            models.timed(name, shadow, seconds)
            result.shadow = shadowed.tolist()
            result.arrays[-shadow] = shadowed
        except Exception as exc:  # the shadow never fails the request: counted and logged
            result.shadow_error = f"{type(exc).__name__}: {exc}"
            log.warning("shadow version %s of %s failed: %s", shadow, name, result.shadow_error)
    return result


def _model(routing: Routing, version: int) -> LoadedModel:
    """The canary's or shadow's loaded version, or its load's failure raised again."""
    model = routing.loaded.get(version)
    if model is None:
        raise ModelError(routing.unavailable[version])
    return model


def _answer(
    name: str,
    version: int,
    model: LoadedModel,
    response: OnlineResponse,
    rows: list[int] | None,
    result: Prediction,
    models: Models,
) -> None:
    """`version` predicts `rows` (None: every row) into `result`; its time is kept whether
    it answered or raised (a failing canary's time counts for the inline decision too)."""
    began = time.perf_counter()
    try:
        predicted = model.predict_online(response, rows)
    finally:
        seconds = time.perf_counter() - began
        models.timed(name, version, seconds)
    result.seconds[version] = seconds
    result.arrays[version] = predicted
    values = predicted.tolist()
    if rows is None:
        result.values = values
    else:
        for index, value in zip(rows, values, strict=True):
            result.values[index] = value


def _observe(
    server: Server,
    name: str,
    route: Route | None,
    pairs: list[tuple[int, str]],
    code: int,
    seconds: float,
    result: Prediction | None,
) -> None:
    metrics = server.metrics
    if result is not None:
        for version, predict_seconds in result.seconds.items():  # a shadow's is -version
            metrics.observe_predict(name, abs(version), predict_seconds)
        if result.canary_error is not None and route is not None:  # production answered
            canary = route.policy.version
            assert canary is not None
            metrics.observe_model(name, canary, CANARY_ARM, 500, seconds)
            metrics.canary_fallbacks.labels(name, str(canary)).inc(result.fallen_back)
            server.models.watch.observe(name, route, True, seconds)
    for version, arm in pairs:  # each (version, arm) that answered rows, once
        values = None if result is None else result.arrays.get(version)
        metrics.observe_model(name, version, arm, code, seconds, values)
        if arm == CANARY_ARM and route is not None and route.policy.policy == CANARY:
            server.models.watch.observe(name, route, code == 500, seconds)
    if result is not None and route is not None and (shadow := shadow_version(route)):
        code = 500 if result.shadow_error else 200
        metrics.model_requests.labels(name, str(shadow), SHADOW_ARM, str(code)).inc()
        if (values := result.arrays.get(-shadow)) is not None:
            metrics.observe_predictions(name, shadow, SHADOW_ARM, values)


def _refused(
    server: Server,
    name: str,
    route: Route | None,
    versions: list[int],
    arms: list[str],
    error: ApiError,
    request_id: str,
    started: float,
) -> Answer:
    seconds = time.perf_counter() - started
    server.metrics.error(error.kind)
    # What a client sends never becomes a label: the name only once it is a served model's.
    label = name if name in server.models.routes or versions else "unknown"
    server.metrics.observe("/v1/models/predict", label, error.status, seconds)
    if versions:  # routed: the arms that were to answer count the failure
        pairs = list(dict.fromkeys(zip(versions, arms, strict=True)))
        _observe(server, name, route, pairs, error.status, seconds, None)
    return error.status, error_body(error, request_id), request_id


def _log(
    server: Server,
    name: str,
    request_id: str,
    service: str | None,
    response: OnlineResponse,
    result: Prediction,
    shadow: int | None,
) -> None:
    rate = server.sample_rates.get(service or "", server.default_rate)
    if not (rate >= 1.0 or (rate > 0.0 and np.random.random() < rate)):
        return
    stamps = response_body.event_timestamps(response)
    body = answer_body(request_id, service, response, stamps)
    now = time.time()
    rows = len(result.versions)
    server.log.log(
        ServedAnswer(
            request_id,
            now,
            service,
            rows,
            body,
            model=ModelServed(name, result.versions, result.arms, result.values),
        )
    )
    if shadow is not None and result.shadow is not None:
        server.log.log(
            ServedAnswer(
                request_id,
                now,
                service,
                rows,
                body,
                model=ModelServed(name, [shadow] * rows, [SHADOW_ARM] * rows, result.shadow),
            )
        )
