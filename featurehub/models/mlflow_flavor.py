"""The `mlflow` flavor: a version whose artifact is an MLflow model, loaded with mlflow.pyfunc.

Optional interop for teams whose models already live in MLflow. MLflow is an extra
(`pip install 'featurehub[mlflow]'`), imported only when this flavor is used. The flavor is
never inferred: loading an MLflow model runs that model's own code (its sklearn flavor is a
pickle, a pyfunc model is cloudpickled Python), so registering one is an explicit statement
that its source is trusted.

At registration the model is downloaded (`mlflow.artifacts.download_artifacts`, so any URI
MLflow resolves: `models:/NAME/VERSION`, `runs:/RUN_ID/PATH`, a local directory) and its
directory packed into one deterministic archive (sorted names, fixed mtimes, modes and
owners, gzip without a timestamp), which is stored content-addressed like every artifact:
the version no longer depends on the MLflow server, and the same model registered twice is
stored once. Loading checks the archive's sha256 as for every flavor, unpacks it to a folder
named by that sha256 (checked against the archive before each reuse) and loads it with
`mlflow.pyfunc.load_model`.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from featurehub.models.artifacts import ArtifactError
from featurehub.models.flavors import matrix
from featurehub.registry.models import ModelError, SignatureInput

INSTALL = "pip install 'featurehub[mlflow]'"
# Params every mlflow version records: where the model came from (the archive is what loads).
SOURCE_PARAMS = ("mlflow_source", "mlflow_run_id")
_URI_PREFIXES = ("models:/", "runs:/")
# featurehub value types and the MLflow column types each feeds without losing information.
_TAKES = {
    "Int32": {"integer", "long", "float", "double"},
    "Int64": {"long", "float", "double"},
    "Float32": {"float", "double"},
    "Float64": {"double"},
    "Bool": {"boolean", "integer", "long", "float", "double"},
    "String": {"string"},
    "Bytes": {"binary"},
    "Timestamp": {"datetime"},
}


def require_mlflow(what: str) -> Any:
    """The mlflow module, or a ModelError naming the extra to install."""
    try:
        import mlflow
        import mlflow.artifacts
        import mlflow.pyfunc
    except ImportError:
        raise ModelError(
            f"{what} is an MLflow model and needs MLflow, which is not installed: {INSTALL}"
        ) from None
    return mlflow


def looks_like_mlflow(text: str) -> bool:
    """An MLflow URI or model directory: said in the error when no flavor was given."""
    return text.startswith(_URI_PREFIXES) or (Path(text).expanduser() / "MLmodel").is_file()


# -- registration: download and pack --------------------------------------------------------


def mlflow_archive(source: Any) -> bytes:
    """The archive of the MLflow model at `source` (a URI or a model directory)."""
    if not isinstance(source, (str, Path)):
        raise ModelError(
            "flavor mlflow takes an MLflow model URI (models:/NAME/VERSION, runs:/RUN_ID/PATH) "
            f"or the path of an MLflow model directory, not a {type(source).__name__}"
        )
    mlflow = require_mlflow(f"model {str(source)!r}")
    text = str(source)
    local = not _is_uri(text)
    if local and not Path(text).expanduser().is_dir():
        raise ModelError(
            f"{text!r} is neither an MLflow model URI (models:/NAME/VERSION, "
            "runs:/RUN_ID/PATH) nor a directory; pass one of those"
        )
    with tempfile.TemporaryDirectory(prefix="featurehub-mlflow-") as scratch:
        try:
            downloaded = Path(
                mlflow.artifacts.download_artifacts(source_of(text), dst_path=scratch)
            )
        except Exception as exc:
            raise ModelError(
                f"MLflow could not download {text!r} ({type(exc).__name__}: {exc}); check the "
                "URI and MLFLOW_TRACKING_URI (and MLFLOW_REGISTRY_URI for models:/)"
            ) from None
        if not (downloaded / "MLmodel").is_file():
            raise ModelError(
                f"{text!r} is not an MLflow model (it has no MLmodel file); name the model's "
                "directory, e.g. runs:/RUN_ID/model"
            )
        return pack(downloaded)


def source_of(source: Any) -> str:
    """The source as recorded: a local directory as its absolute path."""
    text = str(source)
    return text if _is_uri(text) else str(Path(text).expanduser().resolve())


def _is_uri(text: str) -> bool:
    return text.startswith(_URI_PREFIXES) or "://" in text


def pack(directory: Path) -> bytes:
    """`directory` as a gzipped tar whose bytes depend only on the files' names and contents."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(directory.rglob("*"), key=lambda p: p.relative_to(directory).parts):
            name = path.relative_to(directory).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ModelError(
                    f"the MLflow model holds {name!r}, which is not a plain file or folder; "
                    "featurehub stores only those"
                )
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), mtime=0)


