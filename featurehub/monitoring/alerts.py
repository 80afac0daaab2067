"""Alert delivery: `AlertDispatcher.emit(event)` hands an event to every destination that
subscribes to its kind (featurehub.yaml's `monitoring.alerts`) and returns at once.

Each destination has its own bounded queue and worker thread, so a slow or dead webhook
delays only itself. A delivery is retried with exponential backoff (tenacity), each attempt
bounded by a timeout; an event is dropped, and logged, when its destination's queue is full
or its attempts are exhausted. Delivery is therefore at least once while the process lives
(docs/alerts.md). A new kind of destination is one new `Sender` class."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Protocol

from tenacity import Retrying, stop_after_attempt, wait_exponential

from featurehub.config import CONFIG_FILE, AlertsConfig
from featurehub.errors import ConfigError, FeaturehubError
from featurehub.monitoring.alert_events import AlertEvent

logger = logging.getLogger(__name__)


class AlertDeliveryError(FeaturehubError):
    """One attempt to deliver an event failed (retried until the attempts run out)."""


class Sender(Protocol):
    """Delivers one event to one destination, or raises; `name` is for the logs."""

    name: str

    def send(self, event: AlertEvent, timeout: float) -> None: ...


class WebhookSender:
    """POSTs the event JSON; any answer but 2xx is a failed attempt."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None) -> None:
        self.url = url
        self.name = f"webhook {url}"
        self._headers = {"Content-Type": "application/json", **(headers or {})}

    def send(self, event: AlertEvent, timeout: float) -> None:
        request = urllib.request.Request(
            self.url, data=event.to_json().encode(), headers=self._headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            raise AlertDeliveryError(f"{self.name} answered {exc.code}") from None
        except OSError as exc:  # refused, unreachable, timed out
            raise AlertDeliveryError(f"{self.name} unreachable: {exc}") from None
        if not 200 <= status < 300:
            raise AlertDeliveryError(f"{self.name} answered {status}")


class CommandSender:
    """Runs `argv` (no shell) with the event JSON on stdin and in FEATUREHUB_ALERT_*
    variables; a nonzero exit, or running past the timeout, is a failed attempt."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.name = f"command {self.argv[0]}"

    def send(self, event: AlertEvent, timeout: float) -> None:
        payload = event.to_json()
        env = {**os.environ, **alert_environment(event, payload)}
        try:
            done = subprocess.run(
                self.argv,
                input=payload,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AlertDeliveryError(f"{self.name} could not run: {exc}") from None
        if done.returncode != 0:
            raise AlertDeliveryError(
                f"{self.name} exited {done.returncode}: {done.stderr.strip()[-500:]}"
            )


def alert_environment(event: AlertEvent, payload: str) -> dict[str, str]:
    """The variables a command gets: the event's fields and the whole JSON."""
    fields = event.to_dict()
    return {
        "FEATUREHUB_ALERT_ID": event.id,
        "FEATUREHUB_ALERT_KIND": event.kind,
        "FEATUREHUB_ALERT_PROJECT": event.project,
        "FEATUREHUB_ALERT_SUBJECT": event.subject,
        "FEATUREHUB_ALERT_TIME": fields["time"],
        "FEATUREHUB_ALERT_SUMMARY": event.summary,
        "FEATUREHUB_ALERT_JSON": payload,
    }


class Destination:
    """A sender, the event kinds it takes, its queue and the worker thread draining it."""

    def __init__(self, sender: Sender, kinds: Sequence[str], settings: AlertsConfig) -> None:
        self.sender = sender
        self.kinds = frozenset(kinds)
        self._settings = settings
        self._queue: queue.Queue[AlertEvent | None] = queue.Queue(settings.queue_size)
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._counts_lock = threading.Lock()  # the caller and the worker both drop
        self.delivered = 0
        self.dropped = 0

    def offer(self, event: AlertEvent) -> bool:
        """Queue `event` without waiting; False (and a log line) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._count_dropped()
            logger.error(
                "alert %s (%s) dropped for %s: its queue holds %d events already",
                event.id,
                event.kind,
                self.sender.name,
                self._settings.queue_size,
            )
            return False
        return True

    def close(self, deadline: float) -> None:
        """Deliver what is queued until the monotonic `deadline`, then give up on it."""
        if self._worker is None:
            return
        with contextlib.suppress(queue.Full):  # full until the deadline: give up below
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        self._worker.join(max(0.0, deadline - time.monotonic()))
        if not self._worker.is_alive():
            self._worker = None  # a later offer starts a new one
        else:
            left = self._queue.qsize()
            logger.error(
                "%s: gave up waiting for its alerts to be delivered (%d still queued)",
                self.sender.name,
                left,
            )

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._drain, name=f"featurehub-alerts {self.sender.name}", daemon=True
                )
                self._worker.start()

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._deliver(event)

    def _deliver(self, event: AlertEvent) -> None:
        settings = self._settings
        retrying = Retrying(
            stop=stop_after_attempt(settings.attempts),
            wait=wait_exponential(
                multiplier=settings.backoff_seconds, max=settings.max_backoff_seconds
            ),
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "alert %s to %s: attempt %d failed (%s); retrying",
                event.id,
                self.sender.name,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        try:
            retrying(self.sender.send, event, settings.timeout_seconds)
        except Exception as exc:  # a dead destination must not stop the worker
            self._count_dropped()
            logger.error(
                "alert %s (%s) dropped for %s after %d attempt(s): %s",
                event.id,
                event.kind,
                self.sender.name,
                settings.attempts,
                exc,
            )
            return
        with self._counts_lock:
            self.delivered += 1

    def _count_dropped(self) -> None:
        with self._counts_lock:
            self.dropped += 1


class AlertDispatcher:
    """The one entry point: `emit(event)`; `close()` waits a bounded time for delivery."""

    def __init__(self, destinations: Sequence[Destination], settings: AlertsConfig) -> None:
        self.destinations = list(destinations)
        self._settings = settings

    @classmethod
    def from_config(
        cls, settings: AlertsConfig, env: Mapping[str, str] | None = None
    ) -> AlertDispatcher:
        """The destinations of `monitoring.alerts`, each webhook's headers read from `env`
        (default: the process environment); an unset variable is a ConfigError."""
        env = os.environ if env is None else env
        destinations = []
        for index, hook in enumerate(settings.webhooks):
            headers = {}
            for header, variable in hook.headers_from_env.items():
                if variable not in env:
                    raise ConfigError(
                        f"{CONFIG_FILE}: monitoring.alerts.webhooks.{index}.headers_from_env: "
                        f"header {header!r} reads the environment variable {variable}, which "
                        f"is not set; export {variable} (the secret stays out of the file)"
                    )
                headers[header] = env[variable]
            sender = WebhookSender(hook.url, headers)
            destinations.append(Destination(sender, hook.events, settings))
        if settings.command is not None:
            command = CommandSender(settings.command.argv)
            destinations.append(Destination(command, settings.command.events, settings))
        return cls(destinations, settings)

    def emit(self, event: AlertEvent) -> int:
        """Queue `event` for each destination that takes its kind; never waits. Returns how
        many queued it (a full queue drops it there, logged)."""
        return sum(d.offer(event) for d in self.destinations if event.kind in d.kinds)

    def close(self, timeout: float | None = None) -> None:
        """Stop the workers once what is queued is delivered, waiting at most `timeout`
        seconds in all (default: `timeout_seconds` x `attempts`); the rest is dropped."""
        settings = self._settings
        wait = settings.timeout_seconds * settings.attempts if timeout is None else timeout
        deadline = time.monotonic() + wait
        for destination in self.destinations:
            destination.close(deadline)
