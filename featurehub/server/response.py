"""The 200 answer of POST /v1/features: one orjson call over the columnar look-up result.

Event timestamps are formatted from the online store's integer microseconds through a small
cache rather than through a datetime per value: the rows of a view share a handful of
timestamps (materialization writes whole batches), and features of one view share one list,
so a 100-entity answer formats a few strings instead of a thousand datetimes.
"""

from __future__ import annotations

from datetime import timedelta

import orjson

from featurehub.monitoring.log_format import answer_body
from featurehub.online.base import EPOCH
from featurehub.online.lookup import OnlineResponse

__all__ = ["answer_body", "event_timestamps", "timestamp_text"]

_CACHE_SIZE = 65_536
_texts: dict[int | None, str] = {}  # None is never a key: get(None) is None


def timestamp_text(micros: int) -> str:
    """ISO 8601 UTC of `micros` since the epoch, as orjson writes a datetime with OPT_UTC_Z
    (no fraction when it is zero)."""
    text = _texts.get(micros)
    if text is None:
        if len(_texts) >= _CACHE_SIZE:
            _texts.clear()
        moment = EPOCH + timedelta(microseconds=micros)
        text = _texts[micros] = orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return text


def event_timestamps(response: OnlineResponse) -> dict[str, list[str | None]]:
    """Feature -> ISO 8601 event time of each value (None without a row); features of one
    view share one list, as they share their `event_us`."""
    texts = _texts
    built: dict[int, list[str | None]] = {}
    result: dict[str, list[str | None]] = {}
    for name, micros in response.event_us.items():
        stamps = built.get(id(micros))
        if stamps is None:
            stamps = list(map(texts.get, micros))  # all cached: a C loop
            if None in stamps:  # a value without a row, or not cached yet
                stamps = [
                    None if us is None else texts.get(us) or timestamp_text(us) for us in micros
                ]
            built[id(micros)] = stamps
        result[name] = stamps
    return result
