"""The `featurehub` command line: typer for parsing, rich for tables. Logic lives elsewhere.

Exit codes: 0 success; 1 an error (the message says what to fix); `plan` exits 2 when there
are changes, like `terraform plan -detailed-exitcode`, so scripts can tell.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from featurehub import __version__
from featurehub.engines.base import MaterializationResult, MaterializationTask
from featurehub.engines.runner import MaterializationError, ProgressCallback
from featurehub.errors import FeaturehubError, NotFoundError
from featurehub.feature_store import FeatureStore
from featurehub.registry import Plan

app = typer.Typer(
    name="featurehub",
    help="featurehub: feature definitions in code, training/serving consistency proven.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(width=None if Console().is_terminal else 120)
err_console = Console(stderr=True)

CHANGES_EXIT_CODE = 2


def _fail(message: str) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
            from featurehub.errors import did_you_mean

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
            "results": [
                {
                    "view": r.view,
                    "start": r.start.isoformat(),
                    "end": r.end.isoformat(),
                    "rows_read": r.rows_read,
                    "rows_written": r.rows_written,
                    "online_rows_written": r.online_rows_written,
                }
                for r in results
            ],
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
            label = f"{task.view.name} {task.start:%Y-%m-%d %H:%M} .. {task.end:%Y-%m-%d %H:%M}"
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
        console.print(
            f"[bold]{result.view}[/]: {result.rows_read:,} rows read, "
            f"{result.rows_written:,} offline, {result.online_rows_written:,} online"
        )
    if failed:
        _fail(str(failed))


@app.command()
def materialize(
    ctx: typer.Context,
    start: str = typer.Argument(
        ..., help="Start of event time, inclusive (ISO 8601, UTC if naive)."
    ),
    end: str = typer.Argument(..., help="End of event time, exclusive (ISO 8601, UTC if naive)."),
    views: list[str] = VIEWS_OPTION,
    engine: str | None = ENGINE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Compute feature rows with event time in [START, END) into the stores."""
    store = _store(ctx)
    begin, finish = _parse_time(start, "START"), _parse_time(end, "END")
    _materialize_with_progress(
        lambda cb: store.materialize(begin, finish, views or None, engine=engine, on_progress=cb),
        as_json,
    )


@app.command("materialize-incremental")
def materialize_incremental(
    ctx: typer.Context,
    end: str = typer.Argument(..., help="End of event time, exclusive (ISO 8601, UTC if naive)."),
    views: list[str] = VIEWS_OPTION,
    engine: str | None = ENGINE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Materialize each view from its watermark (its last successful run) up to END."""
    store = _store(ctx)
    finish = _parse_time(end, "END")
    _materialize_with_progress(
        lambda cb: store.materialize_incremental(
            finish, views or None, engine=engine, on_progress=cb
        ),
        as_json,
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
    for column in ("id", "view", "interval", "engine", "status", "rows", "seconds", "error"):
        table.add_column(column)
    colors = {"success": "green", "failed": "red", "running": "yellow"}
    for run in found:
        seconds = run.duration_seconds
        table.add_row(
            str(run.id),
            run.view,
            f"{run.interval_start:%Y-%m-%d %H:%M} .. {run.interval_end:%Y-%m-%d %H:%M}",
            run.engine,
            f"[{colors.get(run.status, 'white')}]{run.status}[/]",
            "" if run.rows_written is None else f"{run.rows_written:,}",
            "" if seconds is None else f"{seconds:.2f}",
            (run.error or "")[:80],
        )
    console.print(table)


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Folder to create the repo in."),
    project: str = typer.Option("", help="Project name (default: the folder name)."),
) -> None:
    """Create a new feature repo from a template, with sample data, ready for `apply`."""
    from featurehub.templates import create_repo

    try:
        create_repo(directory, project or directory.resolve().name)
    except FeaturehubError as exc:
        _fail(str(exc))
    console.print(f"Created a feature repo in [bold]{directory}[/]. Next:")
    console.print(f"  featurehub -r {directory} plan\n  featurehub -r {directory} apply")


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

    if not 1 <= port <= 65535:
        _fail(f"--port {port} is not a TCP port; use 1 to 65535 (default 6566)")
    if workers < 1:
        _fail(f"--workers {workers}: run at least 1 worker process")
    store = _store(ctx)  # fails early, with a message, on a bad repo
    store.close()
    try:  # the app checks this too; here it fails before uvicorn starts, in one line
        store.config.server.accepted_keys(str(store.config.config_file))
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
