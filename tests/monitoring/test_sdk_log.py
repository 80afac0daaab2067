"""The SDK's serving log: `get_online_features(log=True)` (or `serving_log: {sdk: true}`)
writes the records the feature server writes, through the same writer, and loses none."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub import FeatureStore
from featurehub.config import RepoConfig, ServerConfig, ServingLogConfig
from featurehub.monitoring import LogWriter
from featurehub.monitoring.log_reader import read_serving_log
from featurehub.monitoring.sdk_log import answer_body
from featurehub.monitoring.serving_log import ServingLogError
from featurehub.online.lookup import OnlineResponse
from featurehub.server import create_app
from featurehub.server import response as server_response
from tests.monitoring.log_rows import record
from tests.redis_server import free_port
from tests.server.conftest import materialize
from tests.server.test_serving_log import served
from tests.server.test_shutdown import start

ENTITIES = [{"driver_id": 1001}, {"driver_id": 1003}, {"driver_id": 9}]  # present, expired, none


@pytest.fixture(scope="module")
def repo_config(tmp_path_factory: pytest.TempPathFactory) -> RepoConfig:
    return materialize(tmp_path_factory.mktemp("sdk_log") / "repo", project="sdk_log")


def with_log(config: RepoConfig, root: Path, **settings: Any) -> RepoConfig:
    """`config` logging under `root`, with `serving_log:` settings."""
    values: dict[str, Any] = {"root": str(root), "flush_seconds": 0.2, **settings}
    return config.model_copy(update={"serving_log": ServingLogConfig(**values)})


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    return tmp_path / "serving_logs"


@pytest.fixture
def store(repo_config: RepoConfig, log_root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(config=with_log(repo_config, log_root)) as feature_store:
        yield feature_store


def logged(root: Path) -> list[dict[str, Any]]:
    relation = read_serving_log(root).order("served_at, request_id, row")
    return relation.arrow().read_all().to_pylist()


def as_returned(response: OnlineResponse) -> list[dict[str, Any]]:
    """The rows a call returned, in the log's terms: keys, values, statuses, times."""
    rows = []
    stamps = response.event_timestamps
    for index in range(len(next(iter(response.keys.values())))):
        rows.append(
            {
                "entity_keys": {name: column[index] for name, column in response.keys.items()},
                "feature_values": {name: v[index] for name, v in response.values.items()},
                "statuses": {name: s[index] for name, s in response.statuses.items()},
                "event_timestamps": {name: t[index] for name, t in stamps.items()},
            }
        )
    return rows


def decoded(row: dict[str, Any]) -> dict[str, Any]:
    return record(row)


def test_log_true_writes_what_the_call_returned(store: FeatureStore, log_root: Path) -> None:
    by_service = store.get_online_features("driver_service", ENTITIES, log=True)
    ad_hoc = store.get_online_features(["zone_stats:label"], [{"zone": "a"}], log=True)
    unlogged = store.get_online_features("driver_service", ENTITIES)  # the switch is off
    store.close()
    rows = logged(log_root)
    assert len(rows) == len(ENTITIES) + 1
    service_rows = [r for r in rows if r["feature_service"] == "driver_service"]
    assert [decoded(r) for r in service_rows] == as_returned(by_service)
    assert [r["row"] for r in service_rows] == [0, 1, 2]
    assert [decoded(r) for r in rows if r["feature_service"] == "ad-hoc"] == as_returned(ad_hoc)
    assert {r["source"] for r in rows} == {"sdk"}
    assert {r["model_version"] for r in rows} == {None}
    assert len({r["request_id"] for r in rows}) == 2
    assert set(as_returned(unlogged)[1]["statuses"].values()) == {"expired"}
    assert not list(log_root.rglob("*.tmp"))


def test_the_config_switch_logs_sampled_calls(repo_config: RepoConfig, log_root: Path) -> None:
    config = with_log(repo_config, log_root, sdk=True, sample_rates={"dispatch": 0.0})
    with FeatureStore(config=config) as store:
        returned = store.get_online_features("driver_service", ENTITIES)  # logged
        store.get_online_features("driver_service", ENTITIES, log=False)  # not: asked so
        store.get_online_features("dispatch", [{"driver_id": 1001, "zone": "a"}])  # sampled out
        store.get_online_features("dispatch", [{"driver_id": 1001, "zone": "b"}], log=True)
    rows = logged(log_root)
    assert [decoded(r) for r in rows if r["feature_service"] == "driver_service"] == (
        as_returned(returned)
    )
    dispatch = [decoded(r)["entity_keys"] for r in rows if r["feature_service"] == "dispatch"]
    assert dispatch == [{"driver_id": 1001, "zone": "b"}]  # log=True logs whatever the rate


