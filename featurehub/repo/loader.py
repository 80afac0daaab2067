"""Import a feature repo's Python files and collect the definitions they create.

Each file is imported as a module (the repo folder is on sys.path, so files may import each
other). Every Entity, source, FeatureView and FeatureService found at module level, or
reachable from one, is collected. An error while importing names the file and line.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featurehub.definitions import DataSource, Entity, FeatureService, FeatureView
from featurehub.definitions.catalog import Catalog
from featurehub.errors import RepoLoadError

IGNORE_FILE = ".featurehubignore"
_ALWAYS_IGNORED = ("data/*", "*/__pycache__/*", ".*", "*/.*", "venv/*", ".venv/*", "build/*")


def repo_python_files(repo: Path) -> list[Path]:
    """The .py files of the repo that hold definitions, skipping ignored paths."""
    patterns = list(_ALWAYS_IGNORED)
    ignore_file = repo / IGNORE_FILE
    if ignore_file.is_file():
        for line in ignore_file.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line.rstrip("/") + ("/*" if line.endswith("/") else ""))
    files = []
    for path in sorted(repo.rglob("*.py")):
        relative = path.relative_to(repo).as_posix()
        if not any(fnmatch.fnmatch(relative, p) for p in patterns):
            files.append(path)
    return files


def load_repo(repo_path: str | Path) -> Catalog:
    """Import every definition file of the repo and return what they define."""
    repo = Path(repo_path).resolve()
    modules_before = set(sys.modules)
    sys.path.insert(0, str(repo))
    try:
        found: list[tuple[Any, Path]] = []
        for path in repo_python_files(repo):
            module = _import(path, repo)
            found.extend((value, path) for value in vars(module).values())
        return _collect(found, repo)
    finally:
        sys.path.remove(str(repo))
        # Forget the repo's modules so a second load (a test, a server reload) re-imports them.
        for name in set(sys.modules) - modules_before:
            file = getattr(sys.modules[name], "__file__", None) or ""
            if file.startswith(str(repo)):
                del sys.modules[name]


def _import(path: Path, repo: Path) -> Any:
    relative = path.relative_to(repo)
    module_name = "featurehub_repo." + ".".join(relative.with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise RepoLoadError(
            f"{relative}, line {exc.lineno}: syntax error: {exc.msg}. Fix the file and retry."
        ) from exc
    except Exception as exc:
        line = _line_in(exc, path)
        where = f"{relative}, line {line}" if line else str(relative)
        raise RepoLoadError(
            f"{where}: {type(exc).__name__}: {exc}. Fix the definition and retry."
        ) from exc
    return module


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The deepest line of `path` in the traceback: where the user's file went wrong."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno
    return line


def _reachable(value: Any) -> Iterator[Any]:
    if isinstance(value, (Entity, DataSource)):
        yield value
    elif isinstance(value, FeatureView):
        yield value
        yield value.source
        yield from value.entities
    elif isinstance(value, FeatureService):
        yield value
        for projection in value.projections:
            yield from _reachable(projection.view)


def _collect(found: list[tuple[Any, Path]], repo: Path) -> Catalog:
    """Group definitions by kind; two different objects with one name are an error."""
    buckets: dict[str, dict[str, tuple[Any, Path]]] = {k: {} for k in ("e", "s", "v", "fs")}
    for value, path in found:
        for obj in _reachable(value):
            key, kind = _bucket(obj)
            seen = buckets[key].get(obj.name)
            if seen is None:
                buckets[key][obj.name] = (obj, path)
            elif seen[0] is not obj and seen[0].to_spec() != obj.to_spec():
                raise RepoLoadError(
                    f"two different {kind} definitions are named {obj.name!r} (in "
                    f"{seen[1].relative_to(repo)} and {path.relative_to(repo)}); rename one"
                )
    return Catalog(
        entities={n: o for n, (o, _) in buckets["e"].items()},
        sources={n: o for n, (o, _) in buckets["s"].items()},
        feature_views={n: o for n, (o, _) in buckets["v"].items()},
        feature_services={n: o for n, (o, _) in buckets["fs"].items()},
    )


def _bucket(obj: Any) -> tuple[str, str]:
    if isinstance(obj, Entity):
        return "e", "entity"
    if isinstance(obj, DataSource):
        return "s", "source"
    if isinstance(obj, FeatureView):
        return "v", "feature view"
    return "fs", "feature service"
