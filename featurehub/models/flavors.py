"""Flavors: how a model becomes artifact bytes and how those bytes become a predictor again.

No arbitrary pickle ever runs. `sklearn` goes through skops, which refuses types it does not
trust (those named in `models.trusted_types` aside); `onnx` through onnxruntime, which runs
a graph, not code; `pyfunc` is a class of the feature repo named by import path
(`package.module:Class`), whose artifact records the source file's sha256, so code changed
after registration is refused like a changed artifact. `mlflow` (optional, never inferred:
it runs the MLflow model's own code) is in `featurehub.models.mlflow_flavor`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from featurehub.models.artifacts import ArtifactError, sha256_of
from featurehub.models.sklearn_arrays import array_model, frame_of
from featurehub.registry.models import ModelError

FLAVORS = ("sklearn", "onnx", "pyfunc", "mlflow")
SUFFIXES = {"sklearn": "skops", "onnx": "onnx", "pyfunc": "json", "mlflow": "tar.gz"}
_IMPORT_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)
_PICKLES = (".pkl", ".pickle", ".joblib")
# Trusted beyond skops' defaults: a dtype is rebuilt from its name and runs no code, and
# common estimators (SimpleImputer, ...) keep one, which skops 0.16 still reports.
SAFE_TYPES = ("numpy.dtype",)


class Predictor(Protocol):
    def predict(self, features: pd.DataFrame) -> Any: ...


def infer_flavor(model: Any) -> str:
    """The flavor of a model object or artifact path, when it can be told."""
    if isinstance(model, (str, Path)):
        text = str(model)
        if _IMPORT_PATH.match(text) and not Path(text).exists():
            return "pyfunc"
        from featurehub.models.mlflow_flavor import looks_like_mlflow

        if looks_like_mlflow(text):
            raise ModelError(
                f"{text!r} is an MLflow model; register it with flavor mlflow (--flavor "
                "mlflow). Loading it runs the model's own code (MLflow's sklearn flavor is a "
                "pickle), so register only a model whose source you trust"
            )
        suffix = Path(text).suffix.lower()
        if suffix == ".skops":
            return "sklearn"
        if suffix == ".onnx":
            return "onnx"
        if suffix in _PICKLES:
            raise ModelError(_pickle_message(text))
        raise ModelError(
            f"cannot tell the flavor of {text!r}; pass flavor sklearn (a .skops file), onnx "
            "(a .onnx file) or pyfunc (package.module:Class in the feature repo)"
        )
    if isinstance(model, type):
        return "pyfunc"
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):
        return "onnx"
    if hasattr(model, "fit") and hasattr(model, "predict") and hasattr(model, "get_params"):
        return "sklearn"
    raise ModelError(
        f"cannot tell the flavor of a {type(model).__name__}; pass a scikit-learn estimator, "
        "an ONNX ModelProto, a pyfunc class of the repo, or a path to a .skops or .onnx file"
    )


def _pickle_message(path: str) -> str:
    return (
        f"{path!r} looks like a pickle; featurehub loads no pickle (it runs arbitrary code). "
        "Save scikit-learn models with skops.io.dump(model, 'model.skops'), or convert the "
        "model to ONNX"
    )


def artifact_bytes(
    model: Any, flavor: str, repo_path: Path, trusted_types: Sequence[str] = ()
) -> bytes:
    """The bytes to store for `model` (an object or a path); a skops file is checked for
    untrusted types here, before anything deserializes it."""
    if flavor not in FLAVORS:
        raise ModelError(f"unknown flavor {flavor!r}; use one of {', '.join(FLAVORS)}")
    if flavor == "pyfunc":
        return _pyfunc_artifact(model, repo_path)
    if flavor == "mlflow":
        from featurehub.models.mlflow_flavor import mlflow_archive

        return mlflow_archive(model)
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser()
        if path.suffix.lower() in _PICKLES:
            raise ModelError(_pickle_message(str(path)))
        if not path.is_file():
            raise ModelError(f"model artifact {str(path)!r} does not exist; pass a file path")
        data = path.read_bytes()
    elif flavor == "sklearn":
        import skops.io

        data = skops.io.dumps(model)
    else:
        if not hasattr(model, "SerializeToString"):
            raise ModelError(
                f"flavor onnx takes an ONNX ModelProto or a .onnx file, not a "
                f"{type(model).__name__}"
            )
        data = model.SerializeToString()
    if flavor == "sklearn":
        _check_trusted(data, trusted_types, "the model")
    return data


def load_predictor(
    data: bytes,
    flavor: str,
    repo_path: Path,
    trusted_types: Sequence[str],
    what: str,
    unpack_root: Path,
) -> Predictor:
    """A predictor from artifact bytes already checked against their sha256 (an archive
    flavor unpacks under `unpack_root`)."""
    if flavor == "sklearn":
        return _SklearnPredictor(_load_skops(data, trusted_types, what))
    if flavor == "onnx":
        return _onnx_predictor(data, what)
    if flavor == "pyfunc":
        return _load_pyfunc(data, repo_path, what)
    if flavor == "mlflow":
        from featurehub.models.mlflow_flavor import load_mlflow

        return load_mlflow(data, sha256_of(data), unpack_root, what)
    raise ModelError(f"{what}: unknown flavor {flavor!r}")


# -- sklearn through skops -----------------------------------------------------------------


def _check_trusted(data: bytes, trusted_types: Sequence[str], what: str) -> list[str]:
    import skops.io

    try:
        found = skops.io.get_untrusted_types(data=data)
    except Exception as exc:
        raise ArtifactError(
            f"{what} is not a skops file ({type(exc).__name__}: {exc}); save scikit-learn "
            "models with skops.io.dump(model, 'model.skops')"
        ) from None
    unknown = sorted(set(found) - set(trusted_types) - set(SAFE_TYPES))
    if unknown:
        raise ArtifactError(
            f"{what} holds types skops does not trust, so it is not loaded: "
            f"{', '.join(unknown)}. If you wrote and trust them, list them under "
            "models.trusted_types in featurehub.yaml"
        )
    return list(found)


def _load_skops(data: bytes, trusted_types: Sequence[str], what: str) -> Any:
    import skops.io

    trusted = _check_trusted(data, trusted_types, what)
    return skops.io.loads(data, trusted=trusted)


class _SklearnPredictor:
    matrix_dtype: Any = np.float64

    def __init__(self, model: Any) -> None:
        self.model = model
        names = getattr(model, "feature_names_in_", None)
        self._names: list[str] | None = None if names is None else [str(n) for n in names]
        # What a matrix is given to: the model, or for one fitted on a DataFrame, its copy
        # proven to answer the same on the array (sklearn_arrays), else None: a frame.
        self.array_model = model if names is None else array_model(model)
        # A linear model's predict on the matrix as a few numpy operations, proven at load
        # to answer bit-identically (sklearn_linear), else None: the array model's own.
        self.linear = None if self.array_model is None else _linear_predict(self.array_model)

    def predict(self, features: pd.DataFrame) -> Any:
        if self._names is not None:
            return self.model.predict(features)
        return self.model.predict(matrix(features, np.float64))

    def predict_matrix(self, values: np.ndarray) -> Any:
        if self.linear is not None:
            return self.linear(values)
        if self.array_model is not None:
            return self.array_model.predict(values)
        assert self._names is not None  # only a model fitted on names lacks an array model
        return self.model.predict(frame_of(values, self._names))


def _linear_predict(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    try:  # imported here, as skops is: it imports scikit-learn's private names of 1.9
        from featurehub.models.sklearn_linear import linear_predict
    except ImportError:  # another scikit-learn: its own predict
        return None
    return linear_predict(model)


def matrix(features: pd.DataFrame, dtype: Any) -> np.ndarray:
    """The features as one array; a missing value (pd.NA in nullable columns) is NaN.
    Filled column by column: pandas' frame-wide `to_numpy(na_value=...)` over nullable
    columns is ten times slower."""
    if dtype is np.object_ or dtype is np.bool_:
        return features.to_numpy(dtype=dtype)
    out = np.empty(features.shape, dtype=dtype)
    for index, name in enumerate(features.columns):
        out[:, index] = features[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def arrow_matrix(table: pa.Table, dtype: Any) -> np.ndarray | None:
    """Numeric and boolean columns straight into one array (a null is NaN), skipping
    pandas: what batch scoring feeds a matrix model. None when a column is of another type."""
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return None
    out = np.empty((table.num_rows, table.num_columns), dtype=dtype)
    for index, column in enumerate(table.columns):
        kind = column.type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            return None
        filled = pc.fill_null(pc.cast(column, pa.float64()), np.nan)
        out[:, index] = filled.to_numpy()
    return out


class MatrixPlan(NamedTuple):
    """How `values_matrix` converts columns of given Arrow types into one array: worked out
    once per column types (`matrix_plan`) so that a model's online predict, which converts
    the same service's columns on every request, only converts (`MatrixPlan.matrix`)."""

    dtype: Any
    narrower: tuple[tuple[int, Any], ...]  # floating columns of fewer bits than float64

    def matrix(self, columns: Sequence[Sequence[Any]]) -> np.ndarray:
        if not columns:
            return np.empty((0, 0), dtype=self.dtype)
        # One conversion for every column (a None is NaN), ~1 us per column less than one
        # each: the online path converts a one-row look-up per request. Each value becomes
        # the nearest float64 exactly as Arrow's cast gives it; transposed to rows, C-ordered.
        out = np.array(columns, dtype=np.float64).T
        for index, narrow in self.narrower:  # a Float32's values are rounded to it, as in Arrow
            out[:, index] = out[:, index].astype(narrow)
        return np.ascontiguousarray(out, dtype=self.dtype)


