"""WPose (UniHuman's in-the-wild test set) as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset wpose``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage, Log, Tool


class WPosePackage(DatasetPackage):
    """The UniHuman layout, synthetic writer, check, prepare (keypoints by an estimator), ``download-wpose`` and
    the ``wpose-*`` protocols."""

    name = "wpose"
    datamodule = "pgpis.data.wpose.WPoseDataModule"
    default_protocol = "wpose-512x352"

    def read_layout(self, root: Path) -> Any:
        from pgpis.data.wpose.layout import read_wpose_index

        return read_wpose_index(root)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.wpose import hooks

        hooks.add_cli_arguments(command, parser)

    def run_synth(self, args: argparse.Namespace) -> int:
        from pgpis.data.wpose import hooks

        return hooks.run_synth(args)

    def run_check(self, args: argparse.Namespace) -> int:
        from pgpis.data.wpose import hooks

        return hooks.run_check(args)

    def run_prepare(self, args: argparse.Namespace) -> int:
        from pgpis.data.wpose import hooks

        return hooks.run_prepare(args)

    def add_tools(self, subparsers: argparse._SubParsersAction) -> dict[str, Tool]:
        from pgpis.data.wpose import hooks

        return hooks.add_tools(subparsers)

    def protocols(self):
        from pgpis.data.wpose.protocols import PROTOCOLS

        return PROTOCOLS

    def add_evaluate_arguments(self, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.wpose import hooks

        hooks.add_evaluate_arguments(parser)

    def run_evaluate(self, args: argparse.Namespace, log: Log):
        from pgpis.data.wpose import hooks

        return hooks.run_evaluate(args, log)
