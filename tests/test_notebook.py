"""The training-set notebook runs top to bottom on a copy of the example repo."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.example_repo import copy_example_repo

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "training_dataset.ipynb"


def test_training_dataset_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = copy_example_repo(tmp_path / "repo", rows=5_000)
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
    assert "test AUC" in outputs
    assert "rows get a value written after the trip" in outputs