# -- loading: unpack once per sha256, then mlflow.pyfunc ------------------------------------


def _files_of(data: bytes) -> dict[str, bytes]:
    """The archive's files by name."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def _files_on_disk(folder: Path) -> dict[str, bytes]:
    """A folder's files by name (byte code Python caches beside imported model code aside)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def unpack(data: bytes, sha256: str, root: Path) -> Path:
    """The archive unpacked at `root/<sha256>`: reused when its files are the archive's,
    else unpacked again (a folder is unpacked beside and renamed into place)."""
    final = root / sha256
    expected = _files_of(data)
    if final.is_dir() and _files_on_disk(final) == expected:
        return final
    root.mkdir(parents=True, exist_ok=True)
    fresh = root / f".{sha256}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            archive.extractall(fresh, filter="data")
        if final.exists():  # changed since, or half-removed: set it aside, then drop it
            stale = root / f".{sha256}.{uuid.uuid4().hex[:12]}.stale"
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(fresh, final)
        except OSError:  # another process put an identical one in place meanwhile
            if _files_on_disk(final) != expected:
                raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return final


def load_mlflow(data: bytes, sha256: str, root: Path, what: str) -> MlflowPredictor:
    """A predictor from archive bytes already checked against their sha256."""
    mlflow = require_mlflow(what)
    folder = unpack(data, sha256, root)
    try:
        model = mlflow.pyfunc.load_model(str(folder))
    except Exception as exc:
        raise ArtifactError(
            f"{what}: mlflow.pyfunc could not load it ({type(exc).__name__}: {exc})"
        ) from None
    return MlflowPredictor(model)


class MlflowPredictor:
    """An mlflow.pyfunc model behind featurehub's `predict(DataFrame)`: the features are
    converted to the column types the model's signature names (MLflow enforces them), and
    a missing value is NaN as for every flavor."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.schema = model.metadata.get_input_schema()
        self.run_id: str | None = getattr(model.metadata, "run_id", None)

    def predict(self, features: pd.DataFrame) -> Any:
        return self.model.predict(self._inputs(features))

    def _inputs(self, features: pd.DataFrame) -> Any:
        schema = self.schema
        if schema is not None and schema.is_tensor_spec():
            spec = schema.inputs[0]
            return matrix(features, spec.type)
        types = {} if schema is None or not schema.has_input_names() else _column_types(schema)
        frame: dict[str, Any] = {}
        for name in features.columns:
            column = features[name]
            kind = types.get(name)
            if kind in ("double", "float") or (kind is None and _is_numeric(column)):
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                frame[name] = values.astype(np.float32) if kind == "float" else values
            elif kind in ("long", "integer", "boolean") and not column.isna().any():
                dtype = {"long": np.int64, "integer": np.int32, "boolean": np.bool_}[kind]
                frame[name] = column.to_numpy(dtype=dtype)
            elif kind in ("long", "integer", "boolean"):  # a missing value: NaN, as for all
                frame[name] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            elif kind == "string":
                frame[name] = column.astype(object).where(column.notna(), None).to_numpy()
            else:
                frame[name] = column
        return pd.DataFrame(frame, index=features.index)

    def input_differences(self, inputs: Sequence[SignatureInput]) -> list[str]:
        """How the model's MLflow signature differs from a service's features (none when
        the model has no signature: then the sample predict is the check)."""
        schema = self.schema
        if schema is None:
            return []
        if schema.is_tensor_spec():
            shape = schema.inputs[0].shape
            width = shape[-1] if len(shape) == 2 else None
            if width is not None and width >= 0 and width != len(inputs):
                return [f"the model takes a tensor of {width} features, not {len(inputs)}"]
            return []
        if not schema.has_input_names():
            count = len(schema.inputs)
            return [] if count == len(inputs) else [f"the model takes {count} columns"]
        served = {item.name: item.type for item in inputs}
        wanted = _column_types(schema)
        required = {spec.name for spec in schema.inputs if getattr(spec, "required", True)}
        problems = [
            f"the model takes {name} ({wanted[name]}), which the service does not serve"
            for name in wanted
            if name in required and name not in served
        ]
        problems += [
            f"the service serves {name}, which the model does not take"
            for name in served
            if name not in wanted
        ]
        problems += [
            f"{name} is {served[name]}, the model takes {wanted[name]}"
            for name in wanted
            if name in served and wanted[name] not in _TAKES.get(served[name], set())
        ]
        return problems


def _column_types(schema: Any) -> dict[str, str]:
    return {spec.name: getattr(spec.type, "name", str(spec.type)) for spec in schema.inputs}


def _is_numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
