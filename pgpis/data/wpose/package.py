"""WPose (UniHuman's in-the-wild test set) as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset wpose``).

The hooks are the functions of :mod:`pgpis.data.wpose.hooks` (argparse in, exit code out); the presets are
:mod:`pgpis.data.wpose.protocols`. Importing this module imports neither torch nor the dataset's readers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage
from pgpis.data.wpose import hooks
from pgpis.data.wpose.protocols import PROTOCOLS


class WPosePackage(DatasetPackage):
    """The UniHuman layout, synthetic writer, check, prepare (keypoints by an estimator), ``download-wpose`` and
    the ``wpose-*`` protocols."""

    name = "wpose"
    datamodule = "pgpis.data.wpose.WPoseDataModule"
    title = "WPose (web photos)"
    terms = "each image's own licence"
    default_protocol = "wpose-512x352"

    def read_layout(self, root: Path, *, parsing: bool = False) -> Any:
        from pgpis.data.wpose.layout import read_wpose_index

        return read_wpose_index(root, parsing=parsing)

    def protocols(self):
        return PROTOCOLS

    add_arguments = staticmethod(hooks.add_cli_arguments)
    run_synth = staticmethod(hooks.run_synth)
    run_check = staticmethod(hooks.run_check)
    run_prepare = staticmethod(hooks.run_prepare)
    add_tools = staticmethod(hooks.add_tools)
    add_evaluate_arguments = staticmethod(hooks.add_evaluate_arguments)
    run_evaluate = staticmethod(hooks.run_evaluate)
