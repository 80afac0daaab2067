"""The mlflow flavor against a real MLflow tracking store and model registry (SQLite in a
temporary folder): a scikit-learn model logged with MLflow from the repo's saved dataset is
registered from `runs:/`, from `models:/` (MLflow's registry) and from its folder, predicts
what MLflow's own load predicts, serves through the predict endpoint, scores in batch; a
tampered archive and a wrong signature are refused; without MLflow the message names the
extra."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mlflow  # the mlflow extra (make install brings it)
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.models import infer_signature
from mlflow.types import ColSpec, Schema
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.models import ArtifactError, ModelError, ModelNotFoundError
from featurehub.models.mlflow_flavor import pack, unpack
from featurehub.server import create_app
from tests.models.conftest import FEATURES, build_model_repo, train
from tests.repos import BASE
from tests.server.conftest import server_config

OPTIONS = {"feature_service": "driver_service", "training_dataset": "train"}
ROOT = Path(__file__).resolve().parents[2]
KNOWN_DRIVERS = [1000, 1001, 1002]


@dataclass(frozen=True)
class Logged:
    """What the MLflow side holds: runs with a good and two mismatched models."""

    repo: Path
    tracking_uri: str
    run_id: str
    wrong_names_run: str
    wrong_types_run: str

    @property
    def run_uri(self) -> str:
        return f"runs:/{self.run_id}/model"


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    root = tmp_path_factory.mktemp("mlflow")
    repo = build_model_repo(root / "repo", "sqlite:///data/registry.db")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)  # for MLflow in a subprocess too
        mlflow.set_tracking_uri(tracking_uri)
        experiment = mlflow.create_experiment(
            "featurehub", artifact_location=(root / "artifacts").as_uri()
        )
        with FeatureStore(repo) as store:
            model = train(store)
            features = store.get_dataset("train").to_pandas()[FEATURES].astype("float64")
        signature = infer_signature(features, model.predict(features))
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.sklearn.log_model(
                model, name="model", signature=signature, registered_model_name="driver_mlflow"
            )
        renamed = features.rename(columns={"trips_today": "trips_total"})
        with mlflow.start_run(experiment_id=experiment) as wrong_names:
            mlflow.sklearn.log_model(
                train_on(renamed), name="model", signature=infer_signature(renamed)
            )
        strings = Schema([ColSpec("string", "conv_rate"), ColSpec("double", "trips_today")])
        with mlflow.start_run(experiment_id=experiment) as wrong_types:
            mlflow.sklearn.log_model(
                model, name="model", signature=mlflow.models.ModelSignature(strings)
            )
        yield Logged(
            repo, tracking_uri, run.info.run_id, wrong_names.info.run_id, wrong_types.info.run_id
        )
        mlflow.set_tracking_uri(None)


def train_on(frame: pd.DataFrame) -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(frame, (frame["conv_rate"] > 0.5).astype(int))


@pytest.fixture
def store(logged: Logged) -> Iterator[FeatureStore]:
    with FeatureStore(logged.repo) as opened:
        yield opened


def mlflow_predictions(uri: str, frame: pd.DataFrame) -> list[int]:
    """What MLflow's own load predicts on the features (as the model was trained on them)."""
    return list(mlflow.pyfunc.load_model(uri).predict(frame[FEATURES].astype("float64")))


def registered(store: FeatureStore, name: str, source: str) -> int:
    """The version of `name` registered from `source` (registered once per module)."""
    try:
        versions = store.models.versions(name)
    except ModelNotFoundError:
        versions = []
    for version in versions:
        if version.params.get("mlflow_source") == source:
            return version.version
    return store.models.register(name, source, flavor="mlflow", **OPTIONS).version


def test_registered_from_a_run_a_registry_and_a_folder(
    store: FeatureStore, logged: Logged, tmp_path: Path
) -> None:
    frame = store.get_dataset("train").to_pandas()
    expected = mlflow_predictions(logged.run_uri, frame)

    from_run = store.models.register("from_run", logged.run_uri, flavor="mlflow", **OPTIONS)
    assert from_run.flavor == "mlflow"
    assert from_run.params == {"mlflow_source": logged.run_uri, "mlflow_run_id": logged.run_id}
    assert from_run.artifact_path.endswith(f"{from_run.artifact_sha256}.tar.gz")
    assert from_run.signature.to_dict()["output"] == "int64"
    assert list(store.models.load("from_run:1").predict(frame)) == expected

    from_registry = store.models.register(
        "from_registry", "models:/driver_mlflow/1", flavor="mlflow", **OPTIONS
    )
    assert from_registry.params["mlflow_source"] == "models:/driver_mlflow/1"
    assert from_registry.params["mlflow_run_id"] == logged.run_id
    assert list(store.models.load("from_registry:1").predict(frame)) == expected

    # The archive depends only on the files: the same run again, or its folder downloaded
    # elsewhere (other mtimes), is the same artifact, stored once.
    again = store.models.register("from_run", logged.run_uri, flavor="mlflow", **OPTIONS)
    assert (again.version, again.artifact_sha256) == (2, from_run.artifact_sha256)
    folder = Path(mlflow.artifacts.download_artifacts(logged.run_uri, dst_path=str(tmp_path)))
    os.utime(folder / "MLmodel", (1, 1))
    from_folder = store.models.register("from_folder", str(folder), flavor="mlflow", **OPTIONS)
    assert from_folder.artifact_sha256 == from_run.artifact_sha256
    assert from_folder.params["mlflow_source"] == str(folder.resolve())
    assert pack(folder) == pack(folder)


