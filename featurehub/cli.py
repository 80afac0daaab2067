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


class OptionError(FeaturehubError):
    """A command-line value is malformed (a time, a duration)."""


def _iso_time(value: str, name: str) -> datetime:
    """An ISO 8601 time; naive times are UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise OptionError(
            f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-01-31 or 2026-01-31T12:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _parse_time(value: str, name: str) -> datetime:
    try:
        return _iso_time(value, name)
    except OptionError as exc:
        _fail(str(exc))


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
        raise OptionError(f"--since {value!r} is not a duration; write e.g. 90s, 30m, 24h or 7d")
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
        "featurehub skew --model NAME@production (--since 24h | ...): check the rows one model "
        "version answered, against its training set.\n\n"
        "featurehub skew history SERVICE [--model REF] [--limit N] [--json]: the checks "
        "recorded, newest first."
    ),
)
app.add_typer(skew_app, name="skew")


@skew_app.command("check")
def skew(
    ctx: typer.Context,
    feature_service: str | None = typer.Argument(
        None, help="The feature service to check (with --model: the version's, by default)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Check the rows this model version answered (NAME:V, NAME@production, "
        "models:/NAME@alias), on its service, against its training set.",
    ),
    against: str | None = typer.Option(
        None,
        "--against",
        help="A saved training dataset to compare distributions with (datasets list; with "
        "--model: the version's training set).",
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
    The default command: `featurehub skew SERVICE ...` runs it. With --model, only the rows
    that version answered (production, canary, A/B or pinned; not shadow) are checked, on its
    feature service, against its training set; a SERVICE or --against other than the
    version's is an error. Every check is recorded (featurehub skew history SERVICE).

    Exit 0 when every threshold holds (warnings pass), 1 when one is crossed, 2 when the
    check could not run (nothing is recorded then). docs/skew-checks.md has the figures and
    thresholds.
    """
    try:  # anything that stops the check exits 2: exit 1 says a threshold was crossed
        if html is not None:
            from featurehub.skew.report import report_path

            report_path(html)  # before the check: a bad path fails at once
        report = FeatureStore(ctx.obj["repo"]).check_skew(
            feature_service,
            model=model,
            against=against,
            start=_iso_time(start, "--start") if start else None,
            end=_iso_time(end, "--end") if end else None,
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
    whose = ""
    if report.model is not None:
        whose = f" answered by {report.model.name} version {report.model.version}"
    title = (
        f"{report.feature_service}: {replayed.rows:,} rows{whose} served "
        f"{report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M}{sampled}, "
        "replayed through the offline join"
    )
    if report.rows_by_arm is not None:
        arms = ", ".join(f"{arm} {count:,}" for arm, count in report.rows_by_arm.items())
        of_all = " (all its rows in the window, not only the sample)" if replayed.sample else ""
        title += f"\nrows by arm: {arms}{of_all}"
    table = Table(title=escape(title))
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
    feature_service: str | None = typer.Argument(
        None, help="The feature service (with --model: the version's, by default)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="Only the checks of this model version's rows (NAME:V, NAME@production).",
    ),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Show at most N checks."),
    as_json: bool = typer.Option(False, "--json", help="Print the records (results too)."),
) -> None:
    """The skew checks recorded for a feature service, newest first: when, which window,
    against which dataset, whose rows (a model version's, or all), rows, the verdict, and
    the failed features with their figures.

    Exit 2 for a service that is neither registered nor ever checked, or an unknown model.
    """
    store = _store(ctx)
    try:
        version = None
        if model is not None:
            version = store.models.get(model)
            if feature_service not in (None, version.feature_service):
                raise OptionError(
                    f"model {version.name} version {version.version} takes feature service "
                    f"{version.feature_service!r}, not {feature_service!r}: drop the service"
                )
            feature_service = version.feature_service
        elif feature_service is None:
            raise OptionError("name the feature service, or a model version with --model")
        checks = store.skew_checks.history(
            feature_service,
            limit,
            model=None if version is None else version.name,
            model_version=None if version is None else version.version,
        )
    except FeaturehubError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(SKEW_COULD_NOT_RUN) from None
    if as_json:
        print(json.dumps([check.to_dict() for check in checks], indent=2))
        return
    if not checks:
        whose, command = feature_service, feature_service
        if model is not None:
            whose = f"the rows of {model}"
            command = f"--model {model}"
        console.print(
            f"no skew check of {escape(whose)} recorded yet; run one: "
            f"featurehub skew {escape(command)} --since 24h",
            highlight=False,
        )
        return
    _render_history(feature_service, checks)


