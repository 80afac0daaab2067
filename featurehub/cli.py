"""The `featurehub` command line: typer for parsing, rich for tables. Logic lives elsewhere.

Exit codes: 0 success; 1 an error (the message says what to fix); `plan` exits 2 when there
are changes, like `terraform plan -detailed-exitcode`, so scripts can tell.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from featurehub import __version__
from featurehub.engines.base import MaterializationResult, MaterializationTask
from featurehub.engines.planning import EPOCH
from featurehub.engines.runner import MaterializationError, ProgressCallback
from featurehub.errors import FeaturehubError, NotFoundError, did_you_mean
from featurehub.feature_store import FeatureStore
from featurehub.monitoring.freshness import age_text
from featurehub.registry import Plan

if TYPE_CHECKING:
    from typer._click import Context as ClickContext  # what typer's groups are given

    from featurehub.registry.skew_checks import SkewCheck
    from featurehub.skew.check import SkewReport

app = typer.Typer(
    name="featurehub",
    help="featurehub: feature definitions in code, training/serving consistency proven.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: typer's rich help prints a `<bool>` type beside every flag, --help included.
    rich_markup_mode=None,
)
console = Console(width=None if Console().is_terminal else 120)
err_console = Console(stderr=True)

CHANGES_EXIT_CODE = 2


def _fail(message: str) -> NoReturn:
    """Print `error: message` and exit 1; the message is text, never markup (it may hold
    `[postgres]` or a path with brackets)."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _store(ctx: typer.Context) -> FeatureStore:
    try:
        return FeatureStore(ctx.obj["repo"])
    except FeaturehubError as exc:
        _fail(str(exc))


