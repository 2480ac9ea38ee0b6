"""DeepFashion In-shop as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset deepfashion``).

The hooks are the functions of :mod:`pgpis.data.deepfashion.hooks` (argparse in, exit code out); the presets are
:mod:`pgpis.data.deepfashion.protocols`. Importing this module imports neither torch nor the dataset's readers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage
from pgpis.data.deepfashion import hooks
from pgpis.data.deepfashion.protocols import PROTOCOLS


class DeepFashionPackage(DatasetPackage):
    """CFLD or PCDMs layout (detected), synthetic writer, check, preview and the ``deepfashion-*`` protocols."""

    name = "deepfashion"
    datamodule = "pgpis.data.deepfashion.DeepFashionDataModule"
    title = "DeepFashion In-shop Clothes Retrieval (the CFLD / PCDMs pose-transfer pairs)"
    terms = "non-commercial research use only (the DeepFashion agreement)"
    link = "https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html"
    default_protocol = "deepfashion-256x176"

    def read_layout(self, root: Path, *, parsing: bool = False) -> Any:
        from pgpis.data.deepfashion.layout import read_deepfashion_index

        return read_deepfashion_index(root, parsing=parsing)

    def protocols(self):
        return PROTOCOLS

    add_arguments = staticmethod(hooks.add_cli_arguments)
    run_synth = staticmethod(hooks.run_synth)
    run_check = staticmethod(hooks.run_check)
    run_preview = staticmethod(hooks.run_preview)
    add_evaluate_arguments = staticmethod(hooks.add_evaluate_arguments)
    run_evaluate = staticmethod(hooks.run_evaluate)
