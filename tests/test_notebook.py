"""The walkthrough notebook runs from top to bottom on the default data."""

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "walkthrough.ipynb"


def test_walkthrough_notebook_executes(ml100k, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    out = ml100k[2]  # the default pipeline's stages up to the dataset, run already: the notebook keeps them
    monkeypatch.setenv("HYBRID_NOTEBOOK_OUT", str(out))
    monkeypatch.setenv("HYBRID_NOTEBOOK_FAST", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # overview, learning curve, embedding projection, two-stage blend weights
    assert (out / "dataset" / "item_vectors.npy").is_file()
