"""`store.models`: register model versions, move them through their stages, load and score.

Every operation checks all it can before it writes: a bad name, an unknown feature service
or dataset, a dataset of another service, an artifact skops does not trust, a model that
cannot predict on the service's features: each is a ModelError and nothing is stored.
References (`featurehub.models.references`) name a model the same way everywhere.
"""

from __future__ import annotations

import getpass
import math
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from featurehub import dataframes
from featurehub.config import RepoConfig
from featurehub.definitions.catalog import Catalog
from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError, NotFoundError
from featurehub.models import lifecycle
from featurehub.models.artifacts import ArtifactStore
from featurehub.models.flavors import (
    SUFFIXES,
    artifact_bytes,
    infer_flavor,
    load_predictor,
)
from featurehub.models.gates import (
    GateRefusedError,
    GateReport,
    metric_checks,
    service_check,
    skew_check,
    view_checks,
)
from featurehub.models.loaded import LoadedModel
from featurehub.models.mlflow_flavor import SOURCE_PARAMS, MlflowPredictor, source_of
from featurehub.models.references import ModelRef, check_model_name, parse_reference
from featurehub.models.scoring import ScoreResult, score
from featurehub.models.signature import service_inputs
from featurehub.monitoring.status import ViewStatus
from featurehub.offline.retrieval import EntityInput, RetrievalJob
from featurehub.registry.models import (
    HistoryEvent,
    LifecycleChange,
    LifecycleState,
    ModelCatalog,
    ModelError,
    ModelNotFoundError,
    ModelVersion,
    Signature,
)
from featurehub.registry.runs import RunLog
from featurehub.registry.skew_checks import SkewCheckLog
from featurehub.registry.traffic import (
    AB,
    CANARY,
    PRODUCTION_ONLY,
    SHADOW,
    TrafficCatalog,
    TrafficEvent,
    TrafficPolicy,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from featurehub.datasets import Dataset

# Rows of the training dataset a new version must predict on before it is registered.
SAMPLE_ROWS = 100


class StoreParts(Protocol):
    """What the model registry uses of a FeatureStore."""

    config: RepoConfig

    @property
    def project(self) -> str: ...
    @property
    def repo_path(self) -> Path: ...
    def catalog(self) -> Catalog: ...
    def get_dataset(self, name: str) -> Dataset: ...
    def status(self) -> list[ViewStatus]: ...
    @property
    def skew_checks(self) -> SkewCheckLog: ...
    def get_historical_features(
        self, entity_df: EntityInput, features: Any, *, timestamp_column: str = ...
    ) -> RetrievalJob: ...


def _actor() -> str:
    try:
        return getpass.getuser()[:128]
    except (KeyError, OSError):
        return "unknown"


def _ref(reference: str | ModelRef) -> ModelRef:
    return reference if isinstance(reference, ModelRef) else parse_reference(reference)


class Models:
    """The model registry of one project (docs/models.md)."""

    def __init__(self, store: StoreParts, engine: sa.Engine, runs: RunLog) -> None:
        self._store = store
        self._engine = engine
        self._runs = runs
        self._catalog = ModelCatalog(engine, store.project)
        self.traffic_catalog = TrafficCatalog(engine, store.project)
        self._config = store.config.models
        self.artifacts = ArtifactStore(store.config.model_artifact_root)

    # -- registration ----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        feature_service: str,
        training_dataset: str,
        metrics: Mapping[str, float | str] | None = None,
        params: Mapping[str, Any] | None = None,
        flavor: str | None = None,
        description: str = "",
    ) -> ModelVersion:
        """A new immutable version of `name`: `model` is a scikit-learn estimator, an ONNX
        ModelProto, a pyfunc class of the repo (or `package.module:Class`), or a path to a
        .skops or .onnx file. The model must predict on the training dataset's rows."""
        check_model_name(name)
        checked_metrics = _checked_metrics(metrics or {})
        checked_params = _checked_params(params or {})
        catalog = self._store.catalog()
        inputs = service_inputs(catalog, feature_service)
        service_version = self._catalog.service_version(feature_service)
        assert service_version is not None  # the catalog holds it
        dataset = self._store.get_dataset(training_dataset)
        _check_dataset(dataset, feature_service, [i.name for i in inputs])
        chosen = flavor or infer_flavor(model)
        trusted = self._config.trusted_types
        data = artifact_bytes(model, chosen, self._store.repo_path, trusted)
        predictor = load_predictor(
            data, chosen, self._store.repo_path, trusted, f"model {name}", self.artifacts.unpacked
        )
        if isinstance(predictor, MlflowPredictor):
            checked_params = _with_mlflow_source(checked_params, model, predictor.run_id)
        record = ModelVersion(
            name=name,
            version=0,  # the catalog numbers it
            flavor=chosen,
            artifact_sha256="",  # known once stored, below
            artifact_path="",
            feature_service=feature_service,
            feature_service_version=service_version,
            training_dataset=dataset.name,
            training_dataset_fingerprint=dataset.fingerprint,
            signature=Signature(inputs, ""),
            created_by=_actor(),
            created_at=datetime.now(timezone.utc),
            metrics=checked_metrics,
            params=checked_params,
            description=description,
        )
        _check_feature_names(predictor, record.signature, name)
        sample = dataframes.to_pandas(dataset.to_arrow().slice(0, SAMPLE_ROWS))
        try:
            predictions = LoadedModel(record, predictor).predict(sample)
        except ModelError as exc:
            raise ModelError(
                f"model {name} cannot predict on the features of {feature_service!r} (the "
                f"first rows of dataset {dataset.name!r}), so it is not registered: {exc}"
            ) from None
        sha256, path = self.artifacts.put(data, SUFFIXES[chosen])
        record = replace(
            record,
            artifact_sha256=sha256,
            artifact_path=path,
            signature=Signature(inputs, str(pa.array(predictions).type)),
        )
        return self._catalog.insert(record)

    # -- reading ----------------------------------------------------------------------------

    def get(self, reference: str | ModelRef) -> ModelVersion:
        """The version a reference names (NAME: the latest)."""
        ref = _ref(reference)
        if ref.version is not None:
            return self._catalog.version(ref.name, ref.version)
        if ref.alias is not None:
            return self._catalog.version(ref.name, self._alias_version(ref))
        return self._catalog.versions(ref.name)[-1]

    def _alias_version(self, ref: ModelRef) -> int:
        """The version an alias points at; a stage's alias in any case (`@Production`)."""
        assert ref.alias is not None
        state = self._catalog.state(ref.name)
        is_stage = ref.alias.lower() in lifecycle.STAGES
        alias = ref.alias.lower() if is_stage else ref.alias
        version = state.aliases.get(alias)
        if version is not None:
            return version
        held = ", ".join(f"{a} (version {v})" for a, v in sorted(state.aliases.items()))
        message = f"model {ref.name!r} has no alias {ref.alias!r}; " + (
            f"its aliases: {held}" if held else "it has no alias yet"
        )
        if is_stage:
            message += f". Promote a version: featurehub models promote {ref.name} VERSION "
            message += f"--stage {alias}"
        raise ModelNotFoundError(message)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first."""
        return self._catalog.versions(check_model_name(name))

    def lifecycle(self, name: str) -> LifecycleState:
        return self._catalog.state(check_model_name(name))

    def stage(self, reference: str | ModelRef) -> str:
        version = self.get(reference)
        return lifecycle.stage_of(self._catalog.state(version.name), version.version)

    def history(self, name: str) -> list[HistoryEvent]:
        """Every lifecycle change of a model, oldest first."""
        return self._catalog.history(check_model_name(name))

    def load(self, reference: str | ModelRef) -> LoadedModel:
        """The version's predictor, its artifact checked against its sha256 first."""
        version = self.get(reference)
        what = f"model {version.name} version {version.version}"
        data = self.artifacts.read(version.artifact_path, version.artifact_sha256, what)
        predictor = load_predictor(
            data,
            version.flavor,
            self._store.repo_path,
            self._config.trusted_types,
            what,
            self.artifacts.unpacked,
        )
        return LoadedModel(version, predictor)

    def describe(self, reference: str | ModelRef) -> dict[str, Any]:
        """A version with its stage, aliases and lineage: model -> feature service -> views
        -> sources, and the training dataset (JSON-able)."""
        version = self.get(reference)
        state = self._catalog.state(version.name)
        catalog = self._store.catalog()
        service: dict[str, Any] = {
            "name": version.feature_service,
            "registered_version": version.feature_service_version,
            "current_version": self._catalog.service_version(version.feature_service),
            "views": [],
        }
        if version.feature_service in catalog.feature_services:
            for projection in catalog.resolve(version.feature_service):
                view = catalog.feature_view(projection.view.name)
                service["views"].append(
                    {
                        "name": view.name,
                        "features": list(projection.features),
                        "entities": [entity.name for entity in view.entities],
                        "source": view.source.to_spec(),
                    }
                )
        dataset: dict[str, Any] = {
            "name": version.training_dataset,
            "fingerprint": version.training_dataset_fingerprint,
        }
        try:
            saved = self._store.get_dataset(version.training_dataset)
            dataset.update(
                rows=saved.row_count,
                fingerprint_matches=saved.fingerprint == version.training_dataset_fingerprint,
            )
        except NotFoundError:
            dataset["missing"] = True
        return {
            **version.to_dict(),
            "stage": lifecycle.stage_of(state, version.version),
            "aliases": sorted(a for a, v in state.aliases.items() if v == version.version),
            "lineage": {"feature_service": service, "training_dataset": dataset},
        }

    # -- lifecycle --------------------------------------------------------------------------

    def check_gate(self, reference: str | ModelRef) -> GateReport:
        """Run the production gate for a version without promoting it."""
        return self._gate(self.get(reference))[0]

    def _gate(self, candidate: ModelVersion) -> tuple[GateReport, int | None]:
        state = self._catalog.state(candidate.name)
        current = state.aliases.get(lifecycle.PRODUCTION)
        production = None if current is None else self._catalog.version(candidate.name, current)
        catalog = self._store.catalog()
        statuses = {status.view: status for status in self._store.status()}
        checks = metric_checks(candidate, production, self._config.gates)
        checks.append(service_check(candidate, catalog))
        checks += view_checks(candidate, catalog, statuses, self._runs.materialized_until(), _now())
        service = candidate.feature_service
        newest = self._store.skew_checks.latest_judging(service, candidate.name, candidate.version)
        skew = skew_check(newest, service)
        if skew is not None:
            checks.append(skew)
        return GateReport(checks), current

    def promote(
        self,
        name: str,
        version: int,
        stage: str,
        *,
        force: bool = False,
        reason: str = "",
    ) -> list[LifecycleChange]:
        """Move a version to staging or production. To production it passes the gate first
        (`force` with a `reason` overrides a refusal, recorded in the history); the version
        it replaces is archived."""
        alias = lifecycle.stage_alias(stage)
        if force and not reason.strip():
            raise ModelError("--force needs --reason TEXT: the override is recorded with it")
        candidate = self._catalog.version(check_model_name(name), version)
        report: GateReport | None = None
        gated_against: int | None = None
        if alias == lifecycle.PRODUCTION:
            report, gated_against = self._gate(candidate)
            if not report.passed and not force:
                raise GateRefusedError(candidate, report)

        def decide(state: LifecycleState) -> list[LifecycleChange]:
            if report is not None and state.aliases.get(lifecycle.PRODUCTION) != gated_against:
                raise ModelError(
                    f"the production version of {name} changed while the gate ran; "
                    "promote again (the gate compares with the new one)"
                )
            return lifecycle.promote(state, name, version, stage)

        return self._change(
            name,
            decide,
            reason=reason,
            forced=bool(force and report is not None and not report.passed),
            gate=None if report is None else report.to_list(),
        )

    def alias(self, name: str, alias: str, version: int) -> list[LifecycleChange]:
        """Point a free-form alias (champion, challenger) at a version."""
        lifecycle.check_alias(alias)
        return self._change(
            check_model_name(name), lambda s: lifecycle.set_alias(s, name, alias, version)
        )

    def rollback(self, name: str, *, reason: str = "") -> list[LifecycleChange]:
        """Production goes back to the version the current one replaced (no gate: it served
        before); the current one is archived."""
        return self._change(
            check_model_name(name), lambda s: lifecycle.rollback(s, name), reason=reason
        )

    def archive(self, name: str, version: int, *, reason: str = "") -> list[LifecycleChange]:
        return self._change(
            check_model_name(name), lambda s: lifecycle.archive(s, name, version), reason=reason
        )

    def _change(
        self,
        name: str,
        decide: Callable[[LifecycleState], list[LifecycleChange]],
        **recorded: Any,
    ) -> list[LifecycleChange]:
        return self._catalog.change(name, decide, actor=_actor(), **recorded)

    # -- traffic (the feature server's split between versions) --------------------------------

    def traffic(
        self,
        name: str,
        *,
        canary: str | None = None,
        shadow: int | None = None,
        ab: str | None = None,
        production_only: bool = False,
        reason: str = "",
    ) -> TrafficPolicy:
        """Set how running feature servers split the model's requests (exactly one of):
        `canary="V:PCT"` (PCT % of entity keys to version V), `shadow=V` (V also predicts,
        its answer logged, not returned), `ab="V:PCT"`, `production_only=True`. Servers
        follow within registry.refresh_seconds (or at once on SIGHUP)."""
        given = [canary is not None, shadow is not None, ab is not None, production_only]
        if sum(given) != 1:
            raise ModelError(
                "give exactly one of --canary V:PCT, --shadow V, --ab V:PCT or --production-only"
            )
        if production_only:
            policy = TrafficPolicy(PRODUCTION_ONLY)
        elif shadow is not None:
            policy = TrafficPolicy(SHADOW, shadow)
        else:
            kind, text = (CANARY, canary) if canary is not None else (AB, ab)
            assert text is not None
            policy = TrafficPolicy(kind, *_version_percent(kind, text))
        state = self._catalog.state(check_model_name(name))
        if policy.version is not None:
            production = state.aliases.get(lifecycle.PRODUCTION)
            other = self._catalog.version(name, policy.version)  # unknown: an error
            if production is None:
                raise ModelError(
                    f"model {name} has no production version to split traffic with; promote "
                    f"one first: featurehub models promote {name} VERSION --stage production"
                )
            if policy.version == production:
                raise ModelError(
                    f"version {policy.version} is {name}'s production version; a {policy.policy} "
                    "names another version"
                )
            served = self._catalog.version(name, production)
            if other.feature_service != served.feature_service:
                raise ModelError(
                    f"version {policy.version} of {name} reads feature service "
                    f"{other.feature_service!r}, production version {production} reads "
                    f"{served.feature_service!r}: a request fetches one service's features, so "
                    "both versions of a policy must read the same one"
                )
            if policy.version in state.archived:
                raise ModelError(f"version {policy.version} of {name} is archived; unarchive it")
        self.traffic_catalog.set(name, policy, actor=_actor(), reason=reason)
        return policy

    def traffic_policy(self, name: str) -> TrafficPolicy:
        """The model's traffic policy now (production only when none was set)."""
        self._catalog.state(check_model_name(name))
        return self.traffic_catalog.get(name)

    def traffic_history(self, name: str) -> list[TrafficEvent]:
        """Every traffic policy change of the model (automatic rollbacks too), oldest first."""
        self._catalog.state(check_model_name(name))
        return self.traffic_catalog.history(name)

    # -- batch scoring ----------------------------------------------------------------------

    def score(
        self,
        reference: str | ModelRef,
        entities: EntityInput,
        out: str | Path,
        *,
        timestamp_column: str = "event_timestamp",
    ) -> ScoreResult:
        """Predictions for each entity row from its point-in-time features (the join the
        training set came from), written to `out` as Parquet: the entity columns, `model`,
        `model_version`, `prediction`."""
        version = self.get(reference)
        # The artifact is read, checked and loaded while the join runs (which waits mostly
        # on DuckDB and Arrow, off the GIL): ~0.04 s of a 1M-row score's ~0.7 for the demo's
        # pipeline, seconds for a big model.
        with ThreadPoolExecutor(1, thread_name_prefix="featurehub-model-load") as loading:
            model = loading.submit(self.load, f"{version.name}:{version.version}")
            job = self._store.get_historical_features(
                entities, version.feature_service, timestamp_column=timestamp_column
            )
            features = job.to_arrow()
            return score(model.result(), features, Path(out))

    # Last in the class: below it, `list` in an annotation would name this method.
    def list(self) -> list[ModelVersion]:
        """The latest version of each model, by name."""
        return self._catalog.list()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _version_percent(kind: str, text: str) -> tuple[int, float]:
    version, _, percent = text.partition(":")
    try:
        return int(version), float(percent)
    except ValueError:
        raise ModelError(
            f"--{kind} {text!r}: write VERSION:PERCENT, e.g. --{kind} 3:5 for 5 % to version 3"
        ) from None


