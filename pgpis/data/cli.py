"""`pgpis data synth|check|preview|prepare` — dataset tools, one parser for every dataset package.

`check` lists *all* problems (file, line, image, what is wrong, how to fix) and
exits non-zero when there are any, so a broken dataset is fixed in one pass
before training instead of failing hours into an epoch. The work is done by the
dataset's package (``run_synth``, ``run_check``, ... found through
:mod:`pgpis.data.registry`); this module owns the options they share.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from pgpis.data import registry
from pgpis.grids import DEFAULT_MIN_CELL_HEIGHT

Tool = Callable[[argparse.Namespace], int]
COMMANDS = ("synth", "check", "preview", "prepare")


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Tool]]:
    """The parser, and the dataset-owned extra subcommands (tool name -> run)."""
    datasets = registry.available()
    modules = {name: registry.dataset_module(name) for name in datasets}
    preparable = tuple(n for n in datasets if getattr(modules[n], "run_prepare", None) is not None)
    p = argparse.ArgumentParser(prog="pgpis data", description="Dataset tools: write synthetic data, validate, preview.")
    sub = p.add_subparsers(dest="tool", required=True)

    s = sub.add_parser("synth", help="write the synthetic dataset (the embedded default) in the real on-disk format")
    s.add_argument("--dataset", choices=datasets, default="deepfashion")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--identities", type=int, default=300)
    s.add_argument("--poses", type=int, default=4, help="images per identity")
    s.add_argument("--layout", choices=("cfld", "pcdms"), default="cfld")
    s.add_argument("--size", default="256x176", help="image size HxW (keypoints are always in the 256x176 frame)")
    s.add_argument("--workers", type=int, default=2)

    c = sub.add_parser("check", help="validate a dataset copy; exit 1 listing every problem")
    c.add_argument("--dataset", choices=datasets, default="deepfashion")
    c.add_argument("--root", required=True, type=Path)
    c.add_argument("--parsing", action="store_true", help="require a parsing map for every image")
    c.add_argument("--quick", action="store_true", help="open image headers only instead of decoding every image")

    v = sub.add_parser("preview", help="grid PNG: source | target pose | source parsing | target")
    v.add_argument("--dataset", choices=datasets, default="deepfashion")
    v.add_argument("--root", required=True, type=Path)
    v.add_argument("--out", required=True, type=Path)
    v.add_argument("--split", default="test", choices=("train", "test"))
    v.add_argument("--rows", type=int, default=6)
    v.add_argument("--size", default="256x176", help="cell size HxW")
    v.add_argument("--min-cell-height", type=int, default=DEFAULT_MIN_CELL_HEIGHT,
                   help="upscale the cells (nearest neighbour, integer factor) to at least this many pixels tall; "
                        "0 keeps --size (default %(default)s)")
    sub.add_parser("cache", help="write a feature store of an experiment's frozen encoders (docs/feature-store.md)")
    parsers = {"synth": s, "check": c, "preview": v}
    if preparable:
        r = sub.add_parser("prepare", help="one-off preparation of a dataset copy (e.g. estimate missing keypoints)")
        r.add_argument("--dataset", choices=preparable, required=True)
        r.add_argument("--root", required=True, type=Path)
        parsers["prepare"] = r
    tools: dict[str, Tool] = {}
    for name, module in modules.items():
        for command, parser in parsers.items():
            if command != "prepare" or name in preparable:
                module.add_cli_arguments(command, parser)
        add_tools = getattr(module, "add_tools", None)
        if add_tools is not None:
            tools.update(add_tools(sub))
    return p, tools


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w
    except ValueError:
        raise SystemExit(f"pgpis data: size '{text}' is not HxW, e.g. 256x176") from None


def main(argv: list[str]) -> int:
    if argv[:1] == ["cache"]:  # pgpis.store's own parser: it hands the experiment's config keys to LightningCLI
        from pgpis.commands.data_cache import main as cache_main

        return cache_main(argv[1:])
    parser, tools = _parser()
    args = parser.parse_args(argv)
    if args.tool in tools:
        return tools[args.tool](args)
    module = registry.dataset_module(args.dataset)
    run = getattr(module, f"run_{args.tool}", None)
    if run is None:
        parser.error(f"`pgpis data {args.tool}` is not available for --dataset {args.dataset}")
    return run(args)
