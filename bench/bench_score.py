"""Benchmark of batch scoring (`store.models.score`) against its parts.

Builds the example repo in a temporary folder (its generator, --rows driver rows, seeded),
materializes it, trains an imputer + LogisticRegression over trip_completion_v1's features on
a saved training set, and registers it (sklearn flavor). Then, on --entity-rows
entity rows (the trips, resampled with their times), it times, --repeat times each:

    join     get_historical_features(entities, service).to_arrow()
    predict  the loaded model's predict on the joined features (`predict_table`)
    score    store.models.score(...): join, predict, Parquet written atomically

and reports the medians and score / (join + predict): the issue's bound is 1.3.

    python bench/bench_score.py                                   # 1M entity rows
    python bench/bench_score.py --rows 200000 --entity-rows 100000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from featurehub import FeatureStore
from tests.example_repo import copy_example_repo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recording import Transcript, add_arguments, finish

SERVICE = "trip_completion_v1"
SECTION = "## Batch scoring (`bench/bench_score.py`)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--entity-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one more score")
    add_arguments(parser)
    args = parser.parse_args(argv)
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as folder:
        repo = copy_example_repo(Path(folder) / "repo", rows=args.rows, end=now)
        with FeatureStore(repo) as store:
            store.apply()
            store.materialize(now - timedelta(days=60), now + timedelta(hours=1), online=False)
            trips = pq.read_table(repo / "data" / "trips.parquet")
            dataset = store.datasets.save("train", trips, SERVICE)
            frame = dataset.to_pandas()
            model = store.models.register(
                "trip", _fit(store, frame), feature_service=SERVICE, training_dataset="train"
            )
            rng = np.random.default_rng(7)
            entities = trips.take(rng.integers(0, trips.num_rows, args.entity_rows))
            pq.write_table(entities, repo / "data" / "entities.parquet")
            path = str(repo / "data" / "entities.parquet")
            loaded = store.models.load(f"trip:{model.version}")
            joins, predicts, scores = [], [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                joined = store.get_historical_features(path, SERVICE).to_arrow()
                joins.append(time.perf_counter() - started)
                started = time.perf_counter()
                loaded.predict_table(joined)
                predicts.append(time.perf_counter() - started)
                started = time.perf_counter()
                store.models.score(f"trip:{model.version}", path, repo / "scores.parquet")
                scores.append(time.perf_counter() - started)
            if args.profile:
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                profiler.enable()
                store.models.score(f"trip:{model.version}", path, repo / "scores.parquet")
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    join, predict, score = (statistics.median(x) for x in (joins, predicts, scores))
    out = Transcript()
    out(f"entity rows {args.entity_rows:,}, driver rows {args.rows:,}, median of {args.repeat}")
    out.gap()
    out(f"join {join:.2f} s, predict {predict:.2f} s, score {score:.2f} s")
    out.gap()
    out(f"score / (join + predict) = {score / (join + predict):.2f} (bound 1.3)")
    finish(args.record, "bench_score", SECTION, out.lines, argv)


def _fit(store: FeatureStore, frame: object) -> object:
    service = store.get_feature_service(SERVICE)
    names = [f for p in service.projections for f in p.features]
    matrix = frame[names].to_numpy(dtype=np.float64, na_value=np.nan)  # type: ignore[index]
    labels = frame["completed"].astype(int)  # type: ignore[index]
    return make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(matrix, labels)


if __name__ == "__main__":
    main()