def matrix_plan(types: Sequence[pa.DataType], dtype: Any) -> MatrixPlan | None:
    """The plan of `values_matrix` for columns of `types`; None when a column is not numeric
    or boolean, or `dtype` is not floating."""
    if not np.issubdtype(np.dtype(dtype), np.floating):
        return None
    narrower: list[tuple[int, Any]] = []
    for index, kind in enumerate(types):
        if pa.types.is_floating(kind):
            if kind.bit_width < 64:
                narrower.append((index, kind.to_pandas_dtype()))
        elif not (pa.types.is_integer(kind) or pa.types.is_boolean(kind)):
            return None
    return MatrixPlan(dtype, tuple(narrower))


def values_matrix(
    columns: Sequence[Sequence[Any]], types: Sequence[pa.DataType], dtype: Any
) -> np.ndarray | None:
    """Python values of numeric and boolean columns (None when missing) into one array: what
    `arrow_matrix` gives for an Arrow table of those columns and types (a null is NaN), without
    building the table. What the feature server feeds a matrix model from the online look-up.
    None when a column is of another type."""
    plan = matrix_plan(types, dtype)
    return None if plan is None else plan.matrix(columns)


# -- onnx through onnxruntime ------------------------------------------------------------

_ONNX_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.object_,
}


def _onnx_predictor(data: bytes, what: str) -> Predictor:
    """A graph of one input takes the features as a matrix; one of an input per feature
    (named as the features) a column each, from the frame."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # A run on the calling thread only. ONNX Runtime's pool threads otherwise busy-wait
    # after each run for the next one (a one-row logistic regression used ~1.8x its run's
    # CPU), and without spinning each run still wakes one: a one-row run cost 10.4 us of
    # CPU for 5.6 of wall time, 5.4 for 5.4 on one thread. The feature server's
    # parallelism is its worker processes; batch scoring's time is the join's.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ArtifactError(f"{what} is not a valid ONNX model: {exc}") from None
    if len(session.get_inputs()) == 1:
        return _OnnxMatrixPredictor(session)
    return _OnnxColumnsPredictor(session)


class _OnnxColumnsPredictor:
    """A graph with an input per feature, each given its column."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = [
            (node.name, _ONNX_TYPES.get(node.type, np.float32)) for node in session.get_inputs()
        ]
        self._output = [session.get_outputs()[0].name]

    def predict(self, features: pd.DataFrame) -> Any:
        feed = {name: matrix(features[[name]], dtype) for name, dtype in self.inputs}
        return self.session.run(self._output, feed)[0]

    def input_width(self) -> int | None:
        return len(self.inputs)


