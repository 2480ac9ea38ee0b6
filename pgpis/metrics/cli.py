"""`pgpis evaluate`: score a folder of generated images under a named protocol.

    pgpis evaluate --dataset deepfashion --root DATA_ROOT --split test \\
        --generated DIR --protocol deepfashion-256x176 --out metrics.json

Writes metrics.json (metrics that cannot be computed are null with the reason
in "unavailable") and prints the papers' markdown table.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from pgpis.errors import DataFormatError
from pgpis.metrics.protocols import PROTOCOLS

DATASETS = ("deepfashion", "phoenix")  # phoenix: pgpis/metrics/phoenix_cli.py
DEFAULT_CACHE = Path(os.environ.get("PGPIS_FID_CACHE", Path.home() / ".cache" / "pgpis" / "fid-stats"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgpis evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Weights (offline): --alexnet-weights / $PGPIS_ALEXNET_WEIGHTS, "
                                       "--inception-weights / $PGPIS_INCEPTION_WEIGHTS (clean-fid) or "
                                       "$PGPIS_TORCHVISION_INCEPTION_WEIGHTS (legacy protocols).")
    p.add_argument("--dataset", choices=DATASETS, default="deepfashion")
    p.add_argument("--root", required=True, help="dataset root (CFLD or PCDMs layout)")
    p.add_argument("--split", default="test")
    p.add_argument("--generated", required=True, help="folder of <source stem>_to_<target stem>.png")
    p.add_argument("--protocol", default="deepfashion-256x176", help=f"one of: {', '.join(sorted(PROTOCOLS))}")
    p.add_argument("--out", default="metrics.json")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--fid-real-cache", default=str(DEFAULT_CACHE),
                   help="folder for cached real-set FID statistics ('' disables caching; default %(default)s)")
    p.add_argument("--allow-missing", action="store_true", help="score the pairs present instead of failing")
    p.add_argument("--alexnet-weights", default=None, help="alexnet-owt-7be5be79.pth for LPIPS")
    p.add_argument("--inception-weights", default=None, help="the protocol's FID Inception weight file")
    p.add_argument("--list-protocols", action="store_true", help="print the named protocols and their settings, then exit")
    p.add_argument("--name", default=None, help="method name in the printed table (default: the folder name)")
    p.add_argument("--make-copy-source", action="store_true",
                   help="first write the copy-the-source baseline into --generated (each target replaced by its "
                        "source, PIL-bicubic resized to the protocol size), then evaluate it")
    return p


def _write_copy_source(args: argparse.Namespace) -> None:
    from pgpis.data.layouts import read_deepfashion_index
    from pgpis.metrics.pairs import copy_source
    from pgpis.metrics.protocols import get_protocol

    index = read_deepfashion_index(args.root, check_images="none")
    copy_source(index.pairs.get(args.split, []), index.image_path, args.generated, size=get_protocol(args.protocol).size)


def list_protocols() -> str:
    """Markdown list of the registered protocols and their settings (`--list-protocols`)."""
    lines = []
    for name in sorted(PROTOCOLS):
        p = PROTOCOLS[name]
        h, w = p.size
        lines.append(f"- `{name}`: {p.description}\n  report size {h}x{w} (h x w), {p.resize}; SSIM window {p.ssim_win_size}; "
                     f"Gaussian SSIM sigma {p.ssim_gaussian_sigma}, data range "
                     f"{'generated max-min' if p.ssim_gaussian_data_range is None else p.ssim_gaussian_data_range}; "
                     f"LPIPS {p.lpips_net}; FID network {p.fid_extractor}, real sets {', '.join(p.fid_real_sets)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--list-protocols" in argv:
        print(list_protocols())
        return 0
    if "phoenix" in (argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--dataset") or "--dataset=phoenix" in argv:
        from pgpis.metrics.phoenix_cli import main as phoenix_main

        return phoenix_main(argv)
    args = build_parser().parse_args(argv)
    from pgpis.metrics.evaluate import WeightPaths, evaluate_deepfashion

    def log(msg: str) -> None:
        print(f"[pgpis evaluate] {msg}", file=sys.stderr)

    try:
        if args.make_copy_source:
            _write_copy_source(args)
            log(f"wrote the copy-the-source baseline to {args.generated}")
        result = evaluate_deepfashion(
            args.root, args.split, args.generated, args.protocol,
            allow_missing=args.allow_missing, batch_size=args.batch_size, device=args.device,
            weights=WeightPaths(alexnet=args.alexnet_weights, inception=args.inception_weights),
            fid_cache_dir=args.fid_real_cache or None, log=log,
        )
    except DataFormatError as err:
        print(f"pgpis evaluate: {err}", file=sys.stderr)
        return 2
    if result.missing:
        log(f"{len(result.missing)} of {result.n_expected} generated images missing (scored {result.n_pairs}): "
            + ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else ""))
    out = result.write_json(args.out)
    print(result.markdown_table(args.name or Path(args.generated).resolve().name))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
