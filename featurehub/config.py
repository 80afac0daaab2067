"""featurehub.yaml: the repo's configuration, with environment overrides.

One repo serves dev and prod: each store is a URL in the file, and an environment variable
replaces it without editing the file. Values may reference variables as ${VAR} or
${VAR:-default}. Relative paths (sqlite files, the offline root) are relative to the repo.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from featurehub.errors import ConfigError

CONFIG_FILE = "featurehub.yaml"

# Environment variable -> (section, key) it overrides.
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "FEATUREHUB_REGISTRY_URL": ("registry", "url"),
    "FEATUREHUB_OFFLINE_ROOT": ("offline_store", "root"),
    "FEATUREHUB_ONLINE_STORE_URL": ("online_store", "url"),
    "FEATUREHUB_ENGINE": ("engine", "type"),
    "FEATUREHUB_SPARK_MASTER": ("spark", "master"),
    "FEATUREHUB_MODEL_ARTIFACT_ROOT": ("models", "artifact_root"),
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# The schemes `featurehub.online.factory.STORES` builds (tests/test_config.py keeps the two
# equal): checked here so a wrong URL fails when the file is read, not at the first write.
ONLINE_STORE_SCHEMES = ("sqlite", "redis", "rediss")

# A duration in seconds that must be positive and finite (a timeout, an interval).
Seconds = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegistryConfig(_Section):
    url: str = "sqlite:///data/registry.db"
    # How often a long-running reader (the feature server) reloads definitions.
    refresh_seconds: Seconds = 10.0


class OfflineStoreConfig(_Section):
    root: str = "data/offline"


class OnlineStoreConfig(_Section):
    url: str = "sqlite:///data/online.db"
    key_prefix: str = "featurehub"
    password: str | None = None
    tls: bool = False
    timeout_seconds: Seconds = 0.5


class SparkConfig(_Section):
    master: str = "local[*]"
    conf: dict[str, str] = Field(default_factory=dict)


class EngineConfig(_Section):
    type: Literal["local", "spark"] = "local"


class ServingLogConfig(_Section):
    """The serving log (`serving_log:`): every feature vector served, by the feature server
    and, when asked, by the SDK's `get_online_features`, in one Parquet log (see
    docs/serving-log.md). One section for both writers, so one log and one set of limits."""

    # Parquet serving logs, partitioned by feature service and date; repo-relative.
    root: str = "data/serving_logs"
    # Share of served feature vectors logged, and per feature service overrides.
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    sample_rates: dict[str, float] = Field(default_factory=dict)
    # Requests queued for the log writer; beyond, records are dropped (and counted).
    queue_size: int = Field(default=10_000, gt=0)
    # The writer commits a file per partition every `batch_rows` rows or `flush_seconds`,
    # whichever comes first.
    batch_rows: int = Field(default=50_000, gt=0)
    flush_seconds: Seconds = 10.0
    # The SDK's `get_online_features` logs too (sampled as the server's requests are); a
    # call's `log=True` or `log=False` overrides this.
    sdk: bool = False

    @field_validator("sample_rates")
    @classmethod
    def _rates(cls, value: dict[str, float]) -> dict[str, float]:
        return _checked_rates(value)

    def sample_rate_of(self, feature_service: str | None) -> float:
        if feature_service is None:
            return self.sample_rate
        return self.sample_rates.get(feature_service, self.sample_rate)


def _checked_rates(rates: dict[str, float]) -> dict[str, float]:
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sample rate of {name!r} is {rate}; use a number in [0, 1]")
    return rates


# The serving log's keys as they were written under `server:` before `serving_log:` existed
# -> their name in `serving_log:`. Still read, with a FutureWarning.
LEGACY_LOG_KEYS = {
    "log_root": "root",
    "log_sample_rate": "sample_rate",
    "log_sample_rates": "sample_rates",
    "log_queue_size": "queue_size",
    "log_batch_rows": "batch_rows",
    "log_flush_seconds": "flush_seconds",
}


# The events an alert destination may subscribe to (docs/alerts.md).
AlertKind = Literal["skew_check_failed", "view_stale", "materialization_failed"]
ALERT_KINDS: tuple[AlertKind, ...] = ("skew_check_failed", "view_stale", "materialization_failed")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WebhookConfig(_Section):
    """One webhook: each event is POSTed to `url` as JSON. `headers_from_env` maps a header
    to the environment variable holding its value, so a token never sits in the file."""

    url: str
    headers_from_env: dict[str, str] = Field(default_factory=dict)
    events: list[AlertKind] = Field(default_factory=lambda: list(ALERT_KINDS))

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("headers_from_env")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for header, variable in value.items():
            if not _ENV_NAME.match(variable):
                raise ValueError(
                    f"header {header!r}: {variable!r} is not an environment variable name; "
                    "write the variable's name (e.g. ALERT_TOKEN), never the secret itself"
                )
        return value


class AlertCommandConfig(_Section):
    """A command run per event: `argv` (no shell), the event JSON on stdin and in
    FEATUREHUB_ALERT_* variables; a nonzero exit is a failed delivery (retried)."""

    argv: list[str] = Field(min_length=1)
    events: list[AlertKind] = Field(default_factory=lambda: list(ALERT_KINDS))


class AlertsConfig(_Section):
    """Where alert events go (`monitoring.alerts`) and how hard delivery tries."""

    webhooks: list[WebhookConfig] = Field(default_factory=list)
    command: AlertCommandConfig | None = None
    # Per attempt: a webhook's request, or the command's run.
    timeout_seconds: Seconds = 10.0
    # Attempts per event and destination (the first one included), with exponential backoff
    # from `backoff_seconds`, at most `max_backoff_seconds` between two.
    attempts: int = Field(default=5, ge=1)
    backoff_seconds: Seconds = 1.0
    max_backoff_seconds: Seconds = 60.0
    # Events waiting per destination; beyond, new events are dropped (and logged).
    queue_size: int = Field(default=1_000, gt=0)


class MonitoringConfig(_Section):
    """Skew check thresholds (`monitoring:`), the defaults of docs/skew-checks.md."""

    psi_warn: float = Field(default=0.1, ge=0.0)
    psi_fail: float = Field(default=0.25, ge=0.0)
    js_warn: float = Field(default=0.1, ge=0.0, le=1.0)
    js_fail: float = Field(default=0.2, ge=0.0, le=1.0)
    null_rate_shift_fail: float = Field(default=0.1, ge=0.0, le=1.0)
    # Fewer served values (not null) than this: "insufficient data", not a statistic.
    min_rows: int = Field(default=1_000, gt=0)
    # Replay: floats equal within this relative tolerance; the mismatches of each cause pass
    # up to max_<cause>_rate of a feature's rows: stale rows (materialization lag) up to 1 %,
    # the others not at all (any value skew fails).
    float_tolerance: float = Field(default=1e-9, ge=0.0)
    max_stale_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    max_value_skew_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    max_ttl_or_status_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    max_unexplained_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Where the events of failed checks, stale views and failed runs go (docs/alerts.md).
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> MonitoringConfig:
        for name in ("psi", "js"):
            warn, fail = getattr(self, f"{name}_warn"), getattr(self, f"{name}_fail")
            if warn > fail:
                raise ValueError(f"{name}_warn {warn} is above {name}_fail {fail}")
        return self


class MetricGate(_Section):
    """A bound on one metric a version must meet to be promoted to production."""

    min: float | None = None
    max: float | None = None
    # At most this much below the current production version's value of the metric.
    max_drop: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _some_bound(self) -> MetricGate:
        if self.min is None and self.max is None and self.max_drop is None:
            raise ValueError("a metric gate needs min, max or max_drop")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class CanaryBounds(_Section):
    """When a feature server rolls a canary back by itself (`models.canary:`): its error rate
    or p99 latency over its last `window` requests above a bound. No bound: never."""

    max_error_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    max_p99_ms: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    window: int = Field(default=100, ge=1)


class ModelsConfig(_Section):
    """The model registry (`models:`, docs/models.md): where artifacts are kept, and the
    gate a version passes on its way to production."""

    # Content-addressed artifacts; repo-relative.
    artifact_root: str = "data/models"
    # metric name -> its bounds (a version without a gated metric fails the gate).
    gates: dict[str, MetricGate] = Field(default_factory=dict)
    # Types skops does not trust by default that this repo's models may hold
    # ("mypackage.MyTransformer"): loaded only when listed here.
    trusted_types: list[str] = Field(default_factory=list)
    canary: CanaryBounds = Field(default_factory=CanaryBounds)
    # A feature server unloads a version that no traffic route names (production, canary,
    # shadow, A/B) and that no pinned request used for this long, at a registry refresh: a
    # long-running server that sees many promotions keeps only what it serves.
    keep_unused_seconds: Seconds = 600.0


class SchedulerConfig(_Section):
    """`featurehub schedule` (docs/scheduler.md)."""

    # A view's lease lasts this long unless renewed (every third of it): a killed scheduler's
    # views are taken over by another within this time.
    lease_seconds: Seconds = 60.0
    # The loop wakes at the next tick, or after this long at most (new views, freed leases).
    poll_seconds: Seconds = 30.0
    # A failing materialization is tried this many times per tick, waiting exponentially
    # from retry_wait_seconds up to retry_max_wait_seconds; then it waits for its next tick.
    max_attempts: int = Field(default=3, ge=1)
    retry_wait_seconds: Seconds = 5.0
    retry_max_wait_seconds: Seconds = 300.0
    # Jobs (views, monitors) one scheduler runs at once, each on its own thread; the loop
    # keeps polling meanwhile, so a dead scheduler's views are taken over while this one's run.
    max_parallel: int = Field(default=4, ge=1, le=64)


class ServerConfig(_Section):
    """The feature server (`featurehub serve`): limits and API keys.

    The registry refresh interval is `registry.refresh_seconds`; the online store timeout is
    `online_store.timeout_seconds`; the serving log's settings are `serving_log:`.
    """

    # Deprecated: the serving log's settings, now under `serving_log:` (LEGACY_LOG_KEYS).
    # Kept, with their checks, so old files and `ServerConfig(log_root=...)` still work.
    log_root: str | None = None
    log_sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    log_sample_rates: dict[str, float] | None = None
    log_queue_size: int | None = Field(default=None, gt=0)
    log_batch_rows: int | None = Field(default=None, gt=0)
    log_flush_seconds: Seconds | None = None
    # Accepted API keys (`Authorization: Bearer KEY` or `X-API-Key: KEY`). No keys listed: no
    # auth. Keys listed but all empty (an unset `${FEATUREHUB_API_KEY:-}`): the server refuses
    # to start (see `accepted_keys`) unless `auth: none` says that no auth is meant.
    auth: Literal["api_keys", "none"] = "api_keys"
    api_keys: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_entities: int = Field(default=1_000, gt=0)

    @field_validator("log_sample_rates")
    @classmethod
    def _legacy_rates(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return None if value is None else _checked_rates(value)

    @model_validator(mode="after")
    def _legacy_log_keys(self) -> ServerConfig:
        given = self.legacy_log_settings()
        if given:
            moved = ", ".join(
                f"server.{old} -> serving_log.{LEGACY_LOG_KEYS[old]}" for old in given
            )
            warnings.warn(
                f"the serving log's settings moved to the `serving_log:` section (the server "
                f"and the SDK share them); rename {moved}",
                FutureWarning,
                stacklevel=2,
            )
        return self

    def legacy_log_settings(self) -> dict[str, Any]:
        """The deprecated `log_*` keys given, by their old name."""
        return {
            old: getattr(self, old) for old in LEGACY_LOG_KEYS if getattr(self, old) is not None
        }

    def log_settings(self, configured: ServingLogConfig) -> ServingLogConfig:
        """`configured` with this section's deprecated `log_*` keys applied over it."""
        legacy = self.legacy_log_settings()
        if not legacy:
            return configured
        return configured.model_copy(
            update={LEGACY_LOG_KEYS[old]: value for old, value in legacy.items()}
        )

    @model_validator(mode="after")
    def _auth_off_means_no_keys(self) -> ServerConfig:
        if self.auth == "none" and any(self.api_keys):
            raise ValueError(
                "auth is none but api_keys holds keys; remove `auth: none` to require the "
                "keys, or remove the keys to serve without auth"
            )
        return self

    def accepted_keys(self, source: str = CONFIG_FILE) -> list[str]:
        """The keys a request must present ([]: no auth), or a ConfigError when keys were
        listed but every one is empty: an unset `${VAR:-}` must not turn auth off unnoticed.
        `source` names the file in the message."""
        keys = [key for key in self.api_keys if key]
        if self.auth == "api_keys" and self.api_keys and not keys:
            raise ConfigError(
                f"{source}: server.api_keys lists {len(self.api_keys)} key(s), all empty (an "
                "unset variable such as ${FEATUREHUB_API_KEY:-}?), so the server would accept "
                "every request; set the variable, or write `auth: none` under `server:` to "
                "serve without auth on purpose"
            )
        return keys