def _check_dataset(dataset: Dataset, service: str, features: list[str]) -> None:
    if dataset.feature_service != service:
        made = (
            f"of feature service {dataset.feature_service!r}"
            if dataset.feature_service
            else "of a list of features, not of a feature service"
        )
        raise ModelError(
            f"dataset {dataset.name!r} is {made}; a model of {service!r} must be tied to a "
            f"dataset saved from it: featurehub datasets save NAME --service {service} ..."
        )
    saved = [feature.partition(":")[2] for feature in dataset.features]
    if saved != features:
        raise ModelError(
            f"dataset {dataset.name!r} holds {', '.join(saved)} but feature service "
            f"{service!r} now serves {', '.join(features)} (it changed since the dataset was "
            "saved); save a new dataset from the service and train on it"
        )


def _with_mlflow_source(params: dict[str, str], source: Any, run_id: str | None) -> dict[str, str]:
    """The params with where an MLflow model came from (the stored archive is what loads)."""
    taken = sorted(set(params) & set(SOURCE_PARAMS))
    if taken:
        raise ModelError(
            f"param {taken[0]!r} is recorded by featurehub for an mlflow version; name yours "
            "otherwise"
        )
    recorded = {**params, "mlflow_source": source_of(source)}
    if run_id:
        recorded["mlflow_run_id"] = run_id
    return recorded


