"""materialize/k8s/cronjob.yaml: parses, is a CronJob running `featurehub schedule --once`
on a valid cron, and takes its registry URL (a password) from a Secret, not the file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

CRONJOB = Path(__file__).parents[1] / "materialize" / "k8s" / "cronjob.yaml"


def _documents() -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc}


def test_the_cronjob_runs_featurehub_schedule_once() -> None:
    cronjob = _documents()["CronJob"]
    assert cronjob["apiVersion"] == "batch/v1"
    assert croniter.is_valid(cronjob["spec"]["schedule"])
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [container] = pod["containers"]
    assert container["command"] == ["featurehub", "schedule", "--once"]
    assert pod["terminationGracePeriodSeconds"] >= 60  # SIGTERM lets a run finish


def test_the_settings_come_from_the_configmap_and_the_secret() -> None:
    documents = _documents()
    config = documents["ConfigMap"]["data"]
    assert config["FEATUREHUB_ENGINE"] == "spark"
    assert "FEATUREHUB_REGISTRY_URL" not in config  # it holds a password: the Secret's
    container = documents["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    sources = container["envFrom"]
    assert {"configMapRef": {"name": documents["ConfigMap"]["metadata"]["name"]}} in sources
    assert any("secretRef" in source for source in sources)
    written = [*config.values(), *(e.get("value", "") for e in container.get("env", []))]
    assert not [value for value in written if re.search(r"://[^/@]+:[^/@]+@", value)]