class RepoConfig(_Section):
    """The validated content of featurehub.yaml, paths resolved against `repo_path`."""

    project: str
    repo_path: Path = Path(".")
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    offline_store: OfflineStoreConfig = Field(default_factory=OfflineStoreConfig)
    online_store: OnlineStoreConfig = Field(default_factory=OnlineStoreConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    serving_log: ServingLogConfig = Field(default_factory=ServingLogConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        return _expand_shorthands(data)

    @model_validator(mode="after")
    def _legacy_serving_log(self) -> RepoConfig:
        """Old files set the log under `server:`; a key set in both places is an error."""
        legacy = self.server.legacy_log_settings()
        twice = [old for old in legacy if LEGACY_LOG_KEYS[old] in self.serving_log.model_fields_set]
        if twice:
            old = twice[0]
            raise ValueError(
                f"server.{old} and serving_log.{LEGACY_LOG_KEYS[old]} are both set; keep "
                f"serving_log.{LEGACY_LOG_KEYS[old]} (server.{old} is its deprecated name)"
            )
        self.serving_log = self.server.log_settings(self.serving_log)
        return self

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError("use letters, digits and underscores, starting with a letter")
        return value

    @property
    def registry_url(self) -> str:
        return _resolve_sqlite(self.registry.url, self.repo_path)

    @property
    def online_store_url(self) -> str:
        return _resolve_sqlite(self.online_store.url, self.repo_path)

    @property
    def offline_root(self) -> Path:
        root = Path(self.offline_store.root).expanduser()
        return root if root.is_absolute() else (self.repo_path / root)

    @property
    def config_file(self) -> Path:
        return self.repo_path / CONFIG_FILE

    @property
    def model_artifact_root(self) -> Path:
        root = Path(self.models.artifact_root).expanduser()
        return root if root.is_absolute() else (self.repo_path / root)

    @property
    def serving_log_root(self) -> Path:
        root = Path(self.serving_log.root).expanduser()
        return root if root.is_absolute() else (self.repo_path / root)


_SHORTHANDS = {"registry": "url", "online_store": "url", "engine": "type", "offline_store": "root"}


def _expand_shorthands(data: Any) -> Any:
    """Accept `registry: sqlite:///x.db`, `online_store: redis://...`, `engine: spark`."""
    if isinstance(data, dict):
        data = dict(data)
        for section, key in _SHORTHANDS.items():
            if isinstance(data.get(section), str):
                data[section] = {key: data[section]}
    return data


def _resolve_sqlite(url: str, repo_path: Path) -> str:
    """Make `sqlite:///relative.db` relative to the repo rather than to the working dir."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        path = url[len(prefix) :]
        if path and path != ":memory:":
            return prefix + str((repo_path / path).resolve())
    return url


def _interpolate(value: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else k, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, where, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{CONFIG_FILE}: {where} references ${{{name}}} but {name} is not set; "
            f"export it or write ${{{name}:-default}}"
        )

    return _VAR.sub(substitute, value)


def load_config(repo_path: str | os.PathLike[str], env: dict[str, str] | None = None) -> RepoConfig:
    """Read `featurehub.yaml` of a repo, apply FEATUREHUB_* overrides and validate it."""
    env = dict(os.environ) if env is None else env
    repo = Path(repo_path).resolve()
    path = repo / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: {repo} is not a feature repo. Pass --repo PATH (or set "
            "FEATUREHUB_REPO), or create one with `featurehub init DIR`"
        )
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a mapping with at least `project: NAME`")
    data = _expand_shorthands(_interpolate(raw, "", env))
    overridden: dict[tuple[str, str], str] = {}
    for variable, (section, key) in ENV_OVERRIDES.items():
        if env.get(variable) and isinstance(data.get(section, {}), dict):
            data[section] = {**data.get(section, {}), key: env[variable]}
            overridden[(section, key)] = variable
    data["repo_path"] = repo
    try:
        with warnings.catch_warnings(record=True) as deprecated:  # said again, with the file
            warnings.simplefilter("always", FutureWarning)
            config = RepoConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            _where(err["loc"], overridden) + f": {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    for warning in deprecated:
        warnings.warn(f"{path}: {warning.message}", warning.category, stacklevel=2)
    scheme_problem = _online_scheme_problem(config.online_store.url)
    if scheme_problem:
        where = _where(("online_store", "url"), overridden)
        raise ConfigError(f"{path}: {where}: {scheme_problem}")
    return config


def _where(loc: tuple[int | str, ...], overridden: dict[tuple[str, str], str]) -> str:
    """`section.key` of a problem, and the environment variable that set it, if one did."""
    where = ".".join(str(part) for part in loc)
    variable = overridden.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
    return f"{where} (set by {variable})" if variable else where


def _online_scheme_problem(url: str) -> str | None:
    """What is wrong with an online store URL's scheme, or None."""
    scheme, separator, _ = url.partition("://")
    if separator and scheme.lower() in ONLINE_STORE_SCHEMES:
        return None
    known = ", ".join(f"{name}://" for name in ONLINE_STORE_SCHEMES)
    return (
        f"{url!r} has an unknown scheme; use one of {known} "
        "(e.g. sqlite:///data/online.db or redis://localhost:6379/0)"
    )


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one YAML mapping; load_config adds the file to the message."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error: PyYAML keeps the last
    one silently, so a second `online_store:` would replace the first unnoticed."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` merges may be overridden: that is what they are for
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                seen = first_line.get(key)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
            if seen is not None:
                raise DuplicateKeyError(
                    f"line {line}: key {key!r} is given twice in one mapping (first on line "
                    f"{seen}); keep one"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)
