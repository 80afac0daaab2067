"""The SDK's side of the serving log: `get_online_features` calls logged as the server logs
its requests, so a service that embeds the SDK is checked like one that calls the server.

A call only builds its record (the server's answer body: one orjson call) and appends it to
the `ServingLog` queue; the same hand-off thread and writer process as the server's turn it
into Parquet (`source = 'sdk'`).

A writer process, not a thread in the embedding app, because of what was measured (2 shared
cores, SQLite online store, one entity, two features): converting and committing costs
~47 us of the app's GIL per logged call on a thread (in bursts, which the server found to
double its p99), against ~2 us to hand a record to the process. The process costs ~85 MB
and starts off the calling thread (the first logged call took ~1.3 ms); `close` waits for
its last commit (~0.4 s). What a call pays: ~85 us unlogged, ~100-115 us logged, the
difference being the record (~8 us: event times and JSON) and the hand-off thread's share
of the GIL.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from featurehub.config import ServingLogConfig
from featurehub.monitoring.log_format import SDK, ServedAnswer, answer_body
from featurehub.monitoring.serving_log import ServingLog, open_serving_log
from featurehub.online.lookup import OnlineResponse

_ID_PREFIX = "sdk-" + secrets.token_hex(6)
_ID_COUNTER = itertools.count()


class SdkServingLog:
    """Logs `get_online_features` answers; started when built, flushed by `close` (and at
    interpreter exit, by `ServingLog`)."""

    def __init__(
        self,
        settings: ServingLogConfig,
        repo_path: Path,
        *,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.log: ServingLog = open_serving_log(settings, repo_path, on_dropped=on_dropped)
        self.log.start()

    def record(
        self, feature_service: str | None, response: OnlineResponse, *, sample: bool
    ) -> str | None:
        """Queue `response` for the log; return its request id, or None when `sample` is on
        and the service's sample rate left it out. A full queue drops (and counts) it."""
        if sample:
            rate = self.settings.sample_rate_of(feature_service)
            if rate <= 0.0 or (rate < 1.0 and random.random() >= rate):
                return None
        request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"
        body = answer_body(request_id, feature_service, response)
        rows = len(next(iter(response.keys.values()), ()))
        self.log.log(ServedAnswer(request_id, time.time(), feature_service, rows, body, SDK))
        return request_id

    @property
    def dropped(self) -> int:
        return self.log.dropped

    @property
    def written(self) -> int:
        return self.log.written

    def close(self) -> None:
        self.log.close()
