"""Cron expressions as croniter should read them.

croniter 7 reads a range whose two ends are equal (`5-5`, `1-1/2`) as `*`: `5-5 * * * *`
would tick every minute, not at minute 5 (found by the brute-force oracle of
tests/monitoring/test_monitors.py). `for_croniter` writes such a range as its one value, so
every tick computation goes through it."""

from __future__ import annotations

import re

_SINGLE_RANGE = re.compile(r"(?<![\d-])(\d+)-\1(?:/\d+)?(?![\d-])")


def for_croniter(schedule: str) -> str:
    """`schedule` with each `a-a` (or `a-a/step`) range written as `a`; aliases unchanged."""
    return _SINGLE_RANGE.sub(r"\1", schedule)