def test_server_and_sdk_log_the_same_records(repo_config: RepoConfig, tmp_path: Path) -> None:
    """The same requests through the deployable server (uvicorn on loopback) and through the
    SDK: equal records but for the request id, the time and the writer."""
    requests: list[dict[str, Any]] = [
        {"feature_service": "driver_service", "entities": {"driver_id": [1001, 1003, 9]}},
        {"feature_service": "dispatch", "entities": {"driver_id": [1002], "zone": ["b"]}},
        {
            "features": ["zone_stats:demand", "driver_stats:conv_rate"],
            "entities": {"zone": ["a", "zz"], "driver_id": [1001, 1002]},
        },
    ]
    roots = {"server": tmp_path / "server", "sdk": tmp_path / "sdk"}
    yaml_file = repo_config.config_file
    original = yaml_file.read_text()
    yaml_file.write_text(original + f"serving_log: {{root: '{roots['server']}'}}\n")
    try:
        process = start(repo_config.repo_path, port := free_port())
        try:
            for request in requests:
                answer = httpx.post(f"http://127.0.0.1:{port}/v1/features", json=request)
                assert answer.status_code == 200
        finally:
            process.send_signal(signal.SIGTERM)  # a graceful stop commits the log
            assert process.wait(60) in (0, -signal.SIGTERM)  # as tests/server/test_shutdown
    finally:
        yaml_file.write_text(original)
    with FeatureStore(config=with_log(repo_config, roots["sdk"])) as sdk_store:
        for request in requests:
            entities = request["entities"]
            columns = zip(*entities.values(), strict=True)
            rows = [dict(zip(entities, values, strict=True)) for values in columns]
            sdk_store.get_online_features(
                request.get("feature_service") or request["features"], rows, log=True
            )
    records = {}
    for source, root in roots.items():
        rows = logged(root)
        assert {row.pop("source") for row in rows} == {source}
        for row in rows:
            for varying in ("request_id", "served_at", "date"):
                del row[varying]
        records[source] = sorted(rows, key=lambda r: (r["feature_service"], str(record(r))))
    assert len(records["sdk"]) == 6
    assert records["sdk"] == records["server"]


def test_close_and_the_context_manager_lose_nothing(
    repo_config: RepoConfig, log_root: Path
) -> None:
    config = with_log(repo_config, log_root, flush_seconds=3600, batch_rows=1_000_000)
    store = FeatureStore(config=config)
    for _ in range(300):
        store.get_online_features("driver_service", ENTITIES, log=True)
    store.close()
    assert len(logged(log_root)) == 300 * 3
    with FeatureStore(config=config) as store:
        for _ in range(200):
            store.get_online_features(["zone_stats:label"], [{"zone": "a"}], log=True)
    rows = logged(log_root)
    assert len(rows) == 300 * 3 + 200
    assert len({r["request_id"] for r in rows}) == 500


EXIT_WITHOUT_CLOSE = """
import sys
from featurehub import FeatureStore
from featurehub.config import ServingLogConfig, load_config

config = load_config(sys.argv[1])
settings = ServingLogConfig(root=sys.argv[2], flush_seconds=3600, batch_rows=1_000_000)
store = FeatureStore(config=config.model_copy(update={"serving_log": settings}))
for _ in range(int(sys.argv[3])):
    store.get_online_features("driver_service", [{"driver_id": 1001}, {"driver_id": 9}], log=True)
# no close(): the interpreter's exit must commit what was logged
"""


def test_process_exit_without_close_loses_nothing(repo_config: RepoConfig, log_root: Path) -> None:
    script = textwrap.dedent(EXIT_WITHOUT_CLOSE)
    arguments = [str(repo_config.repo_path), str(log_root), "250"]
    subprocess.run(
        [sys.executable, "-c", script, *arguments], check=True, timeout=120, cwd=Path.cwd()
    )
    assert len(logged(log_root)) == 250 * 2


