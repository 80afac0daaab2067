"""The skew report on the real path: materialize, serve with the SDK's serving log, inject a
value skew, staleness and a distribution shift, check, write the HTML, and open it in a real
headless Chromium (the session's `browser`): its charts drawn, its summary, no console error,
no request leaving the file."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.offline.base import offline_schema
from featurehub.skew.check import SkewReport
from featurehub.skew.distribution import OTHER, CategoryShares, FeatureDrift
from featurehub.skew.distribution_check import DistributionResult
from featurehub.skew.histograms import Buckets, Timeline
from featurehub.skew.replay_result import CAUSES, FeatureReplay, MismatchExample, ReplayResult
from featurehub.skew.report import ReportError
from tests.browser import console_errors, full_page_screenshot, requested_urls
from tests.repos import make_repo
from tests.skew.test_distribution_check import DEFS, DRIVERS, serve, source

SKEWED = 10  # drivers whose online conv_rate is written wrong (value skew)
STALE = 100  # drivers with a newer offline row than online (materialization stopped)
FEATURES = ("driver_stats:city", "driver_stats:conv_rate", "driver_stats:active")
"""Failing first, then by name: city moved in distribution, conv_rate in both checks."""
CHARTS = {"driver_stats:conv_rate": 3, "driver_stats:city": 2, "driver_stats:active": 2}
"""Distribution and timeline each; staleness where there are stale rows."""


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SkewReport]:
    """A repo whose service served shifted, partly stale and partly wrong values, and the
    check of that window against the training set saved before the shift."""
    now = datetime.now(timezone.utc)
    root = tmp_path_factory.mktemp("report")
    repo = make_repo(
        root / "repo",
        files={"defs.py": DEFS},
        data={"drivers": source(now - timedelta(hours=3), 0.0, seed=1)},
    )
    with (repo / "featurehub.yaml").open("a") as config:
        config.write("monitoring:\n  min_rows: 200\n")
    data = repo / "data" / "drivers.parquet"
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental()
        entities = pd.DataFrame({"driver_id": range(DRIVERS), "event_timestamp": now})
        store.get_historical_features(entities, "dispatch").save("dispatch_training")
        # upstream shifts after training: conversion up, cities renamed
        shifted = source(now - timedelta(hours=2), 0.3, seed=2)
        pq.write_table(pa.concat_tables([pq.read_table(data), shifted]), data)
        store.materialize(now - timedelta(days=1), datetime.now(timezone.utc))
        # an online value written differently from offline, same event time
        view = store.get_feature_view("driver_stats")
        wrong = shifted.slice(0, SKEWED).set_column(2, "conv_rate", pa.array([9.5] * SKEWED))
        wrong = wrong.append_column("created_timestamp", wrong["event_timestamp"])
        store.online_store.write(view, wrong.select(offline_schema(view).names))
        # newer rows reach offline only: the online store serves the older ones
        later = source(now - timedelta(minutes=90), 0.3, seed=3).slice(SKEWED, STALE)
        pq.write_table(pa.concat_tables([pq.read_table(data), later]), data)
        store.materialize(now - timedelta(days=1), datetime.now(timezone.utc), online=False)
        start = datetime.now(timezone.utc) - timedelta(minutes=1)
        serve(store)
    with FeatureStore(repo) as store:  # the first store's log is committed (closed)
        report = store.check_skew(
            "dispatch",
            against="dispatch_training",
            start=start,
            end=datetime.now(timezone.utc) + timedelta(minutes=1),
        )
    return repo, report


def test_the_check_keeps_what_the_report_draws(checked: tuple[Path, SkewReport]) -> None:
    _, report = checked
    assert not report.passed
    conv = report.replay.feature("conv_rate")
    assert conv.causes["value_skew"] == SKEWED and conv.causes["stale"] == STALE
    assert conv.timeline is not None and 24 < len(conv.timeline.rows) <= 60
    assert sum(conv.timeline.rows) == conv.rows_compared == DRIVERS
    assert {c: sum(v) for c, v in conv.timeline.causes.items()} == conv.causes
    assert conv.lag_histogram is not None and sum(conv.lag_histogram.counts) == STALE
    assert conv.lag_histogram.edges_seconds[0] <= 1800 <= conv.lag_histogram.edges_seconds[-1]
    assert report.distribution is not None
    drift = {d.feature: d for d in report.distribution.features}
    assert drift["conv_rate"].bins is not None and drift["conv_rate"].status == "fail"
    assert sum(drift["conv_rate"].bins.served_share) == pytest.approx(1.0)
    cities = drift["city"].category_shares
    assert cities is not None and cities.values[-1] == OTHER
    assert cities.served_share[-1] == pytest.approx(2 / 3, abs=0.01)  # "west" is new
    as_json = json.loads(json.dumps(report.to_dict()))
    replayed = as_json["replay"]["features"][0]
    assert set(replayed["timeline"]) == {"start", "bucket_seconds", "rows", "causes"}
    numbers = next(f for f in as_json["distribution"]["features"] if f["feature"] == "conv_rate")
    assert set(numbers["bins"]) == {"edges", "training_share", "served_share"}
    assert "bins" not in report.distribution.to_pandas().columns  # left to to_dict


def test_the_report_renders_its_charts_in_a_real_browser(
    checked: tuple[Path, SkewReport], browser: Any, tmp_path: Path
) -> None:
    repo, report = checked
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        app,
        [
            *("-r", str(repo), "skew", "dispatch", "--against", "dispatch_training"),
            *("--start", report.start.isoformat(), "--end", report.end.isoformat()),
            *("--html", str(page), "--json"),
        ],
    )
    assert result.exit_code == 1, result.output
    assert f"report written to {page}" in result.stderr
    assert json.loads(result.stdout)["passed"] is False  # stdout stays JSON
    console_errors(browser), requested_urls(browser)  # forget what earlier pages logged
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda driver: (
            len(driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg"))
            >= sum(CHARTS.values())
        )
    )
    sections = browser.find_elements(By.CSS_SELECTOR, "section.feature")
    assert [s.get_attribute("data-feature") for s in sections] == list(FEATURES)
    assert [s.get_attribute("data-status") for s in sections] == ["fail", "fail", "pass"]
    for section in sections:
        plots = section.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        name = section.get_attribute("data-feature")
        assert len(plots) == CHARTS[name], name
        for plot in plots:
            assert plot.find_elements(By.CSS_SELECTOR, "svg.main-svg"), name
            assert plot.find_element(By.CSS_SELECTOR, ".gtitle").text, name
        distribution = plots[0]  # training and served bars drawn
        assert len(distribution.find_elements(By.CSS_SELECTOR, "g.barlayer g.point")) >= 4
    summary = browser.find_element(By.ID, "summary").text
    for text in (
        "Skew check: dispatch",
        "FAILED",
        "dispatch_training",
        f"{DRIVERS:,} logged rows",
        "value skew 10",
        "stale (materialization lag) 100",
    ):
        assert text in summary, (text, summary)
    failing = browser.find_element(By.XPATH, "//dt[text()='Failing features']/following::dd[1]")
    assert failing.text == "driver_stats:city, driver_stats:conv_rate"
    assert report.rows_by_arm is None  # a service's check: no arms (a model's: test_skew_model)
    assert browser.find_elements(By.ID, "rows-by-arm") == []
    conv = browser.find_element(By.ID, "feature-driver-stats-conv-rate")
    assert re.search(r"Mismatches by cause, per \d+ s of serving", conv.text)
    assert "Staleness of the stale rows" in conv.text
    assert "bin (training deciles, as for PSI)" in conv.text
    assert len(conv.find_elements(By.CSS_SELECTOR, "table.examples tbody tr")) == 5
    assert console_errors(browser) == []
    assert [url for url in requested_urls(browser) if not url.startswith(("file:", "data:"))] == []
    full_page_screenshot(browser, str(tmp_path / "report.png"))  # to look at: /tmp/pytest-*
    assert (tmp_path / "report.png").stat().st_size > 10_000


class _References(HTMLParser):
    """Every URL the page's tags would load (script contents are not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.urls.append(f"{tag} {name}={value}")