class _OnnxMatrixPredictor(_OnnxColumnsPredictor):
    """A graph with one input: the features as a matrix, which the server and batch scoring
    build straight from the look-up's values or the joined Arrow table."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        # Read once: each read of a NodeArg's name builds a new string in onnxruntime.
        self._name, self.matrix_dtype = self.inputs[0]

    def predict_matrix(self, values: np.ndarray) -> Any:
        return self.session.run(self._output, {self._name: values})[0]

    def predict(self, features: pd.DataFrame) -> Any:
        return self.predict_matrix(matrix(features, self.matrix_dtype))

    def input_width(self) -> int | None:
        """The number of features the graph takes, when its input's shape says."""
        shape = self.session.get_inputs()[0].shape
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None


# -- pyfunc: a class of the feature repo ----------------------------------------------------


def _module_file(module: str, repo_path: Path) -> Path:
    parts = module.split(".")
    for candidate in (
        repo_path.joinpath(*parts).with_suffix(".py"),
        repo_path.joinpath(*parts, "__init__.py"),
    ):
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"pyfunc module {module!r} is not a file of the feature repo {str(repo_path)!r}; "
        "name a class as package.module:Class, relative to the repo folder"
    )


def _import_path_of(model: Any, repo_path: Path) -> str:
    if isinstance(model, (str, Path)):
        text = str(model)
        if not _IMPORT_PATH.match(text):
            raise ModelError(
                f"pyfunc model {text!r} is not an import path; write package.module:Class "
                "(a class in the feature repo with predict(features: pandas.DataFrame))"
            )
        return text
    if isinstance(model, type):
        import inspect

        source = inspect.getsourcefile(model)
        repo = repo_path.resolve()
        if source is None or not Path(source).resolve().is_relative_to(repo):
            raise ModelError(
                f"pyfunc class {model.__name__} is not defined in a file of the feature repo "
                f"{str(repo)!r}; move it there (models are loaded from the repo)"
            )
        relative = Path(source).resolve().relative_to(repo).with_suffix("")
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        return ".".join(parts) + ":" + model.__qualname__
    raise ModelError(
        f"flavor pyfunc takes package.module:Class or a class, not a {type(model).__name__}"
    )


