"""A copy of the example feature repo with freshly generated, seeded data."""

from __future__ import annotations

import importlib.util
import shutil
from datetime import datetime, timezone
from pathlib import Path

EXAMPLE = Path(__file__).parents[1] / "feature_repo"
END = datetime(2026, 3, 1, tzinfo=timezone.utc)


def copy_example_repo(target: Path, rows: int = 5_000, end: datetime = END) -> Path:
    """The example repo's definitions in `target`, with `rows` driver rows ending at `end`."""
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    spec = importlib.util.spec_from_file_location("generate_data", EXAMPLE / "generate_data.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    generator.generate(target / "data", rows, seed=11, end=end)
    return target