def test_the_file_opens_offline(checked: tuple[Path, SkewReport], tmp_path: Path) -> None:
    _, report = checked
    page = report.to_html(tmp_path / "report.html")
    text = page.read_text()
    references = _References()
    references.feed(text)
    assert references.urls == []  # no script, style sheet, image or link to fetch
    styles = re.findall(r"<style>(.*?)</style>", text, re.S)
    assert styles and not any(re.search(r"url\(|@import", style) for style in styles)
    charts = sum(CHARTS.values())
    assert text.count("Plotly.newPlot") == charts and text.count("<script") == charts + 1
    assert report.html() != "" and report._repr_html_().startswith("<iframe srcdoc=")


def test_every_string_from_the_data_is_escaped(browser: Any, tmp_path: Path) -> None:
    """A served category and an entity key that look like markup are shown as written."""
    evil = "<img src=x onerror=alert(1)><b>bold</b>"
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    end = start + timedelta(hours=1)
    buckets = Buckets.of(start, end)
    counts = [0] * buckets.count
    timeline = Timeline(
        start, buckets.width_us / 1e6, [1, *counts[1:]], {c: counts for c in CAUSES}
    )
    example = MismatchExample(
        {"zone": evil}, start, "value_skew", "present", evil, "a", start, start
    )
    replayed = FeatureReplay(
        "zones", "label", "String", 1, 1, 0, 0, {**dict.fromkeys(CAUSES, 0), "value_skew": 1},
        None, None, None, (example,), timeline,
    )  # fmt: skip
    drift = FeatureDrift(
        "label", "category", "pass", (), 10, 10, 0.0, 0.0,
        category_shares=CategoryShares([evil, OTHER], [1.0, 0.0], [0.5, 0.5]),
    )  # fmt: skip
    report = SkewReport(
        "svc",
        start,
        end,
        ReplayResult("svc", start, end, None, 1e-9, 0.01, 1, (replayed,)),
        DistributionResult("svc", "train", start, end, 10, [drift]),
        rows_by_arm={evil: 1},
    )
    page = report.to_html(tmp_path / "escaped.html")
    assert evil not in page.read_text().split("</head>", 1)[1]
    console_errors(browser)
    browser.get(page.as_uri())
    WebDriverWait(browser, 30).until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".main-svg")) >= 2
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "img, b")  # no markup got through
    assert evil in browser.find_element(By.CSS_SELECTOR, "table.examples").text
    assert browser.find_element(By.ID, "rows-by-arm").text == f"{evil} 1"
    ticks = browser.find_elements(By.CSS_SELECTOR, ".xtick text")
    assert evil in [tick.text for tick in ticks]
    assert console_errors(browser) == []
    with pytest.raises(ReportError, match="does not exist"):
        report.to_html(tmp_path / "missing" / "report.html")
    with pytest.raises(ReportError, match="it is a folder"):
        report.to_html(tmp_path)


def test_a_report_path_that_cannot_be_written_says_so(
    checked: tuple[Path, SkewReport], tmp_path: Path
) -> None:
    repo, report = checked
    window = ("--start", report.start.isoformat(), "--end", report.end.isoformat())
    for path, message in ((tmp_path / "nope" / "r.html", "does not exist"), (tmp_path, "folder")):
        result = CliRunner().invoke(
            app, ["-r", str(repo), "skew", "dispatch", *window, "--html", str(path)]
        )
        assert result.exit_code == 2, result.output
        assert "error: cannot write the report to" in result.stderr and message in result.stderr