def test_a_log_root_that_cannot_be_written_fails_at_the_first_logged_call(
    repo_config: RepoConfig, tmp_path: Path
) -> None:
    (tmp_path / "a_file").write_text("")
    config = with_log(repo_config, tmp_path / "a_file" / "logs")
    with FeatureStore(config=config) as store:
        store.get_online_features("driver_service", ENTITIES)  # not logged: no error
        with pytest.raises(ServingLogError) as raised:
            store.get_online_features("driver_service", ENTITIES, log=True)
        message = str(raised.value)
        assert "a_file" in message and "serving_log.root" in message and "\n" not in message
        with pytest.raises(ServingLogError, match="serving_log.root"):
            create_app(store, ServerConfig())  # the server refuses to start on it too
    switched = config.model_copy(
        update={"serving_log": config.serving_log.model_copy(update={"sdk": True})}
    )
    with FeatureStore(config=switched) as store, pytest.raises(ServingLogError):
        store.get_online_features("driver_service", ENTITIES)


def test_a_full_queue_drops_and_counts(repo_config: RepoConfig, log_root: Path) -> None:
    config = with_log(repo_config, log_root, queue_size=1, flush_seconds=3600)
    calls = 200
    with FeatureStore(config=config) as store:
        for _ in range(calls):  # faster than the hand-off thread's 50 ms poll: most drop
            store.get_online_features("driver_service", ENTITIES, log=True)
        serving_log = store.serving_log
    assert serving_log.dropped > 0
    assert serving_log.dropped + serving_log.written == calls * 3
    assert len(logged(log_root)) == serving_log.written


def test_logs_without_a_source_column_read_as_the_servers(tmp_path: Path) -> None:
    """The migration path: files written before `source` existed are the server's."""
    LogWriter(tmp_path).commit([served("new", "svc", rows=1)])
    old_file = tmp_path / "feature_service=svc" / "date=2026-01-01" / "part-old.parquet"
    old_file.parent.mkdir(parents=True)
    new_file = next(tmp_path.rglob("*.parquet"))
    old = pq.read_table(new_file).drop_columns(["source"])
    pq.write_table(old.set_column(0, "request_id", pa.array(["old"])), old_file)
    assert "source" not in pq.read_schema(old_file).names
    rows = {r["request_id"]: r for r in logged(tmp_path)}
    assert rows["old"]["source"] == "server" and rows["new"]["source"] == "server"
    sdk = served("sdk", "svc", rows=1)._replace(source="sdk")
    LogWriter(tmp_path).commit([sdk])
    assert {r["request_id"]: r["source"] for r in logged(tmp_path)} == {
        "old": "server",
        "new": "server",
        "sdk": "sdk",
    }
    only_old = tmp_path / "only_old"
    (only_old / "feature_service=svc" / "date=2026-01-01").mkdir(parents=True)
    pq.write_table(old, only_old / "feature_service=svc" / "date=2026-01-01" / "part.parquet")
    assert {r["source"] for r in logged(only_old)} == {"server"}


int64s = st.integers(-(2**63), 2**63 - 1)
values = st.one_of(
    st.none(),
    int64s,
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=5),
    st.binary(max_size=5),
)


@st.composite
def responses(draw: st.DrawFn) -> OnlineResponse:
    rows = draw(st.integers(1, 4))
    micros = st.one_of(st.none(), st.integers(0, 4_102_444_800_000_000))
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, unique=True))
    stamps = draw(st.lists(micros, min_size=rows, max_size=rows))  # one view: one shared list
    return OnlineResponse(
        keys={"driver_id": draw(st.lists(int64s, min_size=rows, max_size=rows))},
        values={name: draw(st.lists(values, min_size=rows, max_size=rows)) for name in names},
        statuses={
            name: draw(
                st.lists(
                    st.sampled_from(["present", "expired", "not_found"]),
                    min_size=rows,
                    max_size=rows,
                )
            )
            for name in names
        },
        event_us=dict.fromkeys(names, stamps),
    )


@settings(max_examples=200, deadline=None)
@given(responses(), st.one_of(st.none(), st.just("svc")))
def test_the_sdk_record_is_the_servers_answer_byte_for_byte(
    response: OnlineResponse, service: str | None
) -> None:
    stamps = server_response.event_timestamps(response)
    assert answer_body("r", service, response) == server_response.answer_body(
        "r", service, response, stamps
    )
