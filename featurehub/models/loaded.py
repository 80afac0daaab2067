"""A model version loaded for predictions: its record and a predictor over its features.

What the feature server's predict endpoint and batch scoring both hold: `predict` takes a
DataFrame with (at least) the feature service's features and answers one value per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from featurehub import dataframes
from featurehub.models.flavors import (
    MatrixPlan,
    Predictor,
    arrow_matrix,
    as_predictions,
    matrix_plan,
)
from featurehub.registry.models import ModelError, ModelVersion

if TYPE_CHECKING:
    from featurehub.online.lookup import OnlineResponse


MAX_PLANS = 64
"""Look-ups (projections objects) whose matrix plan a loaded model keeps."""


class ModelPredictError(ModelError):
    """The model itself failed on well-formed input (a genuine model error)."""


class LoadedModel:
    def __init__(self, version: ModelVersion, predictor: Predictor) -> None:
        self.version = version
        self.predictor = predictor
        # The features in the order the model was trained on (a version is immutable):
        # built once, not per request.
        self.feature_names: list[str] = version.signature.feature_names
        self.what = f"model {version.name} version {version.version}"  # errors name it
        # (id of a look-up's projections, full names) -> (the projections, the predictor,
        # its matrix plan): `_online_plan`
        self._plans: dict[tuple[int, bool], tuple[Any, Predictor, MatrixPlan | None]] = {}

    def __repr__(self) -> str:
        return f"LoadedModel({self.version.reference!r}, flavor={self.version.flavor!r})"

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """One prediction per row of `features` (extra columns, such as keys, are ignored;
        the model sees its features in the order it was trained on)."""
        missing = [name for name in self.feature_names if name not in features.columns]
        if missing:
            raise ModelError(
                f"{self.what}: the features {', '.join(missing)} are missing; pass the columns of "
                f"feature service {self.version.feature_service!r}"
            )
        inputs = features[self.feature_names]
        try:
            values: Any = self.predictor.predict(inputs)
        except Exception as exc:
            nulls = int(inputs.isna().any(axis=1).sum())
            raise self._failed(exc, nulls, len(inputs)) from exc
        return as_predictions(values, len(inputs), self.what)

    def predict_table(self, features: pa.Table) -> np.ndarray:
        """`predict` over an Arrow table (the joined features): a model that takes a matrix
        gets one built from Arrow directly, which is what makes batch scoring cheap."""
        missing = [name for name in self.feature_names if name not in features.column_names]
        fast = getattr(self.predictor, "predict_matrix", None)
        values = None
        if not missing and fast is not None:
            inputs = features.select(self.feature_names)
            values = arrow_matrix(inputs, getattr(self.predictor, "matrix_dtype", np.float64))
        if values is None:
            present = [name for name in self.feature_names if name in features.column_names]
            return self.predict(dataframes.to_pandas(features.select(present)))
        return self._predict_matrix(values)

    def predict_online(
        self, response: OnlineResponse, rows: Sequence[int] | None = None
    ) -> np.ndarray:
        """`predict_table` over an online look-up's `rows` (all when None), the feature
        server's path: a model that takes a matrix gets one built from the look-up's Python
        values (the same numbers `predict_table` would see), skipping the Arrow table."""
        plan = self._online_plan(response)
        if plan is None:
            table = response.to_arrow()
            return self.predict_table(table if rows is None else table.take(pa.array(rows)))
        values = response.values
        matrix = plan.matrix([values[name] for name in self.feature_names])
        return self._predict_matrix(matrix if rows is None else matrix[rows])

    def _online_plan(self, response: OnlineResponse) -> MatrixPlan | None:
        """How to build the matrix from a look-up of these projections (None: the model
        takes no matrix, or a feature is missing or not numeric). Worked out once per
        projections object (the server passes its snapshot's, the same for every request
        of a feature service) rather than per request: the declared types, the column
        checks and the feature names were ~9 us of a one-row ONNX regression's ~25
        in-process, and a key built from the views and names ~12 us on the server, where
        it ran with cold caches. The entry holds the projections, so their id is not
        reused while it lives; a new registry snapshot makes new entries, and the cache
        starts over when full."""
        if getattr(self.predictor, "predict_matrix", None) is None:
            return None
        projections = response.projections
        key = (id(projections), response.full_feature_names)
        cached = self._plans.get(key) if projections else None  # a response built by hand
        if cached is not None and cached[0] is projections and cached[1] is self.predictor:
            return cached[2]
        plan = None
        if all(name in response.values for name in self.feature_names):
            types = response.declared_types()
            plan = matrix_plan(
                [types[name] for name in self.feature_names],
                getattr(self.predictor, "matrix_dtype", np.float64),
            )
        if not projections:
            return plan
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[key] = (projections, self.predictor, plan)
        return plan

    def _predict_matrix(self, values: np.ndarray) -> np.ndarray:
        try:
            predictions = self.predictor.predict_matrix(values)  # type: ignore[attr-defined]
        except Exception as exc:
            nulls = int(np.isnan(values).any(axis=1).sum())
            raise self._failed(exc, nulls, len(values)) from exc
        return as_predictions(predictions, len(values), self.what)

    def _failed(self, exc: Exception, nulls: int, rows: int) -> ModelPredictError:
        hint = f" ({nulls} of {rows} rows have a missing feature)" if nulls else ""
        return ModelPredictError(f"{self.what} failed to predict{hint}: {exc}")