def test_the_flavor_is_never_inferred_and_bad_sources_are_named(
    store: FeatureStore, logged: Logged, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="register it with flavor mlflow.*trust"):
        store.models.register("guessed", logged.run_uri, **OPTIONS)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="neither an MLflow model URI"):
        store.models.register("bad", str(tmp_path / "nowhere"), flavor="mlflow", **OPTIONS)
    with pytest.raises(ModelError, match="no MLmodel file"):
        store.models.register("bad", str(tmp_path), flavor="mlflow", **OPTIONS)
    with pytest.raises(ModelError, match="MLflow could not download 'runs:/0000/model'"):
        store.models.register("bad", "runs:/0000/model", flavor="mlflow", **OPTIONS)
    with pytest.raises(ModelError, match="'mlflow_source' is recorded by featurehub"):
        store.models.register(
            "bad", logged.run_uri, flavor="mlflow", params={"mlflow_source": "x"}, **OPTIONS
        )
    assert "bad" not in {version.name for version in store.models.list()}


def test_a_wrong_signature_is_refused(store: FeatureStore, logged: Logged) -> None:
    with pytest.raises(ModelError) as names:
        store.models.register(
            "wrong", f"runs:/{logged.wrong_names_run}/model", flavor="mlflow", **OPTIONS
        )
    assert "MLflow signature does not match its feature service" in str(names.value)
    assert "the model takes trips_total (double), which the service does not serve" in str(
        names.value
    )
    assert "the service serves trips_today, which the model does not take" in str(names.value)
    with pytest.raises(ModelError, match="conv_rate is Float64, the model takes string"):
        store.models.register(
            "wrong", f"runs:/{logged.wrong_types_run}/model", flavor="mlflow", **OPTIONS
        )
    assert "wrong" not in {version.name for version in store.models.list()}


def test_a_tampered_archive_is_refused_and_a_changed_cache_unpacked_again(
    store: FeatureStore, logged: Logged
) -> None:
    version = registered(store, "tampered", logged.run_uri)
    record = store.models.get(f"tampered:{version}")
    frame = store.get_dataset("train").to_pandas()
    expected = list(store.models.load(record.reference).predict(frame))

    unpacked = store.models.artifacts.unpacked / record.artifact_sha256
    mlmodel = (unpacked / "MLmodel").read_bytes()
    (unpacked / "MLmodel").write_bytes(b"flavors: {}\n")
    assert list(store.models.load(record.reference).predict(frame)) == expected
    assert (unpacked / "MLmodel").read_bytes() == mlmodel

    path = store.config.model_artifact_root / record.artifact_path
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ArtifactError, match="has sha256 .* not the .* recorded"):
            store.models.load(record.reference)
    finally:
        path.write_bytes(original)


def fresh_online_rows(store: FeatureStore, repo: Path) -> None:
    """Rows of an hour ago for the known drivers, materialized: served, not expired."""
    now = datetime.now(timezone.utc)
    source = repo / "data" / "drivers.parquet"
    hour_ago = pa.array([now - timedelta(hours=1)] * 3, pa.timestamp("us", tz="UTC"))
    fresh = pa.table(
        {
            "driver_id": pa.array(KNOWN_DRIVERS, pa.int64()),
            "event_timestamp": hour_ago,
            "created": hour_ago,
            "conv_rate": [0.2, 0.6, 0.9],
            "trips_today": pa.array([12, 36, 54], pa.int64()),
            "city": ["x"] * 3,
        }
    )
    pq.write_table(pa.concat_tables([pq.read_table(source), fresh]), source)
    store.materialize(BASE, now + timedelta(minutes=1))


