"""Benchmark POST /v1/models/{name}/predict against POST /v1/features for the same entities.

    .venv/bin/python bench/bench_predict.py [--seconds 5] [--rounds 2]

Builds the test driver repo (tests/server/test_predict.py: a LogisticRegression behind an
imputer over driver_service's two features, fitted on a DataFrame, promoted), starts
`uvicorn serving.app:app` on a free 127.0.0.1 port (one worker, metrics and the serving log
on) and drives both endpoints with bench_server's load generator (wrk when installed, else
httpx), alternating them `--rounds` times and keeping each one's best round (the machine is
shared: a burst of someone else's work should not decide a ratio). Prints req/s and p50/p99 at
concurrency 1 and 8 for 1 and 100 entity rows (and for a LogisticRegression fitted on a
numpy matrix, pinned), the model's own predict time (`LoadedModel.predict_online`, what the
server calls, in-process on the same online features), and issue 11's two targets:
throughput >= 0.7x the feature endpoint's, and predict p50 <= features p50 + the model's
predict + 150 us.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_server import load  # noqa: E402

from featurehub import FeatureStore  # noqa: E402
from tests.redis_server import free_port  # noqa: E402
from tests.server.test_predict import MODEL, build  # noqa: E402
from tests.server.test_shutdown import start  # noqa: E402


def register_fast(repo: Path) -> int:
    """A LogisticRegression fitted on a numpy matrix (no feature names to check): a model
    whose predict is faster than a thread hop."""
    with FeatureStore(repo) as store:
        frame = store.get_dataset("train").to_pandas()
        matrix = frame[["conv_rate", "trips_today"]].to_numpy(dtype="float64")
        model = LogisticRegression().fit(matrix, (matrix[:, 0] > 0.5).astype(int))
        options = {"feature_service": "driver_service", "training_dataset": "train"}
        return store.models.register(MODEL, model, **options).version


def model_predict_us(repo: Path, keys: list[int], reference: str) -> float:
    """The median time of the model's own predict over the online features of `keys`."""
    with FeatureStore(repo) as store:
        model = store.models.load(reference)
        response = store.get_online_features("driver_service", {"driver_id": keys}, log=False)
        times = []
        for _ in range(1000):
            started = time.perf_counter()
            model.predict_online(response)
            times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1e6


def predict_seconds(url: str, version: int) -> tuple[float, int]:
    """The server's own count of the model's predict time: (sum of seconds, count)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    labels = f'{{model="{MODEL}",version="{version}"}}'
    found = {}
    for line in text.splitlines():
        for kind in ("sum", "count"):
            if line.startswith(f"featurehub_model_predict_seconds_{kind}{labels}"):
                found[kind] = float(line.rsplit(" ", 1)[1])
    return found.get("sum", 0.0), int(found.get("count", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternations, best kept")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as workdir:
        repo = build(Path(workdir) / "repo")
        fast = register_fast(repo)
        process = start(repo, port := free_port())
        url = f"http://127.0.0.1:{port}"
        print("| model | rows | conc. | features req/s | predict req/s | ratio (>= 0.7) "
              "| ceiling | features p50/p99 ms | predict p50/p99 ms "
              "| model predict us, alone / in server | p50 bound ms | targets |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        try:
            cases = [
                ("pipeline", 1, None),
                ("pipeline", 100, None),
                ("numpy LR", 1, fast),
                ("numpy LR", 100, fast),
            ]
            for label, rows, version in cases:
                keys = [1000 + i % 3 for i in range(rows)]
                reference = f"{MODEL}@production" if version is None else f"{MODEL}:{version}"
                own = model_predict_us(repo, keys, reference)
                entities = {"driver_id": keys}
                features = orjson.dumps({"feature_service": "driver_service", "entities": entities})
                pinned = {} if version is None else {"version": version}
                predict = orjson.dumps({"entities": entities, **pinned})
                predict_url = f"{url}/v1/models/{MODEL}/predict"
                load(predict_url, predict, 8, 1)  # warm-up: loaded, and its predict timed
                for connections in (1, 8):
                    f_runs, p_runs = [], []
                    before = predict_seconds(url, version or 1)
                    for _ in range(args.rounds):
                        f_runs.append(
                            load(f"{url}/v1/features", features, connections, args.seconds)
                        )
                        p_runs.append(load(predict_url, predict, connections, args.seconds))
                    after = predict_seconds(url, version or 1)
                    served = (after[0] - before[0]) / max(1, after[1] - before[1]) * 1e6
                    f, p = max(f_runs, key=lambda r: r["rps"]), max(p_runs, key=lambda r: r["rps"])
                    ratio = p["rps"] / f["rps"]
                    # A predict endpoint costing nothing beyond the feature look-up and the
                    # model (as it predicts in the server): each request adds the model's time.
                    ceiling = 1 / (1 + served * 1e-6 * f["rps"])
                    bound = f["p50"] + own / 1000 + 0.15
                    met = [
                        "throughput " + ("met" if ratio >= 0.7 else "missed"),
                        "p50 " + ("met" if p["p50"] <= bound else "missed"),
                    ]
                    print(
                        f"| {label} | {rows} | {connections} | {f['rps']:.0f} | {p['rps']:.0f} | "
                        f"{ratio:.2f} | {ceiling:.2f} | {f['p50']:.2f}/{f['p99']:.2f} | "
                        f"{p['p50']:.2f}/{p['p99']:.2f} | {own:.0f} / {served:.0f} | "
                        f"{bound:.2f} | {', '.join(met)} |",
                        flush=True,
                    )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(f"load average at end: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
