"""DeepFashion in `pgpis data` (synth / check / preview) and `pgpis evaluate`: the dataset hooks.

:mod:`pgpis.commands.data` and `pgpis evaluate` own the parsers and the options every
dataset shares (--out, --seed, --root, --quick, ...); DeepFashion adds its own
(synth: --identities, --poses, --layout, --size, --workers; check: --parsing).
:class:`~pgpis.data.deepfashion.package.DeepFashionPackage` hands these hooks to
:mod:`pgpis.data.registry`.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.contract import parse_size, print_problems
from pgpis.errors import DataFormatError
from pgpis.grids import upscale_factor, upscale_nearest
from pgpis.pose.options import add_scoring_estimator_arguments

if TYPE_CHECKING:
    from pgpis.metrics.evaluate import EvaluationResult


def add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    """The DeepFashion options of `pgpis data <command>` (added when it is the chosen ``--dataset``)."""
    if command == "synth":
        parser.add_argument("--identities", type=int, default=300)
        parser.add_argument("--poses", type=int, default=4, help="images per identity")
        parser.add_argument("--layout", choices=("cfld", "pcdms"), default="cfld")
        parser.add_argument("--size", default="256x176",
                            help="image size HxW (keypoints are always in the 256x176 frame)")
        parser.add_argument("--workers", type=int, default=2)
    elif command == "check":
        parser.add_argument("--parsing", action="store_true", help="require a parsing map for every image")


def run_synth(args: argparse.Namespace) -> int:
    from pgpis.data.deepfashion.synthetic import write_synthetic_deepfashion

    t0 = time.perf_counter()
    try:
        summary = write_synthetic_deepfashion(args.out, seed=args.seed, identities=args.identities, poses=args.poses,
                                              layout=args.layout, size=parse_size(args.size), workers=args.workers)
    except (DataFormatError, ValueError) as err:  # a non-empty foreign --out folder, or bad counts/sizes
        print(f"pgpis data synth: {err}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote synthetic DeepFashion ({args.layout} layout) to {args.out} in {dt:.1f} s: "
          + ", ".join(f"{k}={v}" for k, v in summary.items() if isinstance(v, (int, float, str))))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from pgpis.data.deepfashion.layout import read_deepfashion_index

    t0 = time.perf_counter()
    try:
        index = read_deepfashion_index(args.root, parsing=args.parsing, check_images="header" if args.quick else "decode")
    except DataFormatError as err:
        return print_problems("data check", args.root, err)
    print(f"{args.root}: {index.layout.upper()} layout{' (synthetic)' if index.is_synthetic else ''}, OK "
          f"({time.perf_counter() - t0:.1f} s)")
    for split, pairs in index.pairs.items():
        ids = Counter(n.rsplit('_', 1)[0] for n in index.split_images(split))
        print(f"  {split}: {len(pairs)} pairs, {len(index.split_images(split))} images, {len(ids)} identities")
    missing = {split: int(sum((k < 0).any(axis=1).sum() for n, k in index.keypoints.items() if index.image_split[n] == split))
               for split in index.pairs}
    print("  missing keypoints: " + ", ".join(f"{s} {m}" for s, m in missing.items()))
    if args.parsing:
        print("  parsing maps: present for every image")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from pgpis.data import parsing as prs
    from pgpis.data.deepfashion.layout import read_deepfashion_index
    from pgpis.images import load_rgb, resize_image
    from pgpis.pose import keypoints as kpt

    h, w = parse_size(args.size)
    index = read_deepfashion_index(args.root, splits=(args.split,), check_images="none")
    pairs = index.pairs[args.split]
    chosen = [pairs[i] for i in np.linspace(0, len(pairs) - 1, num=min(args.rows, len(pairs))).astype(int)]
    header = 14
    cols = ("source", "target pose", "source parsing", "target")
    scale = upscale_factor(h, args.min_cell_height)
    ch, cw = h * scale, w * scale
    grid = Image.new("RGB", (cw * len(cols), header + ch * len(chosen)), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(cols):
        draw.text((c * cw + 4, 1), title, fill="black")
    for r, (src, tgt) in enumerate(chosen):
        pose = kpt.render_pose(kpt.rescale_keypoints(index.keypoints[tgt], kpt.CFLD_FRAME, (h, w)), (h, w), kpt.OPENPOSE_18)
        ppath = index.parsing_path(src)
        if ppath.exists():
            labels = prs.resize_parsing(prs.read_parsing(ppath), (h, w))
            parse_im = Image.frombytes("P", (w, h), np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
            parse_im.putpalette(prs.PARSING_PALETTE)
            parse_im = parse_im.convert("RGB")
        else:
            parse_im = Image.new("RGB", (w, h), (128, 128, 128))
            ImageDraw.Draw(parse_im).text((4, h // 2), "no parsing map", fill="white")
        cells = [resize_image(load_rgb(index.image_path(src), src), (h, w)), Image.fromarray(pose), parse_im,
                 resize_image(load_rgb(index.image_path(tgt), tgt), (h, w))]
        for c, cell in enumerate(cells):
            grid.paste(upscale_nearest(cell, scale), (c * cw, header + r * ch))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote preview grid ({len(chosen)} pairs of {args.root}, {args.split} split) to {args.out}")
    return 0


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """DeepFashion's option beyond the shared `pgpis evaluate` ones: the pose-accuracy estimator."""
    add_scoring_estimator_arguments(parser, what="pose accuracy (PCK@0.05/0.1, mean keypoint error) of samples, "
                                                 "copy-source and ground truth")


def _pose_estimator(args: argparse.Namespace):
    """`--pose-estimator` as given, or built now with its `--pose-estimator-option` s."""
    if not args.pose_estimator_option or args.pose_estimator.lower() in ("auto", "none"):
        return args.pose_estimator
    from pgpis.pose.options import load_named_estimator

    return load_named_estimator(args.pose_estimator, args.pose_estimator_option)


def write_copy_source(args: argparse.Namespace) -> None:
    """`--make-copy-source`: each target replaced by its source, PIL-bicubic resized to the protocol size."""
    from pgpis.data.deepfashion.layout import read_deepfashion_index
    from pgpis.metrics.pairs import copy_source
    from pgpis.metrics.protocols import get_protocol

    index = read_deepfashion_index(args.root, check_images="none")
    copy_source(index.pairs.get(args.split, []), index.image_path, args.generated, size=get_protocol(args.protocol).size)


def run_evaluate(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[EvaluationResult, dict[str, EvaluationResult]]:
    """Score `args.generated` on a DeepFashion split under `args.protocol` (one table row)."""
    from pgpis.data.deepfashion.evaluate import evaluate_deepfashion
    from pgpis.metrics.evaluate import WeightPaths

    if args.make_copy_source:
        write_copy_source(args)
        log(f"wrote the copy-the-source baseline to {args.generated}")
    result = evaluate_deepfashion(
        args.root, args.split, args.generated, args.protocol,
        allow_missing=args.allow_missing, batch_size=args.batch_size, device=args.device,
        weights=WeightPaths(alexnet=args.alexnet_weights, inception=args.inception_weights),
        fid_cache_dir=args.fid_real_cache or None, log=log, pose_estimator=_pose_estimator(args),
    )
    return result, {}
