"""Run materialization tasks on an engine, recording each run in the registry.

A failed view does not stop the others; the failures are raised together at the end, and
each failed run is recorded with its error, leaving that view's watermark where it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from featurehub.engines.base import Engine, MaterializationResult, MaterializationTask
from featurehub.errors import FeaturehubError
from featurehub.registry.runs import RunLog

ProgressCallback = Callable[[MaterializationTask, str], None]
"""Called with a task and "started", "done" or "failed"; the CLI draws progress from it."""


class MaterializationError(FeaturehubError):
    """Some views failed to materialize; `results` holds the ones that succeeded."""

    def __init__(self, failures: dict[str, str], results: list[MaterializationResult]) -> None:
        self.failures = failures
        self.results = results
        lines = "\n".join(f"  - {view}: {error}" for view, error in failures.items())
        super().__init__(
            f"{len(failures)} view(s) failed to materialize (their watermarks did not move; "
            f"re-run the same command after fixing the cause):\n{lines}"
        )


def run_tasks(
    engine: Engine,
    engine_name: str,
    runs: RunLog,
    tasks: Sequence[MaterializationTask],
    on_progress: ProgressCallback | None = None,
    refused: Mapping[str, FeaturehubError] | None = None,
) -> list[MaterializationResult]:
    """Run each task; a view in `refused` (a source that drifted since apply) is recorded as a
    failed run with its error and the engine never sees it."""
    refused = refused or {}
    results: list[MaterializationResult] = []
    failures: dict[str, str] = {}
    for task in tasks:
        if on_progress:
            on_progress(task, "started")
        run_id = runs.start(task.view.name, task.start, task.end, engine_name)
        try:
            if task.view.name in refused:
                raise refused[task.view.name]
            with runs.heartbeat(run_id):
                result = engine.materialize(task)
        except Exception as exc:
            message = (
                str(exc) if isinstance(exc, FeaturehubError) else f"{type(exc).__name__}: {exc}"
            )
            runs.fail(run_id, message)
            failures[task.view.name] = message
            if on_progress:
                on_progress(task, "failed")
            continue
        runs.succeed(run_id, result.rows_read, result.rows_written, result.online_rows_written)
        results.append(result)
        if on_progress:
            on_progress(task, "done")
    if failures:
        raise MaterializationError(failures, results)
    return results