def _version(value: bool) -> None:
    if value:
        console.print(f"featurehub {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    repo: Path = typer.Option(
        Path("."), "--repo", "-r", envvar="FEATUREHUB_REPO", help="The feature repo folder."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = {"repo": repo}


def _render_plan(plan: Plan) -> None:
    if not plan.has_changes:
        console.print("No changes: the registry matches the repo.")
        return
    symbols = {"create": "[green]+[/]", "update": "[yellow]~[/]", "delete": "[red]-[/]"}
    for change in plan.changes:
        kind = change.kind.replace("_", " ")
        console.print(f"{symbols[change.action]} {change.action} {kind} [bold]{change.name}[/]")
        for field in change.fields:
            old = "(none)" if field.old is None else json.dumps(field.old, default=str)
            new = "(none)" if field.new is None else json.dumps(field.new, default=str)
            console.print(f"    {field.path}: {old} -> {new}", highlight=False)
    counts = plan.counts()
    console.print(
        f"\nPlan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['delete']} to delete."
    )
    for problem in plan.breaking:
        console.print(f"[bold red]breaking:[/] {problem}", highlight=False)


@app.command()
def plan(ctx: typer.Context) -> None:
    """Show what `apply` would change in the registry (exit code 2 when something would)."""
    store = _store(ctx)
    try:
        result = store.plan()
    except FeaturehubError as exc:
        _fail(str(exc))
    _render_plan(result)
    if result.has_changes:
        raise typer.Exit(CHANGES_EXIT_CODE)


@app.command()
def apply(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Apply changes that break consumers."),
) -> None:
    """Validate the repo against its sources, then record it in the registry atomically."""
    store = _store(ctx)
    try:
        result = store.apply(force=force)
    except FeaturehubError as exc:
        _fail(str(exc))
    _render_plan(result)
    if result.has_changes:
        console.print(f"Applied to project [bold]{store.project}[/].")


def _ttl(seconds: float | None) -> str:
    """A compact duration: 2d, 6h, 1d12h, 90s; 'never' for no TTL."""
    if seconds is None:
        return "never"
    left, parts = timedelta(seconds=seconds), []
    for unit, size in (
        ("d", timedelta(days=1)),
        ("h", timedelta(hours=1)),
        ("m", timedelta(minutes=1)),
        ("s", timedelta(seconds=1)),
    ):
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or str(timedelta(seconds=seconds))


LIST_KINDS = {"entities": "entity", "views": "feature_view", "services": "feature_service"}


@app.command("list")
def list_objects(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="entities, views or services"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List registered entities, feature views or feature services."""
    if kind not in LIST_KINDS:
        _fail(f"cannot list {kind!r}: choose one of entities, views, services")
    store = _store(ctx)
    try:
        specs = store.registry.specs(store.project).get(LIST_KINDS[kind], {})
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(list(specs.values()), indent=2, sort_keys=True))
        return
    table = Table(title=f"{kind} in project {store.project}")
    if kind == "entities":
        for column in ("name", "join keys", "types", "description"):
            table.add_column(column)
        for spec in specs.values():
            key_types = ", ".join(f"{k}: {t}" for k, t in spec["key_types"].items())
            table.add_row(
                spec["name"], ", ".join(spec["join_keys"]), key_types, spec["description"]
            )
    elif kind == "views":
        for column in ("name", "entities", "features", "ttl", "schedule", "online", "owner"):
            table.add_column(column)
        for spec in specs.values():
            table.add_row(
                spec["name"],
                ", ".join(spec["entities"]),
                str(len(spec["schema"])),
                _ttl(spec["ttl_seconds"]),
                spec["schedule"] or "",
                "yes" if spec["online"] else "no",
                spec["owner"],
            )
    else:
        for column in ("name", "features", "owner", "description"):
            table.add_column(column)
        for spec in specs.values():
            refs = [f"{p['view']}:{f}" for p in spec["features"] for f in p["features"]]
            table.add_row(spec["name"], "\n".join(refs), spec["owner"], spec["description"])
    console.print(table)


@app.command()
def describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="An entity, source, feature view or service name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Show one registered object: its definition and its version history."""
    store = _store(ctx)
    try:
        specs = store.registry.specs(store.project)
        found = [(kind, objects[name]) for kind, objects in specs.items() if name in objects]
        if not found:
            names = [n for objects in specs.values() for n in objects]
            raise NotFoundError(f"nothing named {name!r} is registered.{did_you_mean(name, names)}")
        kind, spec = found[0]
        history = store.history(kind, name)
    except FeaturehubError as exc:
        _fail(str(exc))
    versions: list[dict[str, Any]] = [
        {
            "version": h.version,
            "action": h.action,
            "applied_at": h.applied_at.isoformat(),
            "changes": h.changes,
        }
        for h in history
    ]
    if as_json:
        print(json.dumps({"kind": kind, "spec": spec, "history": versions}, indent=2, default=str))
        return
    table = Table(title=f"{kind.replace('_', ' ')} {name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in spec.items():
        table.add_row(key, _describe_value(key, value))
    console.print(table)
    for entry in versions:
        console.print(
            f"version {entry['version']}: {entry['action']} at {entry['applied_at']}"
            + (f" ({len(entry['changes'])} field(s) changed)" if entry["changes"] else "")
        )


def _describe_value(key: str, value: Any) -> str:
    if key == "ttl_seconds":
        return _ttl(value)
    if key == "schema":
        return "\n".join(f"{f['name']}: {f['dtype']}" for f in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


def _parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T12:00")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


ENGINE_OPTION = typer.Option(None, "--engine", "-e", help="local or spark (default: config).")
VIEWS_OPTION = typer.Option([], "--views", "-v", help="Only these views (repeatable).")
JSON_OPTION = typer.Option(False, "--json", help="Print a JSON summary for schedulers.")


def _window_label(task: MaterializationTask) -> str:
    """What a task takes, in words: the progress line of its view."""
    end = f"{task.end:%Y-%m-%d %H:%M}"
    if task.kind == "online_rebuild":
        return "online store rebuilt from the offline store"
    if task.start == EPOCH:
        return f"all rows visible before {end}"
    window = "arrived" if task.window == "arrival" else "events"
    return f"{window} {task.start:%Y-%m-%d %H:%M} .. {end}"


def _materialize_with_progress(
    run: Callable[[ProgressCallback | None], list[MaterializationResult]], as_json: bool
) -> None:
    """Run a materialization with a progress bar (or quietly for --json) and report it."""
    failed: MaterializationError | None = None
    if as_json:
        try:
            results = run(None)
        except MaterializationError as exc:
            failed, results = exc, exc.results
        except FeaturehubError as exc:
            _fail(str(exc))
        summary: dict[str, Any] = {
            "results": [r.to_dict() for r in results],
            "failures": failed.failures if failed else {},
        }
        print(json.dumps(summary, indent=2))
        if failed:
            raise typer.Exit(1)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        bars: dict[str, TaskID] = {}

        def on_progress(task: MaterializationTask, phase: str) -> None:
            label = f"{task.view.name} {_window_label(task)}"
            if phase == "started":
                bars[task.view.name] = progress.add_task(label, total=1)
            else:
                mark = "[green]done[/]" if phase == "done" else "[red]failed[/]"
                progress.update(bars[task.view.name], completed=1, description=f"{label} {mark}")

        try:
            results = run(on_progress)
        except MaterializationError as exc:
            failed, results = exc, exc.results
        except FeaturehubError as exc:
            _fail(str(exc))
    if not results and not failed:
        console.print("Nothing to materialize: every view is up to date.")
    for result in results:
        line = (
            f"[bold]{result.view}[/]: {result.rows_read:,} rows read, "
            f"{result.rows_written:,} offline, {result.online_rows_written:,} online"
        )
        if result.rows_pending:
            line += (
                f"; {result.rows_pending:,} not visible yet (stamped or written after "
                f"{result.as_of:%Y-%m-%d %H:%M:%S} UTC: an incremental run takes them when due)"
            )
        if result.rows_skipped:
            line += f"; [yellow]{result.rows_skipped:,} source rows have no event timestamp[/]"
        console.print(line)
    if failed:
        _fail(str(failed))


@app.command()
def materialize(
    ctx: typer.Context,
    start: str | None = typer.Argument(
        None, help="Start of event time, inclusive (ISO 8601, UTC if naive)."
    ),
    end: str | None = typer.Argument(
        None, help="End of event time, exclusive (ISO 8601, UTC if naive)."
    ),
    views: list[str] = VIEWS_OPTION,
    engine: str | None = ENGINE_OPTION,
    offline_only: bool = typer.Option(
        False, "--offline-only", help="Write the offline store only (the online store lags)."
    ),
    online_only: bool = typer.Option(
        False,
        "--online-only",
        help="Rebuild the online store from the offline store (no START END, no source read).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Backfill: feature rows with event time in [START, END) into the stores.

    Rows are taken as they are known now: rows stamped or written after now are left for
    `materialize-incremental` to take when they are due. The watermark does not move.
    """
    store = _store(ctx)
    if offline_only and online_only:
        _fail("--offline-only and --online-only exclude each other: choose one")
    if online_only:
        if start is not None:
            _fail("--online-only rebuilds from the offline store as it is: drop START and END")
        _materialize_with_progress(
            lambda cb: store.rebuild_online(views or None, on_progress=cb), as_json
        )
        return
    if start is None or end is None:
        _fail("materialize needs START and END (or --online-only); e.g. 2026-11-01 2026-12-01")
    begin, finish = _parse_time(start, "START"), _parse_time(end, "END")
    _materialize_with_progress(
        lambda cb: store.materialize(
            begin, finish, views or None, engine=engine, on_progress=cb, online=not offline_only
        ),
        as_json,
    )


@app.command("materialize-incremental")
def materialize_incremental(
    ctx: typer.Context,
    end: str | None = typer.Argument(
        None, help="Take what arrived up to END (default and at most: now; ISO 8601, UTC)."
    ),
    views: list[str] = VIEWS_OPTION,
    engine: str | None = ENGINE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Take, per view, every row that arrived since its watermark: late rows, and rows
    that became due, included (docs/offline-store.md)."""
    store = _store(ctx)
    finish = _parse_time(end, "END") if end is not None else None
    _materialize_with_progress(
        lambda cb: store.materialize_incremental(
            finish, views or None, engine=engine, on_progress=cb
        ),
        as_json,
    )


@app.command()
def schedule(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Run what is due, then exit."),
    at: str | None = typer.Option(
        None, "--at", help="With --once: what is due at this time (ISO 8601, UTC if naive)."
    ),
    engine: str | None = ENGINE_OPTION,
    health_file: Path | None = typer.Option(
        None, "--health-file", help="Rewrite this file after every pass (for a healthcheck)."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the outcomes."),
) -> None:
    """Run each view's incremental materialization on its schedule (docs/scheduler.md).

    Any number of schedulers may share a registry: a lease per view lets one run it at a
    time. SIGTERM lets the running materialization finish, then exits 0. With --once, exit
    1 when a job failed (after its retries).
    """
    import logging
    import signal

    from featurehub.scheduler.loop import Scheduler

    if at is not None and not once:
        _fail("--at sets the clock of one pass: add --once (the loop runs on the real clock)")
    moment = _parse_time(at, "--at") if at is not None else None
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("featurehub")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    store = _store(ctx)
    scheduler = Scheduler(store, engine=engine, health_file=health_file)
    previous = {
        signum: signal.signal(signum, lambda *_: scheduler.stop())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        if not once:
            scheduler.run_forever()
            return
        outcomes = scheduler.run_once(moment)
    except FeaturehubError as exc:
        _fail(str(exc))
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)
        logger.removeHandler(handler)
        store.close()
    if as_json:
        print(json.dumps([asdict(outcome) for outcome in outcomes], indent=2, default=str))
    else:
        for outcome in outcomes:
            detail = f" ({outcome.detail})" if outcome.detail else ""
            console.print(f"{outcome.job}: {outcome.status}{detail}", highlight=False)
    if any(outcome.status == "failed" for outcome in outcomes):
        raise typer.Exit(1)


def _check_view_is_known(store: FeatureStore, view: str) -> None:
    """A view that has no runs must at least be registered: a typo gets its name said back
    and the known views, not an empty table. (A deleted view's old runs are still listed.)"""
    known = sorted(store.registry.specs(store.project).get("feature_view", {}))
    if view not in known:
        listed = ", ".join(known) if known else "none yet: run `featurehub apply`"
        raise NotFoundError(
            f"no feature view named {view!r} is registered.{did_you_mean(view, known)} "
            f"Known views: {listed}"
        )


@app.command()
def runs(
    ctx: typer.Context,
    view: str | None = typer.Option(None, "--view", help="Only runs of this view."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List recent materialization runs."""
    store = _store(ctx)
    try:
        found = store.runs(view, limit)
        if view and not found:
            _check_view_is_known(store, view)
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(
            json.dumps(
                [{**asdict(r), "duration_seconds": r.duration_seconds} for r in found],
                indent=2,
                default=str,
            )
        )
        return
    table = Table(title=f"materialization runs of {store.project}")
    headers = ("id", "view", "kind", "window", "stores", "status", "rows", "seconds", "error")
    for column in headers:
        table.add_column(column)
    colors = {"success": "green", "failed": "red", "running": "yellow"}
    for run in found:
        seconds = run.duration_seconds
        table.add_row(
            str(run.id),
            run.view,
            run.kind,
            f"{run.interval_start:%Y-%m-%d %H:%M} .. {run.interval_end:%Y-%m-%d %H:%M}",
            run.targets,
            f"[{colors.get(run.status, 'white')}]{run.status}[/]",
            "" if run.rows_written is None else f"{run.rows_written:,}",
            "" if seconds is None else f"{seconds:.2f}",
            (run.error or "")[:80],
        )
    console.print(table)


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Per view: its last success, watermark, staleness against its freshness bound, last
    run, and whether the online store still holds what was written to it; failing and stale
    views first. Exit 1 when a view's last run failed, its data is stale or its online data
    is lost."""
    store = _store(ctx)
    try:
        report = store.status()
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps([asdict(v) for v in report], indent=2, default=str))
    else:
        table = Table(title=f"views of {store.project}")
        columns = ("view", "last success", "watermark", "staleness", "last run", "online")
        for column in (*columns, "problem"):
            table.add_column(column, no_wrap=column != "problem")
        for item in report:
            last = f"{item.last_status} #{item.last_run_id}" if item.last_run_id else ""
            staleness = "-" if item.staleness_seconds is None else age_text(item.staleness_seconds)
            if item.freshness_seconds is not None:
                staleness += f" / {age_text(item.freshness_seconds)}"
            table.add_row(
                item.view,
                f"{item.last_success_at:%Y-%m-%d %H:%M}" if item.last_success_at else "never",
                f"{item.watermark:%Y-%m-%d %H:%M:%S}" if item.watermark else "never",
                f"[red]{staleness}[/]" if item.stale else staleness,
                last,
                item.online,
                f"[red]{escape(item.problem)}[/]" if item.problem else "",
            )
        console.print(table)
    if any(item.problem for item in report):
        raise typer.Exit(1)


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder to create the repo in."),
    project: str = typer.Option(
        "",
        "--project",
        help="Project name: letters, digits, underscores (default: from the folder name).",
    ),
) -> None:
    """Create a new feature repo from a template, with sample data, ready for `apply`."""
    from featurehub.templates import check_project, create_repo, project_name_from

    try:
        name = check_project(project) if project else project_name_from(directory.resolve().name)
        start, end = create_repo(directory, name)
    except FeaturehubError as exc:
        _fail(str(exc))
    repo = shlex.quote(str(directory))
    interval = f"{start:%Y-%m-%dT%H:%M} {end:%Y-%m-%dT%H:%M}"
    console.print(
        f"Created a feature repo in {directory} (project {name}). Next, to get its sample "
        "data online:",
        markup=False,
        highlight=False,
    )
    for command in ("plan", "apply", f"materialize {interval}"):
        console.print(
            f"  featurehub -r {repo} {command}", markup=False, highlight=False, soft_wrap=True
        )


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(6566, "--port", "-p", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes."),
) -> None:
    """Run the feature server (HTTP API over the online store; docs/feature-server.md)."""
    import importlib.util
    import os

    import uvicorn

    from featurehub.monitoring.serving_log import check_root

    if not 1 <= port <= 65535:
        _fail(f"--port {port} is not a TCP port; use 1 to 65535 (default 6566)")
    if workers < 1:
        _fail(f"--workers {workers}: run at least 1 worker process")
    store = _store(ctx)  # fails early, with a message, on a bad repo
    store.close()
    try:  # the app checks these too; here they fail before uvicorn starts, in one line
        store.config.server.accepted_keys(str(store.config.config_file))
        check_root(store.config.serving_log_root)
    except FeaturehubError as exc:
        _fail(str(exc))
    os.environ["FEATUREHUB_REPO"] = str(Path(ctx.obj["repo"]).resolve())
    fast = importlib.util.find_spec("uvloop") is not None
    http = "httptools" if importlib.util.find_spec("httptools") is not None else "auto"
    uvicorn.run(
        "featurehub.server.app:from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop" if fast else "auto",
        http=http,
        access_log=False,
        timeout_graceful_shutdown=30,
    )


# -- saved training datasets (docs/datasets.md) -------------------------------------------------

datasets_app = typer.Typer(
    help="Saved training datasets: save, list, describe.", no_args_is_help=True
)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("save")
def datasets_save(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The dataset's name (letters, digits, underscores)."),
    entities: str = typer.Option(
        ..., "--entities", help="A Parquet file of entity rows, or a DuckDB SELECT over files."
    ),
    features: list[str] = typer.Option(
        [], "--features", "-f", help="view:feature (repeat, or separate with commas)."
    ),
    service: str | None = typer.Option(None, "--service", "-s", help="A feature service."),
    description: str = typer.Option("", "--description", help="What the dataset is for."),
    timestamp_column: str = typer.Option(
        "event_timestamp", "--timestamp-column", help="The entity rows' time column."
    ),
    no_created_cutoff: bool = typer.Option(
        False, "--no-created-cutoff", help="Let values created after a row's time in."
    ),
) -> None:
    """Run a point-in-time join and save its result as an immutable, named dataset."""
    refs = [ref.strip() for item in features for ref in item.split(",") if ref.strip()]
    if bool(refs) == bool(service):
        _fail("pass either --features view:feature ... or --service NAME (one of the two)")
    store = _store(ctx)
    try:
        dataset = store.datasets.save(
            name,
            entities,
            service or refs,
            description=description,
            timestamp_column=timestamp_column,
            created_cutoff=not no_created_cutoff,
        )
    except FeaturehubError as exc:
        _fail(str(exc))
    console.print(
        f"Saved dataset [bold]{escape(dataset.name)}[/]: {dataset.row_count:,} rows, "
        f"{len(dataset.features)} features, sha256 {dataset.fingerprint[:16]}",
        highlight=False,
    )


@datasets_app.command("list")
def datasets_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """List saved datasets, newest first."""
    store = _store(ctx)
    try:
        found = store.datasets.list()
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps([d.to_dict(profile=False) for d in found], indent=2))
        return
    table = Table(title=f"datasets of {store.project}")
    table.add_column("name", overflow="fold")  # names are what users copy: never cut
    for column in ("rows", "features", "service", "entity times", "created", "cutoff"):
        table.add_column(column)
    for dataset in found:
        start, end = dataset.entity_range
        table.add_row(
            escape(dataset.name),
            f"{dataset.row_count:,}",
            str(len(dataset.features)),
            escape(dataset.feature_service or ""),
            f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}" if start and end else "",
            f"{dataset.created_at:%Y-%m-%d %H:%M}",
            "on" if dataset.created_cutoff else "off",
        )
    console.print(table)


@datasets_app.command("describe")
def datasets_describe(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A saved dataset's name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """A dataset's metadata and the profile of each feature (no rows are read)."""
    store = _store(ctx)
    try:
        dataset = store.get_dataset(name)
    except FeaturehubError as exc:
        _fail(str(exc))
    info = dataset.to_dict()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    for key in ("name", "description", "feature_service", "row_count", "timestamp_column"):
        console.print(f"{key}: {info[key]}", markup=False, highlight=False)
    console.print(f"entity times: {info['entity_start']} .. {info['entity_end']}", markup=False)
    console.print(
        f"created: {info['created_at']}, created-time cutoff: "
        f"{'on' if dataset.created_cutoff else 'off'}",
        markup=False,
    )
    versions = ", ".join(f"{v} v{n}" for v, n in dataset.view_versions.items())
    console.print(f"views read: {versions}", markup=False, highlight=False)
    console.print(f"fingerprint (sha256): {dataset.fingerprint}", markup=False, highlight=False)
    table = Table(title=f"profile of {name}")
    headers = ("feature", "type", "null rate", "min", "p50", "max", "mean", "std", "bins / top")
    for column in headers:
        table.add_column(column)
    for feature, profile in dataset.profile.items():
        quantiles = profile.quantiles
        numbers = [quantiles.get(q) for q in ("0", "50", "100")] + [profile.mean, profile.std]
        if profile.kind == "number":
            shape = f"{len(profile.bin_counts)} bins"
        else:
            shape = ", ".join(f"{v}: {c}" for v, c in profile.categories[:3])
        table.add_row(
            escape(feature),
            profile.type,
            f"{profile.null_rate:.2%}",
            *["" if n is None else f"{n:.4g}" for n in numbers],
            escape(shape),
        )
    console.print(table)


SKEW_COULD_NOT_RUN = 2


def _duration(value: str) -> timedelta:
    """`24h`, `30m`, `7d`, `90s`: a window back from now."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = value[:-1], value[-1:].lower()
    try:
        amount = float(number)
    except ValueError:
        amount = -1.0
    if unit not in units or amount <= 0:
        _fail(f"--since {value!r} is not a duration; write e.g. 90s, 30m, 24h or 7d")
    return timedelta(seconds=amount * units[unit])


class _CheckUnlessSubcommand(TyperGroup):
    """`featurehub skew SERVICE ...` runs a check, `featurehub skew history SERVICE` lists the
    recorded ones: arguments that do not start with a subcommand's name are the check's (so
    `featurehub skew check SERVICE` works too, and checks a service named `history`)."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["check", *args]
        return super().parse_args(ctx, args)


skew_app = typer.Typer(
    cls=_CheckUnlessSubcommand,
    no_args_is_help=True,
    help=(
        "Skew checks of a feature service.\n\n"
        "featurehub skew SERVICE (--since 24h | --start T [--end T]) [--against DATASET]: "
        "check what it served (the same as `featurehub skew check SERVICE ...`).\n\n"
        "featurehub skew history SERVICE [--limit N] [--json]: the checks recorded, newest "
        "first."
    ),
)
app.add_typer(skew_app, name="skew")


@skew_app.command("check")
def skew(
    ctx: typer.Context,
    feature_service: str = typer.Argument(..., help="The feature service to check."),
    against: str | None = typer.Option(
        None,
        "--against",
        help="A saved training dataset to compare distributions with (datasets list).",
    ),
    since: str | None = typer.Option(None, "--since", help="A window back from now: 24h, 7d."),
    start: str | None = typer.Option(None, "--start", help="Window start (ISO 8601, UTC)."),
    end: str | None = typer.Option(None, "--end", help="Window end (default: now)."),
    sample: float | None = typer.Option(
        None, "--sample", help="Replay this share of entity keys (0 < FRACTION <= 1)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result as JSON."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write the report as one self-contained HTML file here."
    ),
) -> None:
    """Check what a feature service served (its serving log): each logged row replayed
    through the offline join, and, with --against, its distributions against a training set.
    The default command: `featurehub skew SERVICE ...` runs it. Every check is recorded
    (featurehub skew history SERVICE).

    Exit 0 when every threshold holds (warnings pass), 1 when one is crossed, 2 when the
    check could not run (nothing is recorded then). docs/skew-checks.md has the figures and
    thresholds.
    """
    store = _store(ctx)
    try:
        if html is not None:
            from featurehub.skew.report import report_path

            report_path(html)  # before the check: a bad path fails at once
        report = store.check_skew(
            feature_service,
            against=against,
            start=_parse_time(start, "--start") if start else None,
            end=_parse_time(end, "--end") if end else None,
            since=_duration(since) if since else None,
            sample=sample,
        )
        written = report.to_html(html) if html is not None else None
    except FeaturehubError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(SKEW_COULD_NOT_RUN) from None
    if written is not None:  # on stderr: --json's output stays JSON
        err_console.print(
            f"report written to {written}", highlight=False, markup=False, soft_wrap=True
        )
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _render_replay(report)
        if report.distribution is not None:
            _render_distribution(report)
        else:
            console.print("distributions not compared: name a training set with --against NAME")
        verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
        console.print(f"skew check {verdict}")
    raise typer.Exit(0 if report.passed else 1)


def _render_replay(report: SkewReport) -> None:
    replayed = report.replay
    sampled = f", a {replayed.sample:.0%} sample of keys" if replayed.sample else ""
    table = Table(
        title=(
            f"{report.feature_service}: {replayed.rows:,} rows served "
            f"{report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M}{sampled}, "
            "replayed through the offline join"
        )
    )
    for column in ("feature", "status", "compared", "mismatches", "by cause", "stale lag p95"):
        table.add_column(column, overflow="fold")
    features = sorted(replayed.features, key=lambda f: (f.passed, -f.mismatches, f.name))
    for feature in features:
        ok = feature.passed
        causes = ", ".join(f"{cause} {count:,}" for cause, count in feature.causes.items() if count)
        lag = feature.lag
        table.add_row(
            feature.name,
            "[green]pass[/]" if ok else "[red]fail[/]",
            f"{feature.rows_compared:,}",
            f"{feature.mismatches:,} ({feature.rate(feature.mismatches):.2%})",
            causes,
            "" if lag is None else f"{lag.p95_seconds:,.0f} s",
        )
    console.print(table)


def _render_distribution(report: SkewReport) -> None:
    distribution = report.distribution
    assert distribution is not None
    table = Table(
        title=(
            f"served values against {distribution.dataset} "
            f"({distribution.served_rows:,} rows served)"
        )
    )
    for column in ("feature", "status", "PSI / JS", "KS p", "nulls train -> served", "why"):
        table.add_column(column, overflow="fold")
    colors = {"fail": "red", "warn": "yellow", "insufficient_data": "cyan", "pass": "green"}
    for row in distribution.ranked():
        measure = row.psi if row.kind == "number" else row.js_distance
        table.add_row(
            row.feature,
            f"[{colors[row.status]}]{row.status}[/]",
            "" if measure is None else f"{measure:.3f}",
            "" if row.ks_pvalue is None else f"{row.ks_pvalue:.3g}",
            f"{row.null_rate_training:.1%} -> {row.null_rate_served:.1%}",
            "; ".join(row.reasons),
        )
    console.print(table)


@skew_app.command("history")
def skew_history(
    ctx: typer.Context,
    feature_service: str = typer.Argument(..., help="The feature service."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most N checks."),
    as_json: bool = typer.Option(False, "--json", help="Print the records (results too)."),
) -> None:
    """The skew checks recorded for a feature service, newest first: when, which window,
    against which dataset, rows, the verdict, and the failed features with their figures.

    Exit 2 for a service that is neither registered nor ever checked.
    """
    store = _store(ctx)
    try:
        checks = store.skew_checks.history(feature_service, limit)
    except FeaturehubError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(SKEW_COULD_NOT_RUN) from None
    if as_json:
        print(json.dumps([check.to_dict() for check in checks], indent=2))
        return
    if not checks:
        console.print(
            f"no skew check of {escape(feature_service)} recorded yet; run one: "
            f"featurehub skew {escape(feature_service)} --since 24h",
            highlight=False,
        )
        return
    _render_history(feature_service, checks)


def _render_history(feature_service: str, checks: list[SkewCheck]) -> None:
    table = Table(title=f"skew checks of {escape(feature_service)}, newest first")
    for column in ("checked at", "window", "dataset", "rows", "passed"):
        table.add_column(column, no_wrap=True)
    table.add_column("failed features", overflow="fold")
    for check in checks:
        failed = "\n".join(
            f"{escape(f.feature)} ({f.check}): {escape(f.figure)}" for f in check.failed_features
        )
        table.add_row(
            f"{check.checked_at:%Y-%m-%d %H:%M:%S}",
            f"{check.window_start:%Y-%m-%d %H:%M} .. {check.window_end:%Y-%m-%d %H:%M}",
            escape(check.dataset or ""),
            f"{check.rows_served:,}" + (f" ({check.sample:.0%} sample)" if check.sample else ""),
            "[green]yes[/]" if check.passed else "[red]no[/]",
            failed,
        )
    console.print(table)
