"""`featurehub skew --model` end to end: two versions of a model served over HTTP by the
deployable server (a canary with some pinned requests, then a shadow), and each version
checked on its own rows: the rows counted per version, and per arm, are the ones the server
logged for it, shadow rows left out (in the JSON, the terminal and the HTML page); a skew
injected into the online features of the canary's keys fails the canary's check only; a
monitor naming `@production` follows a promotion; the gate reads the candidate's own check.
"""

from __future__ import annotations

import json
import shutil
import signal
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from selenium.webdriver.common.by import By

from featurehub import FeatureStore
from featurehub.models.traffic import bucket
from featurehub.monitoring import read_serving_log
from featurehub.monitoring.monitors import run_monitor
from tests.redis_server import free_port
from tests.server.test_shutdown import start
from tests.skew.test_skew_command import (
    DATASET,
    DRIVERS,
    NOW,
    SERVICE,
    replayed,
    skew,
    write_online,
)
from tests.skew.test_skew_command import trained as trained

MODEL = "dispatch_model"
DATASET_V2 = "dispatch_training_v2"
CANARY_PERCENT = 50
PINNED = 100
"""Drivers a request pins to a version (`"version": V` in the body), the first ones."""
PYFUNC = """
import pandas as pd


class Converts:
    def predict(self, features: pd.DataFrame):
        return (features["conv_rate"].fillna(0.0) > 0.5).astype("int64").to_numpy()
"""