def test_served_and_batch_scored(store: FeatureStore, logged: Logged, tmp_path: Path) -> None:
    fresh_online_rows(store, logged.repo)
    version = registered(store, "served", logged.run_uri)
    store.models.promote("served", version, "production")
    with TestClient(create_app(store, server_config())) as client:
        answer = client.post(
            "/v1/models/served/predict", json={"entities": {"driver_id": KNOWN_DRIVERS}}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["version"], body["arm"]) == (version, "production")
    online = store.get_online_features("driver_service", {"driver_id": KNOWN_DRIVERS}, log=False)
    assert online.values["conv_rate"] == [0.2, 0.6, 0.9]
    assert body["predictions"] == mlflow_predictions(logged.run_uri, online.to_pandas())
    assert len(set(body["predictions"])) == 2

    entities = str(logged.repo / "data" / "entities.parquet")
    out = tmp_path / "scores.parquet"
    result = store.models.score("served@production", entities, out)
    joined = store.get_historical_features(entities, "driver_service").to_pandas()
    assert result.rows == len(joined)
    scored = pq.read_table(out).column("prediction").to_pylist()
    assert scored == mlflow_predictions(logged.run_uri, joined)


def test_the_command_line_registers_with_flavor_mlflow(logged: Logged) -> None:
    result = CliRunner().invoke(
        app,
        ["--repo", str(logged.repo), "models", "register", "from_cli", logged.run_uri,
         "--flavor", "mlflow", "--feature-service", "driver_service",
         "--training-dataset", "train"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Registered from_cli version 1 (mlflow" in result.output


# Run in a fresh interpreter where `import mlflow` fails, as where the extra is not installed.
WITHOUT_MLFLOW = """
import sys
sys.modules["mlflow"] = None
from featurehub import FeatureStore
from featurehub.cli import app
repo, run_uri, reference = sys.argv[1:]
with FeatureStore(repo) as store:
    try:
        store.models.load(reference)
    except Exception as exc:
        print(f"load: {type(exc).__name__}: {exc}")
app(["--repo", repo, "models", "register", "absent", run_uri, "--flavor", "mlflow",
     "--feature-service", "driver_service", "--training-dataset", "train"])
"""


def test_without_mlflow_the_message_names_the_extra(store: FeatureStore, logged: Logged) -> None:
    version = registered(store, "needs_mlflow", logged.run_uri)
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_MLFLOW), str(logged.repo),
         logged.run_uri, f"needs_mlflow:{version}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert completed.returncode == 1, output
    assert (
        f"load: ModelError: model needs_mlflow version {version} is an MLflow model and needs "
        "MLflow, which is not installed: pip install 'featurehub[mlflow]'" in output
    )
    assert "error: model 'runs:/" in output and "pip install 'featurehub[mlflow]'" in output
    assert "absent" not in {v.name for v in store.models.list()}
    store.models.load(f"needs_mlflow:{version}")  # with MLflow, the same version loads


# -- the archive, against an oracle: the files themselves ------------------------------------

# Relative file names up to two folders deep (a folder name never is a file name).
NAMES = st.builds(
    lambda folders, leaf: "/".join([*folders, leaf]),
    st.lists(st.sampled_from(["a", "b", "sub"]), max_size=2),
    st.sampled_from(["x.f", "y.f", "MLmodel"]),
)
TREES = st.dictionaries(NAMES, st.binary(max_size=64), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(files=TREES, order=st.randoms(use_true_random=False), mtimes=st.lists(st.integers(1, 2**31)))
def test_the_archive_depends_only_on_names_and_contents(
    files: dict[str, bytes], order: random.Random, mtimes: list[int]
) -> None:
    """Written in another order with other mtimes, a tree packs to the same bytes; unpacked,
    it is the same files; a changed unpacked file is put back."""
    with tempfile.TemporaryDirectory() as scratch:
        first, second, root = Path(scratch, "first"), Path(scratch, "second"), Path(scratch, "u")
        for folder, names in (
            (first, sorted(files)),
            (second, order.sample(sorted(files), len(files))),
        ):
            for index, name in enumerate(names):
                path = folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(files[name])
                stamp = mtimes[index % len(mtimes)] if mtimes else 1
                os.utime(path, (stamp, stamp))
        data = pack(first)
        assert pack(second) == data
        sha256 = hashlib.sha256(data).hexdigest()
        unpacked = unpack(data, sha256, root)
        on_disk = {
            p.relative_to(unpacked).as_posix(): p.read_bytes()
            for p in unpacked.rglob("*")
            if p.is_file()
        }
        assert on_disk == files
        name = sorted(files)[0]
        (unpacked / name).write_bytes(b"changed" + files[name])
        assert unpack(data, sha256, root) == unpacked
        assert (unpacked / name).read_bytes() == files[name]
        assert [p.name for p in root.iterdir()] == [sha256]  # no temporary folder left