def _pyfunc_artifact(model: Any, repo_path: Path) -> bytes:
    import_path = _import_path_of(model, repo_path)
    module = import_path.partition(":")[0]
    source = _module_file(module, repo_path)
    record = {
        "class": import_path,
        "file": source.relative_to(repo_path).as_posix(),
        "source_sha256": sha256_of(source.read_bytes()),
    }
    return json.dumps(record, sort_keys=True).encode()


def _load_pyfunc(data: bytes, repo_path: Path, what: str) -> Predictor:
    record = json.loads(data)
    import_path: str = record["class"]
    module_name, _, class_name = import_path.partition(":")
    source = _module_file(module_name, repo_path)
    if sha256_of(source.read_bytes()) != record["source_sha256"]:
        raise ArtifactError(
            f"{what}: {record['file']} changed since this version was registered, so its "
            "class is not what was registered; restore the file, or register the changed "
            "class as a new version"
        )
    spec = importlib.util.spec_from_file_location(f"featurehub_models.{module_name}", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(repo_path))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(f"{what}: importing {record['file']} failed: {exc}") from None
    finally:
        sys.path.remove(str(repo_path))
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not callable(getattr(cls, "predict", None)):
        raise ModelError(
            f"{what}: {record['file']} has no class {class_name} with a predict(features) method"
        )
    try:
        instance: Predictor = cls()
    except Exception as exc:
        raise ModelError(f"{what}: {class_name}() failed: {exc}") from None
    return instance


def as_predictions(values: Any, rows: int, what: str) -> np.ndarray:
    """A model's answer as one value per row, or a ModelError that says what came back."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.ravel()
    if array.ndim != 1 or len(array) != rows:
        raise ModelError(
            f"{what}: predict returned shape {array.shape} for {rows} rows; it must return "
            "one prediction per row"
        )
    return array