@pytest.fixture(scope="module")
def with_models(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained repo with two versions: 1 (production, on DATASET) and 2 (on another
    training set of the same service)."""
    repo = Path(shutil.copytree(trained, tmp_path_factory.mktemp("skew_model") / "repo"))
    (repo / "dispatch_model.py").write_text(textwrap.dedent(PYFUNC))
    with FeatureStore(repo) as store:
        entities = pd.DataFrame({"driver_id": range(DRIVERS), "event_timestamp": NOW})
        store.get_historical_features(entities, SERVICE).save(DATASET_V2)
        for dataset in (DATASET, DATASET_V2):
            store.models.register(
                MODEL,
                "dispatch_model:Converts",
                flavor="pyfunc",
                feature_service=SERVICE,
                training_dataset=dataset,
            )
        store.models.promote(MODEL, 1, "production")
    return repo


@pytest.fixture
def repo(with_models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(with_models, tmp_path / "repo"))


def canary_keys() -> list[int]:
    """The drivers a canary of CANARY_PERCENT % routes to version 2 (the documented bucket)."""
    return [d for d in range(DRIVERS) if bucket(MODEL, [d]) < CANARY_PERCENT * 100]


def serve(
    repo: Path, policy: dict[str, Any], features_too: bool = False, pinned: int | None = None
) -> None:
    """Set the traffic policy, then predict every driver once over HTTP (and, with
    `features_too`, fetch their features without a model; with `pinned`, predict the first
    PINNED drivers once more with that version); a graceful stop commits the log."""
    with FeatureStore(repo) as store:
        store.models.traffic(MODEL, **policy)
    process = start(repo, port := free_port())
    try:
        for first in range(0, DRIVERS, 100):
            keys = {"driver_id": [*range(first, first + 100)]}
            url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict"
            answer = httpx.post(url, json={"entities": keys}, timeout=30)
            assert answer.status_code == 200, answer.text
            if features_too:
                body = {"feature_service": SERVICE, "entities": keys}
                url = f"http://127.0.0.1:{port}/v1/features"
                assert httpx.post(url, json=body, timeout=30).status_code == 200
        if pinned is not None:
            body = {"entities": {"driver_id": [*range(PINNED)]}, "version": pinned}
            url = f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict"
            answer = httpx.post(url, json=body, timeout=30)
            assert answer.status_code == 200 and set(answer.json()["arms"]) == {"pinned"}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in (0, -signal.SIGTERM)


def logged(repo: Path) -> pa.Table:
    """The server's log: model, version and arm of every row it wrote."""
    with FeatureStore(repo) as store:
        root = store.config.serving_log_root
    return read_serving_log(root).to_arrow_table().select(["model", "model_version", "arm"])


def rows_of(log: pa.Table, version: int, *, shadow: bool = False) -> int:
    is_version = pc.and_(
        pc.equal(log["model"], MODEL), pc.equal(log["model_version"], str(version))
    )
    is_shadow = pc.fill_null(pc.equal(log["arm"], "shadow"), False)
    return pc.sum(pc.and_(is_version, is_shadow if shadow else pc.invert(is_shadow))).as_py() or 0


def arms_of(log: pa.Table, version: int) -> dict[str, int]:
    """The oracle of `rows_by_arm`: the version's rows in the log counted per arm, one by one."""
    counts: dict[str, int] = {}
    for row in log.to_pylist():
        if (row["model"], row["model_version"]) == (MODEL, str(version)):
            counts[row["arm"]] = counts.get(row["arm"], 0) + 1
    counts.pop("shadow", None)
    return counts


def check_model(
    repo: Path, reference: str, window: tuple[datetime, datetime], *extra: str
) -> tuple[int, dict[str, Any]]:
    began, ended = window
    code, out, err = skew(
        repo, "--model", reference, "--start", began.isoformat(), "--end", ended.isoformat(),
        "--json", *extra,
    )  # fmt: skip
    assert code in (0, 1), err
    return code, json.loads(out)


def test_each_version_is_checked_on_the_rows_it_answered(repo: Path, browser: Any) -> None:
    began = datetime.now(timezone.utc)
    serve(repo, {"canary": f"2:{CANARY_PERCENT}"}, features_too=True, pinned=1)
    serve(repo, {"shadow": 2})  # version 2 predicts every row again, unseen
    window = (began, datetime.now(timezone.utc))
    log = logged(repo)
    canary = len(canary_keys())
    assert 0 < canary < DRIVERS
    assert rows_of(log, 2) == canary and rows_of(log, 2, shadow=True) == DRIVERS
    assert rows_of(log, 1) == 2 * DRIVERS - canary + PINNED

    code, v2 = check_model(repo, f"{MODEL}:2", window)
    assert code == 0, v2
    assert v2["model"] == {
        "name": MODEL,
        "version": 2,
        "reference": f"{MODEL}:2",
        "feature_service": SERVICE,
        "training_dataset": DATASET_V2,
    }
    assert v2["feature_service"] == SERVICE
    assert v2["replay"]["rows"] == rows_of(log, 2)  # the shadow's rows are not its answers
    assert v2["rows_by_arm"] == arms_of(log, 2) == {"canary": canary}  # shadow not counted
    assert all(f["rows_compared"] == canary for f in replayed(v2).values())
    assert v2["distribution"]["dataset"] == DATASET_V2  # its own training set, by default
    assert v2["distribution"]["served_rows"] == canary

    code, v1 = check_model(repo, f"models:/{MODEL}@production", window)
    assert code == 0, v1
    assert v1["model"]["version"] == 1 and v1["model"]["reference"] == f"models:/{MODEL}@production"
    assert v1["replay"]["rows"] == rows_of(log, 1)
    assert v1["distribution"]["dataset"] == DATASET
    production = 2 * DRIVERS - canary  # the canary's other half, then every row of the shadow's
    assert v1["rows_by_arm"] == arms_of(log, 1) == {"production": production, "pinned": PINNED}
    assert list(v1["rows_by_arm"]) == ["production", "pinned"]  # most first
    assert sum(v1["rows_by_arm"].values()) == v1["replay"]["rows"]

    # The service's own check still reads every row but the shadow's: predictions and the
    # feature requests.
    began_, ended_ = window
    code, out, err = skew(
        repo, SERVICE, "--start", began_.isoformat(), "--end", ended_.isoformat(), "--json"
    )
    assert code == 0, err
    service = json.loads(out)
    assert service["model"] is None and service["replay"]["rows"] == 3 * DRIVERS + PINNED
    assert service["rows_by_arm"] is None

    code, out, err = skew(repo, "history", SERVICE, "--json")
    assert code == 0, err
    history = json.loads(out)
    assert [(c["model"], c["model_version"], c["dataset"]) for c in history] == [
        (None, None, None),
        (MODEL, 1, DATASET),
        (MODEL, 2, DATASET_V2),
    ]
    code, out, err = skew(repo, "history", "--model", f"{MODEL}:2", "--json")
    assert code == 0, err
    assert [c["rows_served"] for c in json.loads(out)] == [canary]
    code, out, _ = skew(repo, "history", SERVICE)
    assert f"{MODEL}:2" in out and "all" in out  # whose rows each check read

    html = repo / "v2.html"
    code, _, err = skew(
        repo, "--model", f"{MODEL}:2", "--start", began_.isoformat(), "--end",
        ended_.isoformat(), "--html", str(html),
    )  # fmt: skip
    assert code == 0, err
    assert f"{MODEL} version 2" in html.read_text()
    browser.get(html.as_uri())
    assert browser.find_element(By.ID, "rows-by-arm").text == f"canary {canary:,}"

    # The terminal says it under the replay table's header; a sample thins the replay, not
    # the counts, which are of every row the version answered in the window.
    code, out, err = skew(
        repo, "--model", f"{MODEL}:1", "--start", began_.isoformat(), "--end",
        ended_.isoformat(),
    )  # fmt: skip
    assert code == 0, err
    assert f"rows by arm: production {production:,}, pinned {PINNED:,}" in " ".join(out.split())
    code, sampled = check_model(repo, f"{MODEL}:1", window, "--sample", "0.5")
    assert code == 0, sampled
    assert 0 < sampled["replay"]["rows"] < v1["replay"]["rows"]
    assert sampled["rows_by_arm"] == v1["rows_by_arm"]
    code, out, err = skew(
        repo, "--model", f"{MODEL}:1", "--start", began_.isoformat(), "--end",
        ended_.isoformat(), "--sample", "0.5", "--html", str(html),
    )  # fmt: skip
    assert code == 0, err
    assert "not only the sample" in " ".join(out.split())
    browser.get(html.as_uri())
    shown = browser.find_element(By.ID, "rows-by-arm").text
    assert shown.startswith(f"production {production:,}, pinned {PINNED:,}")
    assert "not only the sample" in shown

    # A check of the service counts no arm (JSON above, the terminal here).
    code, out, err = skew(repo, SERVICE, "--start", began_.isoformat(), "--end", ended_.isoformat())
    assert code == 0, err
    assert "rows by arm" not in out


def test_a_skew_in_the_canarys_features_fails_the_canarys_check_only(repo: Path) -> None:
    """The online store answers the canary's keys with a wrong conv_rate (a write bug) under
    the same event times: the canary's rows show value skew, production's rows are right."""
    wrong = set(canary_keys())

    def miswrite(rows: pa.Table) -> pa.Table:
        keys = rows["driver_id"].to_pylist()
        conv = rows["conv_rate"].to_pylist()
        shifted = [c + 1.0 if k in wrong else c for k, c in zip(keys, conv, strict=True)]
        index = rows.column_names.index("conv_rate")
        return rows.set_column(index, "conv_rate", pa.array(shifted, pa.float64()))

    write_online(repo, miswrite)
    began = datetime.now(timezone.utc)
    serve(repo, {"canary": f"2:{CANARY_PERCENT}"})
    window = (began, datetime.now(timezone.utc))

    code, v2 = check_model(repo, f"{MODEL}:2", window)
    assert code == 1 and v2["passed"] is False
    features = replayed(v2)
    assert features["conv_rate"]["causes"]["value_skew"] == len(wrong)
    assert features["conv_rate"]["passed"] is False
    assert all(features[name]["mismatches"] == 0 for name in ("trips_today", "city"))

    code, v1 = check_model(repo, f"{MODEL}@production", window)
    assert code == 0, v1
    assert all(f["mismatches"] == 0 for f in replayed(v1).values())

    # The gate of version 2 reads its own (failed) check, not production's (passed).
    with FeatureStore(repo) as store:
        gate = store.models.check_gate(f"{MODEL}:2")
    (skew_gate,) = [c for c in gate.checks if c.name == "skew check"]
    assert not skew_gate.passed
    assert f"the rows of {MODEL} version 2" in skew_gate.detail
    assert "driver_stats:conv_rate (replay): value_skew" in skew_gate.detail


def test_a_model_check_that_cannot_run_exits_2(repo: Path) -> None:
    began = datetime.now(timezone.utc)
    serve(repo, {"shadow": 2})  # version 2 answered nothing: its rows are all shadow
    window = ["--start", began.isoformat(), "--end", datetime.now(timezone.utc).isoformat()]
    cases = [
        (["--model", "nope@production", *window], "no model named 'nope'"),
        (["--model", f"{MODEL}:9", *window], f"model '{MODEL}' has no version 9"),
        (["--model", f"{MODEL}@champion", *window], "has no alias 'champion'"),
        (["--model", f"{MODEL}:1:2", *window], "is not a positive number"),
        (
            ["--model", f"{MODEL}:1", "--against", DATASET_V2, *window],
            f"was trained on dataset '{DATASET}', not '{DATASET_V2}': drop --against",
        ),
        (
            ["other_service", "--model", f"{MODEL}:1", *window],
            f"takes feature service '{SERVICE}', not 'other_service'",
        ),
        (
            ["--model", f"{MODEL}:2", *window],
            f"nothing to replay for {MODEL} version 2",
        ),
        (window, "name the feature service to check, or a model version"),
        (["history", "--model", "nope:1"], "no model named 'nope'"),
    ]
    for args, message in cases:
        code, _, err = skew(repo, *args)
        assert code == 2, (args, err)
        assert message in " ".join(err.split()), (args, err)
    # The same check with its own training set named is fine; nothing was recorded above.
    code, _, err = skew(repo, "--model", f"{MODEL}:1", "--against", DATASET, *window)
    assert code == 0, err
    with FeatureStore(repo) as store:
        assert [c.model_version for c in store.skew_checks.history(SERVICE)] == [1]


def test_a_monitor_of_production_follows_a_promotion(repo: Path) -> None:
    """`Monitor(model="NAME@production")`: each run checks the version production is then."""
    defs = (repo / "defs.py").read_text()
    defs = defs.replace(
        'dispatch = FeatureService(name="dispatch", features=[stats])',
        "from featurehub import Monitor\n"
        'dispatch = FeatureService(name="dispatch", features=[stats], monitor=Monitor('
        f'schedule="* * * * *", window=timedelta(hours=1), model="{MODEL}@production"))',
    )
    (repo / "defs.py").write_text(defs)
    serve(repo, {"canary": f"2:{CANARY_PERCENT}"})
    log = logged(repo)
    at = datetime.now(timezone.utc) + timedelta(minutes=1)
    with FeatureStore(repo) as store:
        store.apply()
        first = run_monitor(store, SERVICE, at)
        store.models.promote(MODEL, 2, "production")
        second = run_monitor(store, SERVICE, at)
        history = store.skew_checks.history(SERVICE)
    assert first.passed and second.passed
    assert first.report.model is not None and first.report.model.version == 1
    assert first.report.replay.rows == rows_of(log, 1)
    assert first.report.distribution is not None
    assert first.report.distribution.dataset == DATASET
    assert second.report.model is not None and second.report.model.version == 2
    assert second.report.replay.rows == rows_of(log, 2)
    assert second.report.distribution is not None
    assert second.report.distribution.dataset == DATASET_V2
    assert [(c.model, c.model_version) for c in history] == [(MODEL, 2), (MODEL, 1)]
