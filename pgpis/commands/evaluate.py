"""`pgpis evaluate`: score a folder of generated images under a named protocol.

    pgpis evaluate --dataset deepfashion --root DATA_ROOT --split test \\
        --generated DIR --protocol deepfashion-256x176 --out metrics.json

Writes metrics.json (metrics that cannot be computed are null with the reason
in "unavailable") and prints the papers' markdown table. The dataset's
:class:`~pgpis.data.contract.DatasetPackage` (found through :mod:`pgpis.data.registry`
from a name or a class path) adds its options and does the scoring
(``add_evaluate_arguments``, ``run_evaluate``); this module owns the shared options
and the output.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from pgpis.data import registry
from pgpis.errors import DataFormatError
from pgpis.metrics.protocols import all_protocols
from pgpis.metrics.quality.cli import add_quality_arguments, quality_lines, settings_from_args
from pgpis.metrics.quality.settings import requested

DEFAULT_DATASET = "deepfashion"
DEFAULT_CACHE = Path(os.environ.get("PGPIS_FID_CACHE", Path.home() / ".cache" / "pgpis" / "fid-stats"))


def build_parser(dataset: str = DEFAULT_DATASET) -> argparse.ArgumentParser:
    """The shared options plus `dataset`'s own (its ``add_evaluate_arguments``)."""
    chosen = registry.get_dataset(dataset)
    p = argparse.ArgumentParser(prog="pgpis evaluate" if dataset == DEFAULT_DATASET else f"pgpis evaluate --dataset {dataset}", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Weights (offline): --alexnet-weights / $PGPIS_ALEXNET_WEIGHTS, "
                                       "--inception-weights / $PGPIS_INCEPTION_WEIGHTS (clean-fid) or "
                                       "$PGPIS_TORCHVISION_INCEPTION_WEIGHTS (legacy protocols).")
    p.add_argument("--dataset", default=DEFAULT_DATASET, metavar="NAME|CLASS_PATH",
                   help=f"one of {', '.join(registry.available())}, or the class path of a DatasetPackage "
                        "(my_pkg.module:MyDataset; docs/extending.md)")
    p.add_argument("--root", required=True, help="dataset root (CFLD or PCDMs layout)")
    p.add_argument("--split", default="test")
    p.add_argument("--generated", required=True, help="folder of <source stem>_to_<target stem>.png")
    p.add_argument("--protocol", default=chosen.default_protocol, help=f"one of: {', '.join(sorted(all_protocols()))}")
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
    add_quality_arguments(p)  # IQA / IAA for every dataset (pgpis/metrics/quality/cli.py)
    chosen.add_evaluate_arguments(p)
    return p


def list_protocols() -> str:
    """Markdown list of the registered protocols and their settings (`--list-protocols`)."""
    lines = []
    protocols = all_protocols()
    for name in sorted(protocols):
        p = protocols[name]
        h, w = p.size
        lines.append(f"- `{name}`: {p.description}\n  report size {h}x{w} (h x w), {p.resize}; SSIM window {p.ssim_win_size}; "
                     f"Gaussian SSIM sigma {p.ssim_gaussian_sigma}, data range "
                     f"{'generated max-min' if p.ssim_gaussian_data_range is None else p.ssim_gaussian_data_range}; "
                     f"LPIPS {p.lpips_net}; " + (f"FID network {p.fid_extractor}, real sets {', '.join(p.fid_real_sets)}"
                                                 if p.fid_real_sets else "no FID"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--frames" in argv or any(a.startswith("--frames=") for a in argv):
        return clip_main(argv)
    try:
        dataset = _dataset(argv)
        if "--list-protocols" in argv:
            registry.load_protocols(tuple(dict.fromkeys(registry.available() + (dataset,))))
            print(list_protocols())
            return 0
        chosen = registry.get_dataset(dataset)
        chosen.protocols()  # its presets registered before --protocol is looked up
    except registry.UnknownDatasetError as err:
        print(f"pgpis evaluate: error: {err}", file=sys.stderr)
        return 2
    if not chosen.supports("evaluate"):
        print(f"pgpis evaluate: error: dataset {dataset} has no evaluation", file=sys.stderr)
        return 2
    args = build_parser(dataset).parse_args(argv)
    run_evaluate = chosen.run_evaluate

    def log(msg: str) -> None:
        print(f"[pgpis evaluate] {msg}", file=sys.stderr)

    try:
        with requested(settings_from_args(args)):  # reaches evaluate_pairs whatever the dataset
            result, rows = run_evaluate(args, log)
    except DataFormatError as err:
        print(f"pgpis evaluate: {err}", file=sys.stderr)
        return 2
    if result.missing:
        log(f"{len(result.missing)} of {result.n_expected} generated images missing (scored {result.n_pairs}): "
            + ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else ""))
    out = result.write_json(args.out)
    for name, row in rows.items():
        row.write_json(Path(args.out).with_name(Path(args.out).stem + "_" + name.replace(" ", "_") + ".json"))
    method = args.name or Path(args.generated).resolve().name
    print(result.markdown_table(method, rows) if rows else result.markdown_table(method))
    quality = quality_lines({method: result, **rows})
    if quality:
        print("\n" + quality)
    log(f"wrote {out}")
    return 0


def clip_main(argv: Sequence[str]) -> int:
    """`pgpis evaluate --frames DIR [--driving-video CLIP]`: temporal metrics of a `pgpis animate --frames-dir` folder."""
    from pgpis.metrics.clips import folder_frames, write_clip_metrics
    from pgpis.metrics.temporal import FLOW_METHODS

    p = argparse.ArgumentParser(prog="pgpis evaluate --frames",
                                description="Temporal metrics (warping error) of a clip with no ground truth: the "
                                            "frame0001.png ... folder pgpis animate --frames-dir writes.")
    p.add_argument("--frames", required=True, help="folder of frame0001.png ... (pgpis animate --frames-dir)")
    p.add_argument("--driving-video", default=None, help="the driving video: its own warping error is the reference")
    p.add_argument("--flow", default="dis", choices=[m for m in FLOW_METHODS if m != "raft"])
    p.add_argument("--out", default="clip_metrics.json")
    args = p.parse_args(list(argv))
    try:
        frames = folder_frames(args.frames)
        print(write_clip_metrics(frames, args.out, driving_video=args.driving_video, max_frames=len(frames),
                                 flow=args.flow))
    except DataFormatError as err:
        print(f"pgpis evaluate: {err}", file=sys.stderr)
        return 2
    print(f"[pgpis evaluate] wrote {args.out}", file=sys.stderr)
    return 0


def _dataset(argv: Sequence[str]) -> str:
    """`--dataset NAME` / `--dataset=NAME` read before parsing, since the dataset decides the options."""
    for i, a in enumerate(argv):
        if a == "--dataset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--dataset="):
            name = a.split("=", 1)[1]
        else:
            continue
        return name
    return DEFAULT_DATASET


if __name__ == "__main__":
    sys.exit(main())