def _render_history(feature_service: str, checks: list[SkewCheck]) -> None:
    table = Table(title=f"skew checks of {escape(feature_service)}, newest first")
    for column in ("checked at", "window"):
        table.add_column(column)
    table.add_column("dataset", overflow="fold")
    table.add_column("rows of", overflow="fold")
    for column in ("rows", "passed"):
        table.add_column(column, no_wrap=True)
    table.add_column("failed features", overflow="fold", min_width=30)
    for check in checks:
        failed = "\n".join(
            f"{escape(f.feature)} ({f.check}): {escape(f.figure)}" for f in check.failed_features
        )
        table.add_row(
            f"{check.checked_at:%Y-%m-%d %H:%M:%S}",
            f"{check.window_start:%Y-%m-%d %H:%M} .. {check.window_end:%Y-%m-%d %H:%M}",
            escape(check.dataset or ""),
            "all" if check.model is None else escape(f"{check.model}:{check.model_version}"),
            f"{check.rows_served:,}" + (f" ({check.sample:.0%} sample)" if check.sample else ""),
            "[green]yes[/]" if check.passed else "[red]no[/]",
            failed,
        )
    console.print(table)


# -- models (docs/models.md) --------------------------------------------------------------------

models_app = typer.Typer(
    help="Model versions tied to a feature service and a training set: register, promote, "
    "roll back, score.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


def _pairs(items: list[str], option: str) -> dict[str, str]:
    """`k=v` options into a dict; anything else is an error naming the option."""
    pairs: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            _fail(f"{option} {item!r} is not KEY=VALUE; write e.g. {option} accuracy=0.91")
        pairs[key.strip()] = value.strip()
    return pairs


def _print_changes(name: str, changes: list[Any]) -> None:
    for change in changes:
        if change.action == "archive":
            console.print(f"{name} version {change.version}: archived", highlight=False)
        elif change.action == "unarchive":
            console.print(f"{name} version {change.previous_version}: unarchived", highlight=False)
        elif change.version is None:
            console.print(
                f"{name}@{change.alias}: removed from version {change.previous_version}",
                highlight=False,
            )
        else:
            before = "" if change.previous_version is None else f" (was {change.previous_version})"
            console.print(
                f"{name}@{change.alias} -> version {change.version}{before}", highlight=False
            )


@models_app.command("register")
def models_register(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model's name (letters, digits, underscores)."),
    artifact: str = typer.Argument(
        ...,
        help="A .skops or .onnx file, package.module:Class of the repo (pyfunc), or with "
        "--flavor mlflow an MLflow model: models:/NAME/VERSION, runs:/RUN_ID/PATH or its folder.",
    ),
    feature_service: str = typer.Option(..., "--feature-service", help="Its feature service."),
    training_dataset: str = typer.Option(
        ..., "--training-dataset", help="The saved dataset it was trained on."
    ),
    metric: list[str] = typer.Option([], "--metric", help="KEY=NUMBER (repeat)."),
    param: list[str] = typer.Option([], "--param", help="KEY=VALUE (repeat)."),
    flavor: str | None = typer.Option(
        None,
        "--flavor",
        help="sklearn, onnx, pyfunc, or mlflow (never inferred: it runs the model's own code, "
        "so only for a model whose source you trust; pip install 'featurehub[mlflow]').",
    ),
    description: str = typer.Option("", "--description", help="What this version is."),
) -> None:
    """Register a new, immutable version of a model."""
    metrics, params = _pairs(metric, "--metric"), _pairs(param, "--param")
    store = _store(ctx)
    try:
        version = store.models.register(
            name,
            artifact,
            feature_service=feature_service,
            training_dataset=training_dataset,
            metrics=dict(metrics),
            params=params,
            flavor=flavor,
            description=description,
        )
    except FeaturehubError as exc:
        _fail(str(exc))
    console.print(
        f"Registered {escape(version.name)} version {version.version} ({version.flavor}, "
        f"sha256 {version.artifact_sha256[:16]}): {version.reference}",
        highlight=False,
    )


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Every model: its latest version, and which versions hold production and staging."""
    store = _store(ctx)
    try:
        rows = []
        for latest in store.models.list():
            state = store.models.lifecycle(latest.name)
            rows.append((latest, state.aliases))
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        found = [{**v.to_dict(), "aliases": aliases} for v, aliases in rows]
        print(json.dumps(found, indent=2))
        return
    table = Table(title=f"models of {store.project}")
    table.add_column("name", overflow="fold")
    for column in ("latest", "production", "staging", "aliases", "flavor", "service", "created"):
        table.add_column(column)
    for latest, aliases in rows:
        others = ", ".join(
            f"{a}={v}" for a, v in sorted(aliases.items()) if a not in ("production", "staging")
        )
        table.add_row(
            escape(latest.name),
            str(latest.version),
            str(aliases.get("production", "")),
            str(aliases.get("staging", "")),
            escape(others),
            latest.flavor,
            escape(latest.feature_service),
            f"{latest.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@models_app.command("describe")
def models_describe(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NAME, NAME:VERSION, NAME@ALIAS, models:/..."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """A version, its stage and aliases, metrics and lineage: model -> feature service ->
    views -> sources, and its training dataset."""
    store = _store(ctx)
    try:
        info = store.models.describe(reference)
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(info, indent=2, default=str))
        return
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"{info['name']} version {info['version']} ({info['reference']}): {info['stage']}")
    if info["aliases"]:
        say(f"aliases: {', '.join(info['aliases'])}")
    if info["description"]:
        say(f"description: {info['description']}")
    say(f"flavor: {info['flavor']}, artifact sha256 {info['artifact_sha256']}")
    say(f"created by {info['created_by']} at {info['created_at']}")
    metrics = ", ".join(f"{k}={v:g}" for k, v in info["metrics"].items())
    params = ", ".join(f"{k}={v}" for k, v in info["params"].items())
    say(f"metrics: {metrics or '(none)'}")
    say(f"params: {params or '(none)'}")
    inputs = ", ".join(f"{i['name']} {i['type']}" for i in info["signature"]["inputs"])
    say(f"signature: ({inputs}) -> {info['signature']['output']}")
    service = info["lineage"]["feature_service"]
    current = service["current_version"]
    now = "" if current == service["registered_version"] else f", now at version {current}"
    say("lineage:")
    say(f"  feature service {service['name']} (version {service['registered_version']}{now})")
    for view in service["views"]:
        source = view["source"]
        where = source.get("path") or source.get("query") or source.get("name", "")
        say(f"    view {view['name']}: {', '.join(view['features'])}")
        say(f"      source {source.get('kind', '')} {where}".rstrip())
    dataset = info["lineage"]["training_dataset"]
    rows = f", {dataset['rows']:,} rows" if "rows" in dataset else ""
    status = ""
    if dataset.get("missing"):
        status = " (no longer saved)"
    elif dataset.get("fingerprint_matches") is False:
        status = " (its files changed)"
    say(f"  training dataset {dataset['name']}{rows}, sha256 {dataset['fingerprint']}{status}")


@models_app.command("promote")
def models_promote(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    version: int = typer.Argument(..., help="The version to promote."),
    stage: str = typer.Option(..., "--stage", help="staging or production."),
    force: bool = typer.Option(False, "--force", help="Promote although the gate refuses."),
    reason: str = typer.Option("", "--reason", help="Why (required with --force; recorded)."),
) -> None:
    """Move a version to staging or production (production: through the gate; the version
    it replaces is archived)."""
    store = _store(ctx)
    try:
        changes = store.models.promote(name, version, stage, force=force, reason=reason)
    except FeaturehubError as exc:
        _fail(str(exc))
    _print_changes(name, changes)


@models_app.command("gate")
def models_gate(
    ctx: typer.Context,
    reference: str = typer.Argument(..., help="NAME:VERSION, NAME@staging, models:/..."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Run the production gate for a version without promoting it: exit 0 when it would
    pass, 1 when a check fails."""
    store = _store(ctx)
    try:
        report = store.models.check_gate(reference)
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"passed": report.passed, "checks": report.to_list()}, indent=2))
    else:
        table = Table(title=f"production gate for {reference}")
        for column in ("check", "result", "figures"):
            table.add_column(column, overflow="fold")
        for check in report.checks:
            result = "[green]pass[/]" if check.passed else "[red]fail[/]"
            table.add_row(escape(check.name), result, escape(check.detail))
        console.print(table)
    raise typer.Exit(0 if report.passed else 1)