def _check_feature_names(predictor: Any, signature: Signature, name: str) -> None:
    """A scikit-learn model that knows its feature names, an ONNX graph that knows its
    width, or an MLflow model with a signature, must match the service exactly: a clearer
    message than a failed predict."""
    if isinstance(predictor, MlflowPredictor):
        problems = predictor.input_differences(signature.inputs)
        if problems:
            raise ModelError(
                f"model {name}'s MLflow signature does not match its feature service: "
                f"{'; '.join(problems)}. Log the model with a signature of the service's "
                "features (mlflow.models.infer_signature on its saved dataset)"
            )
        return
    trained = getattr(getattr(predictor, "model", None), "feature_names_in_", None)
    expected = signature.feature_names
    if trained is not None and list(trained) != expected:
        raise ModelError(
            f"model {name} was trained on the features {', '.join(map(str, trained))}, but "
            f"its feature service serves {', '.join(expected)}: the signature does not match. "
            "Train on the service's features, in its order (e.g. from its saved dataset)"
        )
    width = getattr(predictor, "input_width", lambda: None)()
    if width is not None and width != len(expected):
        raise ModelError(
            f"model {name} takes {width} features, but its feature service serves "
            f"{len(expected)} ({', '.join(expected)}): the signature does not match"
        )


def _checked_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    checked = {}
    for key, value in metrics.items():
        _check_key("metric", key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ModelError(f"metric {key!r} is {value!r}; a metric is a finite number")
        checked[key] = number
    return checked


def _checked_params(params: Mapping[str, Any]) -> dict[str, str]:
    for key in params:
        _check_key("param", key)
    return {key: str(value) for key, value in params.items()}


def _check_key(kind: str, key: object) -> None:
    try:
        check_name(kind, key)
    except DefinitionError as exc:
        raise ModelError(str(exc)) from None
