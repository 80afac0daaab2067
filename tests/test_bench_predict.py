"""bench/bench_predict.py's setup on the example repo: the demo's pipeline (trained by
feature_repo/train_model.py's own code), a plain LogisticRegression and its ONNX export are
registered, the export answers scikit-learn's labels, and the chosen entities have every
feature online. The load itself (wrk, seconds per figure) is left to the bench."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_predict  # noqa: E402

from featurehub import FeatureStore  # noqa: E402
from featurehub.config import load_config  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def test_the_bench_registers_its_three_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start, end = bench_predict.window()
    with RedisServer() as redis:
        repo, env, _, _ = bench_predict.prepare(tmp_path, redis.url, start, end)
        with FeatureStore(config=load_config(repo, env=env)) as store:
            versions = bench_predict.register_models(store, repo)
            entities = bench_predict.complete_entities(store, repo, 100)
            assert store.models.get(f"{bench_predict.MODEL}@production").version == 1
            flavors = [store.models.get(f"{bench_predict.MODEL}:{v}").flavor for v in (1, 2, 3)]
            onnx = store.models.load(f"{bench_predict.MODEL}:{versions['onnx LR']}")
            sklearn = store.models.load(f"{bench_predict.MODEL}:{versions['sklearn LR']}")
            response = store.get_online_features("trip_completion_v1", entities, log=False)
            assert (onnx.predict_online(response) == sklearn.predict_online(response)).all()
    assert versions == {"pipeline": 1, "sklearn LR": 2, "onnx LR": 3}
    assert flavors == ["sklearn", "sklearn", "onnx"]
    assert all(len(values) == 100 for values in entities.values())
    printed = capsys.readouterr().out
    rows = printed.split("training rows")[0].split()[-1]
    assert f"labels equal on {rows};" in printed