@models_app.command("alias")
def models_alias(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    alias: str = typer.Argument(..., help="An alias such as champion."),
    version: int = typer.Argument(..., help="The version it points at."),
) -> None:
    """Point an alias at a version (stages move with promote, rollback and archive)."""
    store = _store(ctx)
    try:
        changes = store.models.alias(name, alias, version)
    except FeaturehubError as exc:
        _fail(str(exc))
    _print_changes(name, changes)


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Production goes back to the version the current one replaced."""
    store = _store(ctx)
    try:
        changes = store.models.rollback(name, reason=reason)
    except FeaturehubError as exc:
        _fail(str(exc))
    _print_changes(name, changes)


@models_app.command("archive")
def models_archive(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    version: int = typer.Argument(..., help="The version to archive."),
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
) -> None:
    """Archive a version that is not in production (it loses its aliases)."""
    store = _store(ctx)
    try:
        changes = store.models.archive(name, version, reason=reason)
    except FeaturehubError as exc:
        _fail(str(exc))
    _print_changes(name, changes)


@models_app.command("history")
def models_history(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Which version held which alias when, who moved it, why, and overrides of the gate."""
    store = _store(ctx)
    try:
        events = store.models.history(name)
    except FeaturehubError as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps([event.to_dict() for event in events], indent=2))
        return
    table = Table(title=f"history of {name}")
    for column in ("at", "action", "alias", "version", "was", "by", "forced", "reason"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            f"{event.at:%Y-%m-%d %H:%M:%S}",
            event.action,
            escape(event.alias),
            "" if event.version is None else str(event.version),
            "" if event.previous_version is None else str(event.previous_version),
            escape(event.actor),
            "[red]forced[/]" if event.forced else "",
            escape(event.reason),
        )
    console.print(table)


