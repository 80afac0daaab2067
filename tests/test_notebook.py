"""The training-set notebook runs top to bottom on a copy of the example repo, and shows that
point-in-time correct features carry the label's signal (item 15 of issue 9)."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.example_repo import copy_example_repo

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "training_dataset.ipynb"


def served_auc(outputs: str, training_set: str) -> float:
    """The AUC the notebook printed for a model trained on `training_set`."""
    found = re.search(rf"^{re.escape(training_set)}: test AUC (0\.\d+) on served", outputs, re.M)
    assert found, f"no AUC printed for {training_set!r}"
    return float(found.group(1))


def test_training_dataset_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example_repo(tmp_path / "repo", rows=20_000)
    monkeypatch.setenv("FEATUREHUB_REPO", str(repo))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "rows get a value written after the trip" in outputs
    correct = served_auc(outputs, "point-in-time correct")
    assert correct > 0.75  # the label depends on these values: a real lift over 0.5
    assert correct > served_auc(outputs, "latest row per entity") + 0.02


def test_notebook_materializes_nothing_after_now() -> None:
    """No END in the future: rows stamped after now would make online and offline disagree."""
    source = "".join(cell.source for cell in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert "store.materialize(start, datetime.now(timezone.utc))" in source
    assert "+ timedelta(days=1)" not in source


SKEW_NOTEBOOK = NOTEBOOK.parent / "skew.ipynb"


def test_skew_notebook_finds_each_injected_skew() -> None:
    """notebooks/skew.ipynb: serve, log, check (passes), break the online store two ways, and
    the check names the feature and the cause each time (issue 10). It makes its own copy of
    the example repo, with data up to now, in a temporary folder."""
    notebook = nbformat.read(SKEW_NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(SKEW_NOTEBOOK.parent)}},
    )
    client.execute()
    printed = [
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    verdicts = [text for text in printed if "skew check" in text]
    assert len(verdicts) == 3, verdicts
    healthy, written_wrong, stopped = verdicts
    assert healthy.strip() == "skew check passed"
    assert "replay driver_stats:conv_rate: value_skew" in written_wrong
    assert "distribution conv_rate (warn): PSI" in written_wrong  # as the prose says
    assert "stale" not in written_wrong and "replay driver_stats:acc_rate" not in written_wrong
    for feature in ("conv_rate", "acc_rate", "rating"):
        assert f"replay driver_stats:{feature}: stale" in stopped
    assert "value_skew" not in stopped  # rematerializing repaired the online store
    tables = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    assert any("distribution_psi" in table for table in tables)  # report.to_pandas() inline
    reports = [table for table in tables if table.startswith("<iframe")]
    assert len(reports) == 1, "the notebook shows the HTML report inline once"
    assert "plotly" in reports[0] and "driver_stats:conv_rate" in reports[0]


LIFECYCLE_NOTEBOOK = NOTEBOOK.parent / "model_lifecycle.ipynb"


def test_model_lifecycle_notebook_serves_a_canary_and_rolls_back() -> None:
    """notebooks/model_lifecycle.ipynb (issue 11): train, gate, promote, serve over HTTP with
    a real `featurehub serve`, a 20 % canary seen in /metrics, promote and roll back, then the
    skew check against the production version's training set. Its own temporary repo copy."""
    notebook = nbformat.read(LIFECYCLE_NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(LIFECYCLE_NOTEBOOK.parent)}},
    )
    client.execute()
    printed = "".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "gate passed for version 1" in printed
    assert "trip_completion@production -> version 1" in printed
    assert "version 1, arm production" in printed
    share = re.search(r"canary share of rows: (\d+\.\d)%", printed)
    assert share and 10 < float(share.group(1)) < 30, printed  # 20 % of the keys' buckets
    assert "after the promotion: version(s) [2] answer" in printed
    assert "after the rollback: version(s) [1] answer" in printed
    assert "production is version 1, trained on trip_training" in printed
    checked = re.search(
        r"^checked trip_completion version 1: ([\d,]+) rows it answered \(the log: \1\), "
        r"against trip_training$",
        printed,
        re.M,
    )
    assert checked and int(checked.group(1).replace(",", "")) > 0, printed  # its rows only
    replay = re.search(r"^replay: ([\d,]+) values replayed, 0 mismatches$", printed, re.M)
    assert replay and int(replay.group(1).replace(",", "")) > 0, printed
    assert "distribution lifetime_trips (fail)" in printed  # as the prose says
    tables = [
        output["data"]["text/html"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "text/html" in output.get("data", {})
    ]
    metrics_table = next(table for table in tables if "mean_prediction" in table)
    assert "canary" in metrics_table and "production" in metrics_table
