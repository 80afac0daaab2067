"""Shared fixtures. Real services only: PostgreSQL must be reachable for its tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from featurehub import FeatureStore
from tests.redis_server import RedisServer
from tests.repos import make_repo

POSTGRES_URL = os.environ.get(
    "FEATUREHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The small driver repo with its data."""
    return make_repo(tmp_path / "repo")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped at the end of the session.

    Fails (never skips) when the server is unreachable: CI must have it.
    """
    import psycopg

    admin = POSTGRES_URL
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin} ({exc}). These tests need a real server: "
            "start one (e.g. `pg_ctlcluster 15 main start`) or point "
            "FEATUREHUB_TEST_POSTGRES_URL at one.",
            pytrace=False,
        )
    name = f"featurehub_test_{uuid.uuid4().hex[:10]}"
    connection.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A registry URL on each supported database; each test gets an empty registry."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    base = request.getfixturevalue("postgres_server")
    return _fresh_schema(base)


def _fresh_schema(base_url: str) -> str:
    """Isolate a test in its own PostgreSQL schema (cheaper than a database per test)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    return f"{base_url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def store(repo: Path) -> Iterator[FeatureStore]:
    """A FeatureStore over the small driver repo, applied."""
    with FeatureStore(repo) as applied:
        applied.apply()
        yield applied


@pytest.fixture(scope="session")
def spark_session() -> Iterator[object]:
    """The one local Spark session of the test run (local[2]), stopped at the end."""
    from featurehub.config import SparkConfig
    from featurehub.engines.spark import spark_session as start
    from featurehub.engines.spark import stop_sessions

    session = start(SparkConfig(master="local[2]"))
    yield session
    stop_sessions()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session. Fails (never skips) when none can be started."""
    try:
        server = RedisServer()
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium (selenium, Debian's chromium and chromium-driver) for the
    session, logging the console and the network so page tests can check both. Fails
    (never skips) when the browser is missing: scripts/ensure-services.sh installs it."""
    from tests.browser import start_browser

    try:
        driver = start_browser()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield driver
    driver.quit()