@models_app.command("traffic")
def models_traffic(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model."),
    canary: str | None = typer.Option(None, "--canary", help="V:PCT: PCT % of keys to V."),
    shadow: int | None = typer.Option(None, "--shadow", help="V also predicts, logged only."),
    ab: str | None = typer.Option(None, "--ab", help="V:PCT: an A/B split, PCT % of keys to V."),
    production_only: bool = typer.Option(
        False, "--production-only", help="Only the production version answers."
    ),
    reason: str = typer.Option("", "--reason", help="Why (recorded in the history)."),
    history: bool = typer.Option(False, "--history", help="Print the policy's history."),
) -> None:
    """Split a model's requests in the feature servers between versions (canary, shadow,
    A/B); without an option, print the policy now. Servers follow within
    registry.refresh_seconds, or at once on SIGHUP."""
    store = _store(ctx)
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    try:
        if history:
            for event in store.models.traffic_history(name):
                by = f" by {event.actor}" + (f": {event.reason}" if event.reason else "")
                say(f"{event.at:%Y-%m-%d %H:%M:%S}  {event.policy.describe()}{by}")
            return
        if canary is None and shadow is None and ab is None and not production_only:
            say(f"{name}: {store.models.traffic_policy(name).describe()}")
            return
        policy = store.models.traffic(
            name,
            canary=canary,
            shadow=shadow,
            ab=ab,
            production_only=production_only,
            reason=reason,
        )
    except FeaturehubError as exc:
        _fail(str(exc))
    say(f"{name}: {policy.describe()}")


