"""A real headless Chromium for page tests, through selenium and Debian's chromedriver."""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

CHROMIUM = os.environ.get("FEATUREHUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FEATUREHUB_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
WINDOW = (1400, 1000)


def start_browser() -> Any:
    """A headless Chromium with its console (`get_log("browser")`) and network
    (`get_log("performance")`) logged. RuntimeError, naming the packages, without one."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        raise RuntimeError(
            f"no {' nor '.join(missing)}: the page tests need a real headless browser. Install "
            "Debian's chromium and chromium-driver (scripts/ensure-services.sh does), or set "
            "FEATUREHUB_TEST_CHROMIUM and FEATUREHUB_TEST_CHROMEDRIVER."
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as exc:
        raise RuntimeError(f"headless Chromium did not start: {exc.msg}") from exc


def console_errors(driver: Any) -> list[dict[str, Any]]:
    """The console's entries of level SEVERE since the last call."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page requested since the last call (Chromium's network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def full_page_screenshot(driver: Any, path: str) -> None:
    """The whole page in one PNG: the window grown to the page's height, then restored."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(height, WINDOW[1]))
    try:
        driver.save_screenshot(path)
    finally:
        driver.set_window_size(*WINDOW)
