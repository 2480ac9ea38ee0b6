"""WPose's hooks for `pgpis data synth|check|prepare`, `pgpis data download-wpose` and `pgpis evaluate`.

:mod:`pgpis.commands.data` owns the parsers and calls these through :mod:`pgpis.data.registry`; the options
live beside the WPose code. Nothing here imports torch unless a command needs it.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

from pgpis.data.contract import print_problems
from pgpis.errors import DataFormatError, PgpisError
from pgpis.pose.options import add_estimator_arguments, parse_options

GROUP = "wpose (--dataset wpose)"


def add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    """The WPose options of `pgpis data <command>` (in their own argument group)."""
    if command == "synth":
        g = parser.add_argument_group(GROUP)
        g.add_argument("--identities", type=int, default=300)
        g.add_argument("--poses", type=int, default=4, help="images per identity")
        g.add_argument("--max-side", type=int, default=160,
                       help="wpose: longer side of the synthetic images in px (aspect ratios vary; default %(default)s)")
    elif command == "prepare":
        g = parser.add_argument_group(GROUP)
        add_estimator_arguments(g, used_by="wpose")
        g.add_argument("--use-synthetic-keypoints", action="store_true",
                       help="wpose: take the synthetic generator's own keypoints instead of running an estimator "
                            "(only for a `pgpis data synth --dataset wpose` copy)")
        g.add_argument("--overwrite", action="store_true",
                       help="wpose: re-estimate images that already have keypoints from the same estimator")


def run_synth(args: argparse.Namespace) -> int:
    from pgpis.data.wpose.synthetic import write_synthetic_wpose

    t0 = time.perf_counter()
    try:
        summary = write_synthetic_wpose(args.out, seed=args.seed, identities=args.identities, poses=args.poses,
                                        max_side=args.max_side)
    except DataFormatError as err:
        return print_problems("data synth", Path(args.out), err)
    except ValueError as err:
        print(f"pgpis data synth: {err}", file=sys.stderr)
        return 2
    print(f"wrote synthetic WPose to {args.out} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k}={v}" for k, v in summary.items() if isinstance(v, (int, float, str))))
    print(f"next: pgpis data prepare --dataset wpose --root {args.out} [--use-synthetic-keypoints]")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from pgpis.data.wpose.layout import read_wpose_index

    t0 = time.perf_counter()
    try:
        index = read_wpose_index(args.root, check_images="header" if args.quick else "decode")
    except DataFormatError as err:
        return print_problems("data check", Path(args.root), err)
    names = index.names()
    print(f"{index.root}: WPose{' (synthetic)' if index.is_synthetic else ''}, OK ({time.perf_counter() - t0:.1f} s)")
    print(f"  test: {len(index.pairs)} pairs (from {index.pair_source}), {len(names)} images, "
          f"{len(index.urls)} URLs, {len(index.bboxes)} boxes")
    print("  parsing maps: present for every image, sizes match (CIHP labels, read as LIP)")
    estimators = sorted({k.estimator for k in index.keypoints.values()})
    missing = sum(int((k.body[:, 2] <= 0).sum()) for k in index.keypoints.values())
    print(f"  keypoints: every image, from {', '.join(estimators)}; {missing} of {18 * len(names)} body points missing")
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from pgpis.data.wpose.prepare import prepare_keypoints

    t0 = time.perf_counter()
    try:
        report = prepare_keypoints(args.root, estimator=None if args.use_synthetic_keypoints else args.estimator,
                                   estimator_options=parse_options(args.estimator_option),
                                   use_synthetic=args.use_synthetic_keypoints, overwrite=args.overwrite,
                                   log=lambda msg: print(f"[pgpis data prepare] {msg}", file=sys.stderr))
    except DataFormatError as err:
        return print_problems("data prepare", Path(args.root), err)
    except PgpisError as err:  # the estimator is unavailable here: its message says what and the fix
        print(f"pgpis data prepare: {err}", file=sys.stderr)
        return 2
    print(f"{args.root}: keypoints from {report.estimator}: {report.written} written, {report.kept} kept, "
          f"{report.not_found} without a person found ({time.perf_counter() - t0:.1f} s)")
    if report.use_synthetic:
        print("  these are the synthetic generator's own keypoints (--use-synthetic-keypoints), not an estimate")
    if report.not_found:
        print(f"  `pgpis data check --dataset wpose` will name the {report.not_found} image(s) without a person; "
              "try another --estimator (on a synthetic copy: --use-synthetic-keypoints)")
    return 0 if not report.not_found else 1


def add_tools(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """`pgpis data download-wpose`: fetch image_urls.txt and preprocess as UniHuman does."""
    d = sub.add_parser("download-wpose", help="WPose: fetch the images listed in image_urls.txt and crop/resize them "
                                              "as UniHuman's get_wpose_data.py does (needs internet)")
    d.add_argument("--root", required=True, type=Path, help="the unzipped wpose/ folder (image_urls.txt, bbox.txt)")
    d.add_argument("--overwrite", action="store_true", help="fetch images that already exist in images/")
    d.add_argument("--timeout", type=float, default=30.0, help="seconds per download (default %(default)s)")
    return {"download-wpose": run_download}


def run_download(args: argparse.Namespace) -> int:
    from pgpis.data.wpose.download import download_wpose

    try:
        report = download_wpose(args.root, overwrite=args.overwrite, timeout=args.timeout,
                                log=lambda msg: print(f"[pgpis data download-wpose] {msg}", file=sys.stderr))
    except DataFormatError as err:
        return print_problems("data download-wpose", Path(args.root), err)
    print(f"{args.root}: {report.written} images written to images/, {report.kept} already there, "
          f"{len(report.failed)} failed")
    for name, why in report.failed[:20]:
        print(f"  - {name}: {why}", file=sys.stderr)
    if report.failed:
        print(report.offline_help(), file=sys.stderr)
    return 0 if not report.failed else 1


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """`pgpis evaluate --dataset wpose`: the pose estimator for pose accuracy (IQA / IAA use the shared Q-Align
    settings, see docs/iqa.md). Added only if the shared parser does not define it already."""
    if "--pose-estimator" not in parser._option_string_actions:
        parser.add_argument("--pose-estimator", default="auto",
                            help="wpose: estimator for pose accuracy: auto (mediapipe if it runs here, else unavailable "
                                 "with the reason), mediapipe, rtmlib, package.module.Class, or none")


def run_evaluate(args: argparse.Namespace, log: Callable[[str], None]):
    from pgpis.data.wpose.scoring import run_cli_evaluation

    return run_cli_evaluation(args, log)