@models_app.command("score")
def models_score(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The model (or a full reference such as NAME:3)."),
    version: int | None = typer.Option(None, "--version", help="A version number."),
    stage: str | None = typer.Option(
        None, "--stage", help="staging or production (default: production)."
    ),
    entities: str = typer.Option(
        ..., "--entities", help="A Parquet file of entity rows, or a DuckDB SELECT over files."
    ),
    out: Path = typer.Option(..., "--out", help="The Parquet file to write."),
    timestamp_column: str = typer.Option(
        "event_timestamp", "--timestamp-column", help="The entity rows' time column."
    ),
) -> None:
    """Score entity rows: their point-in-time features, then the model's predictions, as
    Parquet with the keys, timestamps, model, model_version and prediction."""
    if version is not None and stage is not None:
        _fail("pass --version or --stage, not both")
    is_reference = any(mark in name for mark in (":", "@", "/"))
    if is_reference and (version is not None or stage is not None):
        _fail(f"{name!r} names a version already; drop --version/--stage")
    if version is not None:
        reference = f"{name}:{version}"
    elif is_reference:
        reference = name
    else:
        reference = f"{name}@{(stage or 'production').lower()}"
    store = _store(ctx)
    try:
        result = store.models.score(reference, entities, out, timestamp_column=timestamp_column)
    except FeaturehubError as exc:
        _fail(str(exc))
    console.print(
        f"Scored {result.rows:,} rows with {escape(result.model)} version {result.version}: "
        f"{escape(str(result.path))}",
        highlight=False,
    )


# -- the serving log (docs/serving-log.md) -------------------------------------------------------

serving_log_app = typer.Typer(help="The serving log: upgrade old files.", no_args_is_help=True)
app.add_typer(serving_log_app, name="serving-log")


@serving_log_app.command("upgrade")
def serving_log_upgrade(ctx: typer.Context) -> None:
    """Rewrite the serving log's format 1 files (JSON text) in format 2 (typed columns), in
    place; optional, since every reader reads both (docs/serving-log.md, "Formats")."""
    from featurehub.monitoring.log_upgrade import format_1_files, upgrade_file

    root = _store(ctx).config.serving_log_root
    files = rows = 0
    try:
        for path in format_1_files(root):
            rows += upgrade_file(path, root)
            files += 1
    except (OSError, ValueError) as exc:
        _fail(f"cannot upgrade the serving log under {root}: {exc}")
    console.print(f"Upgraded {files:,} files ({rows:,} rows) under {root} to format 2.")


