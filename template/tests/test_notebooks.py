"""Every notebook in notebooks/ runs from top to bottom, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_the_project_has_notebooks() -> None:
    assert NOTEBOOKS, "notebooks/ holds no notebook: this suite would prove nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs_without_error(path: Path) -> None:
    # given a notebook as committed: no outputs (nbstripout removes them on commit)
    notebook = nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        f"{path.name} carries outputs: run 'uv run pre-commit run nbstripout --all-files'"
    )

    # when a fresh kernel runs every cell from its folder, as Jupyter would
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()

    # then no cell raised (nbclient raises CellExecutionError naming the cell) and every
    # code cell ran, the last one included
    assert all(cell.execution_count for cell in code), f"{path.name}: a cell did not run"
