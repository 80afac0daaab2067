from pathlib import Path

import pytest

from featurehub.config import ONLINE_STORE_SCHEMES, load_config
from featurehub.errors import ConfigError
from featurehub.online.factory import STORES


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "featurehub.yaml").write_text(text)
    return tmp_path


def test_defaults_are_embedded_and_repo_relative(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "project: demo\n"), env={})
    assert config.registry_url == f"sqlite:///{tmp_path.resolve() / 'data/registry.db'}"
    assert config.online_store_url == f"sqlite:///{tmp_path.resolve() / 'data/online.db'}"
    assert config.offline_root == tmp_path.resolve() / "data/offline"
    assert config.engine.type == "local"
    assert config.scheduler.max_parallel == 4  # as docs/scheduler.md says


def test_shorthands_and_sections(tmp_path: Path) -> None:
    repo = write(
        tmp_path,
        "project: demo\nregistry: postgresql://u@db/reg\nonline_store: redis://r:6379/1\n"
        "engine: spark\nspark:\n  master: spark://m:7077\n  conf:\n    spark.executor.memory: 2g\n",
    )
    config = load_config(repo, env={})
    assert config.registry_url == "postgresql://u@db/reg"
    assert config.online_store_url == "redis://r:6379/1"
    assert config.engine.type == "spark"
    assert config.spark.master == "spark://m:7077"
    assert config.spark.conf == {"spark.executor.memory": "2g"}


def test_environment_overrides_every_store(tmp_path: Path) -> None:
    env = {
        "FEATUREHUB_REGISTRY_URL": "postgresql://prod/reg",
        "FEATUREHUB_OFFLINE_ROOT": "/mnt/offline",
        "FEATUREHUB_ONLINE_STORE_URL": "redis://cache:6379/0",
        "FEATUREHUB_ENGINE": "spark",
        "FEATUREHUB_SPARK_MASTER": "spark://cluster:7077",
    }
    config = load_config(write(tmp_path, "project: demo\n"), env=env)
    assert config.registry_url == "postgresql://prod/reg"
    assert config.offline_root == Path("/mnt/offline")
    assert config.online_store_url == "redis://cache:6379/0"
    assert config.engine.type == "spark"
    assert config.spark.master == "spark://cluster:7077"


def test_variables_in_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FH_TEST_HOST", "redis.internal")
    repo = write(
        tmp_path,
        "project: demo\nonline_store:\n  url: redis://${FH_TEST_HOST}:${FH_TEST_PORT:-6380}/0\n",
    )
    assert load_config(repo).online_store_url == "redis://redis.internal:6380/0"


def test_missing_variable_names_it(tmp_path: Path) -> None:
    repo = write(tmp_path, "project: demo\nregistry: ${FH_TEST_UNSET_VAR}\n")
    with pytest.raises(ConfigError, match=r"registry references \$\{FH_TEST_UNSET_VAR\}"):
        load_config(repo, env={})


def test_not_a_repo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a feature repo.*featurehub init"):
        load_config(tmp_path, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("project: [\n", "not valid YAML"),
        ("- a\n", "must be a mapping"),
        ("registry: sqlite:///x.db\n", "project: Field required"),
        ("project: bad-name\n", "project: Value error"),
        ("project: p\nengine: flink\n", "engine.type"),
        ("project: p\nonline_store:\n  urll: x\n", "online_store.urll: Extra inputs"),
        ("project: p\nscheduler:\n  max_parallel: 0\n", "scheduler.max_parallel: Input"),
        ("project: p\nscheduler:\n  max_parallel: 1000\n", "scheduler.max_parallel: Input"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "project: p\nonline_store:\n  timeout_seconds: -1\n",
            "online_store.timeout_seconds: Input should be greater than 0",
        ),
        (
            "project: p\nonline_store:\n  timeout_seconds: 0\n",
            "online_store.timeout_seconds: Input should be greater than 0",
        ),
        (
            "project: p\nonline_store:\n  timeout_seconds: .nan\n",
            "online_store.timeout_seconds: Input should be a finite number",
        ),
        ("project: p\nregistry:\n  refresh_seconds: 0\n", "registry.refresh_seconds: Input"),
        ("project: p\nserver:\n  log_flush_seconds: -5\n", "server.log_flush_seconds: Input"),
    ],
)
def test_timeouts_must_be_positive(tmp_path: Path, text: str, message: str) -> None:
    repo = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{repo.resolve() / 'featurehub.yaml'}: {message}"):
        load_config(repo, env={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "project: a\nproject: b\n",
            "line 2: key 'project' is given twice in one mapping \\(first",
        ),
        (
            "project: p\nonline_store: redis://a:6379/0\nengine: local\nonline_store: sqlite:///x\n",
            "line 4: key 'online_store' is given twice in one mapping \\(first on line 2\\)",
        ),
        (
            "project: p\nonline_store:\n  url: redis://a\n  timeout_seconds: 1\n  url: redis://b\n",
            "line 5: key 'url' is given twice",
        ),
        ("project: p\nspark: {conf: {a: 1, a: 2}}\n", "line 2: key 'a' is given twice"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path: Path, text: str, message: str) -> None:
    repo = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{repo.resolve() / 'featurehub.yaml'}: {message}"):
        load_config(repo, env={})


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # `<<:` merges exist to be overridden: only a key written twice is refused
    text = "project: p\nspark:\n  <<: {master: 'local[2]'}\n  master: 'local[4]'\n"
    assert load_config(write(tmp_path, text), env={}).spark.master == "local[4]"


def test_unknown_online_store_scheme_is_refused_at_load(tmp_path: Path) -> None:
    repo = write(tmp_path, "project: p\nonline_store: memcached://cache:11211\n")
    path = repo.resolve() / "featurehub.yaml"
    with pytest.raises(
        ConfigError,
        match=f"^{path}: online_store.url: 'memcached://cache:11211' has an unknown scheme; "
        "use one of sqlite://, redis://, rediss://",
    ):
        load_config(repo, env={})
    write(tmp_path, "project: p\n")
    with pytest.raises(
        ConfigError, match=r"online_store.url \(set by FEATUREHUB_ONLINE_STORE_URL\)"
    ):
        load_config(repo, env={"FEATUREHUB_ONLINE_STORE_URL": "localhost:6379"})


def test_config_knows_the_schemes_the_factory_builds() -> None:
    assert set(ONLINE_STORE_SCHEMES) == set(STORES)
