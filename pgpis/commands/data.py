"""`pgpis data synth|check|preview|prepare` — dataset tools, one parser for every dataset package.

`check` lists *all* problems (file, line, image, what is wrong, how to fix) and
exits non-zero when there are any, so a broken dataset is fixed in one pass
before training instead of failing hours into an epoch. The work is done by the
dataset's :class:`~pgpis.data.contract.DatasetPackage` (``run_synth``, ``run_check``, ... found
through :mod:`pgpis.data.registry` from a name or a class path); this module owns the options they
share, and only the chosen ``--dataset`` adds its own.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pgpis.data import registry
from pgpis.data.contract import DatasetPackage, Tool, parse_size  # noqa: F401  (parse_size: the shared HxW option)
from pgpis.grids import DEFAULT_MIN_CELL_HEIGHT

COMMANDS = ("synth", "check", "preview", "prepare")
DEFAULT_DATASET = "deepfashion"
_DATASET_HELP = ("a built-in dataset ({names}), an installed `pgpis.datasets` entry point, or the class path of a "
                 "DatasetPackage (my_pkg.module:MyDataset; docs/extending.md)")


def _dataset_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    help_ = _DATASET_HELP.format(names=", ".join(registry.available()))
    if required:
        parser.add_argument("--dataset", required=True, metavar="NAME|CLASS_PATH", help=help_)
    else:
        parser.add_argument("--dataset", default=DEFAULT_DATASET, metavar="NAME|CLASS_PATH",
                            help=help_ + " (default %(default)s)")


def _parser(chosen: DatasetPackage | None, command: str | None) -> tuple[argparse.ArgumentParser, dict[str, Tool]]:
    """The parser, and the dataset-owned extra subcommands (tool name -> run).

    Only `chosen` (the ``--dataset`` of the command line) adds its own options, to the subparser of
    `command`: `pgpis data synth --dataset phoenix` knows no DeepFashion flag.
    """
    p = argparse.ArgumentParser(prog="pgpis data", description="Dataset tools: write synthetic data, validate, preview.")
    sub = p.add_subparsers(dest="tool", required=True)

    s = sub.add_parser("synth", help="write the synthetic dataset (the embedded default) in the real on-disk format")
    _dataset_argument(s)
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("check", help="validate a dataset copy; exit 1 listing every problem")
    _dataset_argument(c)
    c.add_argument("--root", required=True, type=Path)
    c.add_argument("--quick", action="store_true", help="open image headers only instead of decoding every image")

    v = sub.add_parser("preview", help="grid PNG: source | target pose | source parsing | target")
    _dataset_argument(v)
    v.add_argument("--root", required=True, type=Path)
    v.add_argument("--out", required=True, type=Path)
    v.add_argument("--split", default="test", choices=("train", "test"))
    v.add_argument("--rows", type=int, default=6)
    v.add_argument("--size", default="256x176", help="cell size HxW")
    v.add_argument("--min-cell-height", type=int, default=DEFAULT_MIN_CELL_HEIGHT,
                   help="upscale the cells (nearest neighbour, integer factor) to at least this many pixels tall; "
                        "0 keeps --size (default %(default)s)")
    sub.add_parser("cache", help="write a feature store of an experiment's frozen encoders (docs/feature-store.md)")
    r = sub.add_parser("prepare", help="one-off preparation of a dataset copy (e.g. estimate missing keypoints)")
    _dataset_argument(r, required=True)
    r.add_argument("--root", required=True, type=Path)
    parsers = {"synth": s, "check": c, "preview": v, "prepare": r}
    if chosen is not None and command in parsers:
        chosen.add_arguments(command, parsers[command])
    tools: dict[str, Tool] = {}
    datasets = [registry.get_dataset(name) for name in registry.available()]
    if chosen is not None and all(type(d) is not type(chosen) for d in datasets):
        datasets.append(chosen)
    for dataset in datasets:
        tools.update(dataset.add_tools(sub))
    return p, tools


def _dataset_name(argv: list[str]) -> str | None:
    """`--dataset NAME` / `--dataset=NAME` read before parsing, since the dataset decides the options."""
    for i, a in enumerate(argv):
        if a == "--dataset" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--dataset="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str]) -> int:
    if argv[:1] == ["cache"]:  # pgpis.store's own parser: it hands the experiment's config keys to LightningCLI
        from pgpis.commands.data_cache import main as cache_main

        return cache_main(argv[1:])
    command = argv[0] if argv and argv[0] in COMMANDS else None
    name = _dataset_name(argv) or (DEFAULT_DATASET if command not in (None, "prepare") else None)
    try:
        chosen = registry.get_dataset(name) if name is not None else None
    except registry.UnknownDatasetError as err:
        print(f"pgpis data: error: {err}", file=sys.stderr)
        return 2
    parser, tools = _parser(chosen, command)
    args = parser.parse_args(argv)
    if args.tool in tools:
        return tools[args.tool](args)
    if chosen is None or not chosen.supports(args.tool):
        parser.error(f"`pgpis data {args.tool}` is not available for --dataset {args.dataset}")
    return getattr(chosen, f"run_{args.tool}")(args)
