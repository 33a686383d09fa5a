"""The NYC taxi notebook runs top to bottom; its ``assert`` cells keep its text true to its numbers."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "nyc_taxi.ipynb"


def _errors(notebook):
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]


def test_the_stored_notebook_was_run_cleanly():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "every code cell shows its output"
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    assert not _errors(notebook)
    images = sum("image/png" in output.get("data", {}) for cell in code for output in cell.outputs)
    assert images >= 5


def test_the_notebook_executes(monkeypatch, tmp_path):
    # The notebook reads the copy of the data bundled with rcforest: no RCFOREST_DATA, an empty home.
    monkeypatch.delenv("RCFOREST_DATA", raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}})
    client.execute()  # raises CellExecutionError, with the cell, on any failing cell or assert
    assert not _errors(notebook)
    text = "".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "10320 half-hourly values from 2014-07-01 00:00:00 to 2015-01-31 23:30:00" in text
    assert "windows with a flag: NYC marathon" in text
