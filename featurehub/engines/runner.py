"""Run materialization tasks on an engine, recording each run in the registry.

The protocol, per task (each step is a failpoint a test kills the process at):
1. record the run "running" (with its kind, window, as_of and the stores it targets);
2. the engine stages the offline rows (invisible) and writes the online rows (newest wins);
   "online_written"
3. the online store's marker for the view is set to this run;
4. the staged folder is sealed (flushed, moved into commits/; still invisible); "sealed"
5. one registry transaction publishes the offline commit and records the run a success.
   "published"
A run that stops before 5 published nothing offline: it is recorded failed (or, killed,
abandoned by the next reader) with what it may have left online, and its watermark did not
move, so the next run takes the same rows again. The online store may be ahead of the
offline one until then, never behind what it held, and never with rows the offline store
will not get.

A failed view does not stop the others; the failures are raised together at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import sqlalchemy as sa

from featurehub import failpoints
from featurehub.engines.base import Engine, MaterializationResult, MaterializationTask, StagedRun
from featurehub.errors import FeaturehubError
from featurehub.offline.parquet import ParquetOfflineStore
from featurehub.online.base import OnlineStore
from featurehub.registry.runs import RunLog, RunNotRunning, not_published

ProgressCallback = Callable[[MaterializationTask, str], None]
"""Called with a task and "started", "done" or "failed"; the CLI draws progress from it."""

Fence = Callable[[str], Callable[[sa.Connection], None]]
"""Given a view, a check run in the transaction that publishes its run (raises to refuse)."""


class MaterializationError(FeaturehubError):
    """Some views failed to materialize; `results` holds the ones that succeeded."""

    def __init__(self, failures: dict[str, str], results: list[MaterializationResult]) -> None:
        self.failures = failures
        self.results = results
        lines = "\n".join(f"  - {view}: {error}" for view, error in failures.items())
        super().__init__(
            f"{len(failures)} view(s) failed to materialize (nothing of them was published "
            f"offline and their watermarks did not move; re-run the same command after fixing "
            f"the cause):\n{lines}"
        )


def targets(task: MaterializationTask) -> str:
    """The stores a task writes, as runs record them."""
    stores = [name for name, on in (("offline", task.offline), ("online", task.online)) if on]
    return "+".join(stores)


def run_tasks(
    engine: Engine,
    engine_name: str,
    runs: RunLog,
    offline: ParquetOfflineStore,
    online: OnlineStore | None,
    tasks: Sequence[MaterializationTask],
    on_progress: ProgressCallback | None = None,
    refused: Mapping[str, FeaturehubError] | None = None,
    fence: Fence | None = None,
) -> list[MaterializationResult]:
    """Run each task; a view in `refused` (a source that drifted since apply) is recorded as a
    failed run with its error and the engine never sees it. `fence(view)`, when given, is
    checked in the transaction that records a run a success (its view's lease still held)."""
    refused = refused or {}
    results: list[MaterializationResult] = []
    failures: dict[str, str] = {}
    for task in tasks:
        if on_progress:
            on_progress(task, "started")
        run_id = runs.start(
            task.view.name,
            task.start,
            task.end,
            engine_name,
            kind=task.kind,
            as_of=task.as_of,
            targets=targets(task),
        )
        staged: StagedRun | None = None
        try:
            if task.view.name in refused:
                raise refused[task.view.name]
            with runs.heartbeat(run_id):
                staged = engine.materialize(task)
                failpoints.reach("online_written")
                result = staged.result
                if online is not None and task.writes_online and result.online_rows_written:
                    online.write_marker(task.view.name, run_id)
                commit = None
                if staged.staging is not None and (result.rows_written or task.mode == "replace"):
                    # An empty replace still says "nothing is there"; an empty append adds
                    # nothing and is not published.
                    commit = offline.seal(
                        task.view,
                        staged.staging,
                        task.start,
                        task.end,
                        mode=task.mode,
                        as_of=task.as_of,
                    )
                    failpoints.reach("sealed")
                elif staged.staging is not None:
                    offline.discard(staged.staging)
                runs.succeed(
                    run_id,
                    result.rows_read,
                    result.rows_written,
                    result.online_rows_written,
                    rows_pending=result.rows_pending,
                    rows_skipped=result.rows_skipped,
                    commit=commit,
                    fence=None if fence is None else fence(task.view.name),
                )
                failpoints.reach("published")
        except Exception as exc:
            message = (
                str(exc) if isinstance(exc, FeaturehubError) else f"{type(exc).__name__}: {exc}"
            )
            if staged is not None and staged.staging is not None:
                offline.discard(staged.staging)  # gone already once sealed: then a no-op
            recorded = (
                message
                if isinstance(exc, RunNotRunning)  # it says so already
                else f"{message} ({not_published(targets(task))})"
            )
            runs.fail(run_id, recorded)
            failures[task.view.name] = message
            if on_progress:
                on_progress(task, "failed")
            continue
        results.append(result)
        if on_progress:
            on_progress(task, "done")
    if failures:
        raise MaterializationError(failures, results)
    return results
