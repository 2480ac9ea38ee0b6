"""The exploration notebooks run top to bottom (headless, nbclient) on checkpoints of the shipped tiny configs,
with figures."""
from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(name: str, checkpoint: Path, data_root: Path, tmp_path: Path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    params = next(c for c in nb.cells if c.cell_type == "code")
    assert "CHECKPOINT =" in params.source and "DATA_ROOT =" in params.source  # the one cell users edit
    params.source = (f"from pathlib import Path\nCHECKPOINT = Path({str(checkpoint)!r})\n"
                     f"DATA_ROOT = Path({str(data_root)!r})\nSTEPS = 2\nDEVICE = 'cpu'\nDTYPE = None")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _figures(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
               if "image/png" in o.get("data", {}))


@pytest.mark.parametrize("name, stage, figures", [("explore_fpdm", "fpdm", 4), ("explore_truepose", "truepose", 4)])
def test_notebook_runs_on_tiny_checkpoint(name, stage, figures, tiny_ldm_checkpoints, synthetic_root, tmp_path):
    nb = _run(name, tiny_ldm_checkpoints[stage].parent, synthetic_root, tmp_path)  # a folder: newest last.ckpt
    assert _figures(nb) >= figures
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "notebook ran in" in text
    if stage == "truepose":  # experiments/tiny/truepose.yaml reads the source pose: the notebook gave it
        assert "needs source_parsing, source_pose, target_keypoints" in text