monitor_app = typer.Typer(
    no_args_is_help=True,
    help=(
        "Feature service monitors: scheduled skew checks that alert when they fail "
        "(docs/alerts.md)."
    ),
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.command("run")
def monitor_run(
    ctx: typer.Context,
    feature_service: str | None = typer.Argument(
        None, help="Run this service's monitor (default: every monitor due at --at)."
    ),
    at: str | None = typer.Option(
        None, "--at", help="The time to run for (ISO 8601, UTC; default: now)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print each check's result as JSON."),
) -> None:
    """Run monitors by hand, as the scheduler does: each checks the window that ends at its
    schedule's latest tick at or before --at, records the check and alerts when it fails.
    With SERVICE, its monitor runs even if that tick was checked already; without, every
    monitor whose latest tick is not checked yet runs.

    Exit 0 when every check passed (or none was due), 1 when one failed, 2 when one could
    not run (the others still run).
    """
    from featurehub.monitoring.monitors import MonitorRun, due_monitors, run_monitor

    store = _store(ctx)
    moment = _parse_time(at, "--at") if at else datetime.now(timezone.utc)
    try:
        store.alerts  # noqa: B018  (a misconfigured destination fails before any check)
        names = (
            [feature_service]
            if feature_service is not None
            else [service.name for service, _ in due_monitors(store, moment)]
        )
    except FeaturehubError as exc:
        err_console.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        store.close()
        raise typer.Exit(SKEW_COULD_NOT_RUN) from None
    runs: list[MonitorRun] = []
    could_not_run = 0
    for name in names:
        try:
            runs.append(run_monitor(store, name, moment))
        except FeaturehubError as exc:
            could_not_run += 1
            err_console.print(
                f"error: monitor of {name}: {exc}", highlight=False, markup=False, soft_wrap=True
            )
    store.close()  # delivers the alerts raised (a bounded wait)
    if as_json:
        print(json.dumps([_monitor_run_json(run) for run in runs], indent=2, default=str))
    elif not names:
        console.print(f"no monitor due at {moment:%Y-%m-%d %H:%M:%S}", highlight=False)
    else:
        _render_monitor_runs(runs)
    if could_not_run:
        raise typer.Exit(SKEW_COULD_NOT_RUN)
    raise typer.Exit(0 if all(run.passed for run in runs) else 1)


def _monitor_run_json(run: Any) -> dict[str, Any]:
    return {
        "feature_service": run.feature_service,
        "tick": run.tick.isoformat(),
        "check_id": run.check_id,
        "passed": run.passed,
        "alerts": [event.to_dict() for event in run.events],
        "result": run.report.to_dict(),
    }


def _render_monitor_runs(runs: list[Any]) -> None:
    table = Table(title="monitors run")
    for column in ("service", "tick", "window", "rows", "passed", "alerts"):
        table.add_column(column, no_wrap=True)
    table.add_column("failed features", overflow="fold")
    for run in runs:
        report = run.report
        failed = "\n".join(
            f"{escape(f.feature)} ({f.check}): {escape(f.figure)}" for f in report.failed_features()
        )
        table.add_row(
            escape(run.feature_service),
            f"{run.tick:%Y-%m-%d %H:%M}",
            f"{report.start:%Y-%m-%d %H:%M} .. {report.end:%Y-%m-%d %H:%M}",
            f"{report.replay.rows:,}",
            "[green]yes[/]" if run.passed else "[red]no[/]",
            str(len(run.events)),
            failed,
        )
    console.print(table)


@monitor_app.command("list")
def monitor_list(
    ctx: typer.Context,
    at: str | None = typer.Option(None, "--at", help="The time to judge (default: now)."),
) -> None:
    """The registered monitors: schedule, window, dataset, what was checked, what is due."""
    from featurehub.monitoring.monitors import checked_until as monitor_checked_until
    from featurehub.monitoring.monitors import due_tick, monitored_services

    store = _store(ctx)
    moment = _parse_time(at, "--at") if at else datetime.now(timezone.utc)
    try:
        services = monitored_services(store)
        table = Table(title=f"monitors of {store.project}")
        for column in ("service", "schedule", "window", "against", "checked until", "due"):
            table.add_column(column, no_wrap=True)
        for service in services:
            monitor = service.monitor
            assert monitor is not None
            until = monitor_checked_until(store, service)
            tick = due_tick(monitor, moment, until)
            table.add_row(
                escape(service.name),
                escape(monitor.schedule),
                str(monitor.window),
                escape(monitor.against or (f"model {monitor.model}" if monitor.model else "")),
                f"{until:%Y-%m-%d %H:%M}" if until else "never",
                f"{tick:%Y-%m-%d %H:%M}" if tick else "",
            )
    except FeaturehubError as exc:
        _fail(str(exc))
    if not services:
        console.print(
            "no feature service declares a monitor: FeatureService(..., monitor=Monitor(...))"
        )
        return
    console.print(table)


if __name__ == "__main__":  # `python -m featurehub.cli`, as `python -m featurehub`
    app()
