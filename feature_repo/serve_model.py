"""Serve the production trip model over HTTP for a moment: start the feature server on a free
loopback port, ask it for predictions of a few trips, print them and the server's per-model
metrics, stop it.

    python serve_model.py [--name trip_completion] [--trips 5]

This is what an application does with `POST /v1/models/{name}/predict` (docs/models.md): it
sends entity keys, the server fetches the model's feature service online and predicts.
notebooks/model_lifecycle.ipynb uses the same helpers for a canary and a rollback.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).parent
KEYS = ["driver_id", "customer_id", "pickup_zone", "dropoff_zone"]


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def feature_server(repo: Path, seconds: float = 60) -> Iterator[str]:
    """`featurehub serve` for `repo` in a process of its own on a free loopback port, ready
    (/readyz) before the block runs; its URL. SIGTERM at the end: in-flight requests finish
    and the serving log is flushed."""
    port = free_port()
    command = [sys.executable, "-m", "featurehub.cli", "-r", str(repo), "serve", "-p", str(port)]
    process = subprocess.Popen(command, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + seconds
        while not _ready(url):
            if process.poll() is not None:
                raise RuntimeError(f"the feature server exited with {process.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the feature server was not ready within {seconds:.0f} s")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def predict(url: str, model: str, keys: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    """One POST /v1/models/{model}/predict for the entity rows `keys` (columnar JSON)."""
    entities = {column: keys[column].tolist() for column in keys.columns}
    answer = httpx.post(
        f"{url}/v1/models/{model}/predict", json={"entities": entities, **extra}, timeout=30
    )
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def model_metrics(url: str, model: str) -> pd.DataFrame:
    """The server's /metrics for `model`, one row per version and arm: requests answered,
    server errors (5xx), mean latency and the mean prediction (for a classifier predicting
    0/1: the share predicted 1), read from the Prometheus text the server exposes."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    rows: dict[tuple[str, str], dict[str, float]] = {}

    def row(labels: dict[str, str]) -> dict[str, float]:
        return rows.setdefault((labels["version"], labels["arm"]), {})

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") != model or "arm" not in sample.labels:
                continue  # per version only (the model's own predict time): not a row
            figures = row(sample.labels)
            if sample.name == "featurehub_model_requests_total":
                code = int(sample.labels["code"])
                figures["requests"] = figures.get("requests", 0) + sample.value
                if code >= 500:
                    figures["errors"] = figures.get("errors", 0) + sample.value
            elif sample.name in ("featurehub_model_request_seconds_sum",):
                figures["latency_sum"] = sample.value
            elif sample.name in ("featurehub_model_request_seconds_count",):
                figures["latency_count"] = sample.value
            elif sample.name == "featurehub_model_predictions_sum":
                figures["prediction_sum"] = sample.value
            elif sample.name == "featurehub_model_predictions_count":
                figures["predictions"] = sample.value
    table = [
        {
            "version": int(version),
            "arm": arm,
            "requests": int(figures.get("requests", 0)),
            "errors": int(figures.get("errors", 0)),
            "mean_latency_ms": 1000 * figures["latency_sum"] / figures["latency_count"]
            if figures.get("latency_count")
            else None,
            "predictions": int(figures.get("predictions", 0)),
            "mean_prediction": figures["prediction_sum"] / figures["predictions"]
            if figures.get("predictions")
            else None,
        }
        for (version, arm), figures in sorted(rows.items())
    ]
    columns = ["version", "arm", "requests", "errors", "mean_latency_ms", "predictions"]
    return pd.DataFrame(table, columns=[*columns, "mean_prediction"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="trip_completion", help="The model's name.")
    parser.add_argument("--trips", type=int, default=5, help="Trips to predict, one request.")
    args = parser.parse_args()
    trips = pd.read_parquet(REPO / "data" / "trips.parquet")
    with feature_server(REPO) as url:
        print(f"feature server at {url}")
        shown = trips[KEYS].tail(args.trips)
        answer = predict(url, args.name, shown)
        print(f"{answer['model']} version {answer['version']} ({answer['arm']}) predicts:")
        print(shown.assign(prediction=answer["predictions"]).to_string(index=False))
        for start in range(0, 1_000, 100):  # ten requests of 100 trips, for the metrics
            predict(url, args.name, trips[KEYS].iloc[start : start + 100])
        print(f"\n{url}/metrics for {args.name}:")
        print(model_metrics(url, args.name).to_string(index=False))


if __name__ == "__main__":
    main()
