"""RWTH-PHOENIX-Weather 2014T as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset phoenix``).

The hooks are the functions of :mod:`pgpis.data.phoenix.hooks` (argparse in, exit code out); the presets are
:mod:`pgpis.data.phoenix.protocols`. Importing this module imports neither torch nor the dataset's readers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage
from pgpis.data.phoenix import evaluate_hooks, hooks
from pgpis.data.phoenix.protocols import PROTOCOLS


class PhoenixPackage(DatasetPackage):
    """Frames + corpus CSVs + keypoint files, synthetic writer, check, preview, ``convert-keypoints`` and the
    ``phoenix-260x210`` protocol."""

    name = "phoenix"
    datamodule = "pgpis.data.phoenix.PhoenixDataModule"
    title = "RWTH-PHOENIX-Weather 2014 T"
    terms = "the dataset's own terms (see its page)"
    link = "https://www-i6.informatik.rwth-aachen.de/~koller/RWTH-PHOENIX-2014-T/"
    default_protocol = "phoenix-260x210"

    def read_layout(self, root: Path, *, parsing: bool = False) -> Any:
        from pgpis.data.phoenix.layout import read_phoenix_index

        return read_phoenix_index(root)

    def protocols(self):
        return PROTOCOLS

    add_arguments = staticmethod(hooks.add_cli_arguments)
    run_synth = staticmethod(hooks.run_synth)
    run_check = staticmethod(hooks.run_check)
    run_preview = staticmethod(hooks.run_preview)
    add_tools = staticmethod(hooks.add_tools)
    add_evaluate_arguments = staticmethod(evaluate_hooks.add_evaluate_arguments)
    run_evaluate = staticmethod(evaluate_hooks.run_evaluate)
