"""DeepFashion In-shop as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset deepfashion``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage, Log


class DeepFashionPackage(DatasetPackage):
    """CFLD or PCDMs layout (detected), synthetic writer, check, preview and the ``deepfashion-*`` protocols."""

    name = "deepfashion"
    datamodule = "pgpis.data.deepfashion.DeepFashionDataModule"
    default_protocol = "deepfashion-256x176"

    def read_layout(self, root: Path) -> Any:
        from pgpis.data.deepfashion.layout import read_deepfashion_index

        return read_deepfashion_index(root)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.deepfashion import hooks

        hooks.add_cli_arguments(command, parser)

    def run_synth(self, args: argparse.Namespace) -> int:
        from pgpis.data.deepfashion import hooks

        return hooks.run_synth(args)

    def run_check(self, args: argparse.Namespace) -> int:
        from pgpis.data.deepfashion import hooks

        return hooks.run_check(args)

    def run_preview(self, args: argparse.Namespace) -> int:
        from pgpis.data.deepfashion import hooks

        return hooks.run_preview(args)

    def protocols(self):
        from pgpis.data.deepfashion.protocols import PROTOCOLS

        return PROTOCOLS

    def add_evaluate_arguments(self, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.deepfashion import hooks

        hooks.add_evaluate_arguments(parser)

    def run_evaluate(self, args: argparse.Namespace, log: Log):
        from pgpis.data.deepfashion import hooks

        return hooks.run_evaluate(args, log)
