"""RWTH-PHOENIX-Weather 2014T as a :class:`~pgpis.data.contract.DatasetPackage` (``--dataset phoenix``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pgpis.data.contract import DatasetPackage, Log, Tool


class PhoenixPackage(DatasetPackage):
    """Frames + corpus CSVs + keypoint files, synthetic writer, check, preview, ``convert-keypoints`` and the
    ``phoenix-260x210`` protocol."""

    name = "phoenix"
    datamodule = "pgpis.data.phoenix.PhoenixDataModule"
    default_protocol = "phoenix-260x210"

    def read_layout(self, root: Path) -> Any:
        from pgpis.data.phoenix.layout import read_phoenix_index

        return read_phoenix_index(root)

    def add_arguments(self, command: str, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.phoenix import hooks

        hooks.add_cli_arguments(command, parser)

    def run_synth(self, args: argparse.Namespace) -> int:
        from pgpis.data.phoenix import hooks

        return hooks.run_synth(args)

    def run_check(self, args: argparse.Namespace) -> int:
        from pgpis.data.phoenix import hooks

        return hooks.run_check(args)

    def run_preview(self, args: argparse.Namespace) -> int:
        from pgpis.data.phoenix import hooks

        return hooks.run_preview(args)

    def add_tools(self, subparsers: argparse._SubParsersAction) -> dict[str, Tool]:
        from pgpis.data.phoenix import hooks

        return hooks.add_tools(subparsers)

    def protocols(self):
        from pgpis.data.phoenix.protocols import PROTOCOLS

        return PROTOCOLS

    def add_evaluate_arguments(self, parser: argparse.ArgumentParser) -> None:
        from pgpis.data.phoenix import evaluate_hooks

        evaluate_hooks.add_evaluate_arguments(parser)

    def run_evaluate(self, args: argparse.Namespace, log: Log):
        from pgpis.data.phoenix import evaluate_hooks

        return evaluate_hooks.run_evaluate(args, log)
