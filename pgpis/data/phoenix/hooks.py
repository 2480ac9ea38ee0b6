"""Phoenix14T in `pgpis data`: `synth|check|preview --dataset phoenix` and `convert-keypoints`.

The dataset hooks :mod:`pgpis.commands.data` (which owns the parser) dispatches to
through :mod:`pgpis.data.registry`, so the Phoenix options live beside the
Phoenix code. None of this imports torch/Lightning unless a tensor pickle is read.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data.contract import print_problems
from pgpis.images import load_rgb
from pgpis.errors import DataFormatError
from pgpis.grids import upscale_factor, upscale_nearest

KEYPOINT_FORMATS = ("pickle", "tensor-pickle", "npz")


def add_cli_arguments(command: str, parser: argparse.ArgumentParser) -> None:
    """The Phoenix options of `pgpis data <command>` (on the parser every dataset shares)."""
    if command == "synth":
        add_synth_arguments(parser)
    elif command == "check":
        add_check_arguments(parser)


def add_tools(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Phoenix-only subcommands: `pgpis data convert-keypoints`."""
    add_convert_parser(sub)
    return {"convert-keypoints": convert}


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phoenix (--dataset phoenix)")
    g.add_argument("--signers", type=int, default=3)
    g.add_argument("--videos", default="train=8,dev=2,test=3", help="videos per split, e.g. train=8,dev=2,test=3")
    g.add_argument("--frames", default="12-20", help="frames per video, MIN-MAX")
    g.add_argument("--keypoint-format", action="append", choices=KEYPOINT_FORMATS, dest="keypoint_formats",
                   help="keypoint container(s) to write (repeatable; default: pickle)")


def add_check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keypoints", nargs="+", type=Path, default=None,
                   help="phoenix: keypoint file(s) (.npz or pickle); default <root>/keypoints/ (.npz preferred)")


def add_convert_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("convert-keypoints", help="Phoenix keypoint pickles -> one .npz (read with a restricted unpickler)")
    c.add_argument("inputs", nargs="+", type=Path, help="keypoint pickles (.pkl, gzip, MSKA-style per-split files)")
    c.add_argument("--out", required=True, type=Path, help="the .npz to write")


def _videos(text: str) -> dict[str, int]:
    try:
        return {k.strip(): int(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise SystemExit(f"pgpis data: --videos '{text}' is not like train=8,dev=2,test=3") from None


def _frames(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split("-"))
        return lo, hi
    except ValueError:
        raise SystemExit(f"pgpis data: --frames '{text}' is not MIN-MAX, e.g. 12-20") from None


def run_synth(args: argparse.Namespace) -> int:
    from pgpis.data.phoenix.synthetic import write_synthetic_phoenix

    t0 = time.perf_counter()
    try:
        summary = write_synthetic_phoenix(args.out, seed=args.seed, signers=args.signers, videos=_videos(args.videos),
                                          frames=_frames(args.frames), keypoint_formats=args.keypoint_formats or ("pickle",))
    except DataFormatError as err:
        return print_problems("data", args.out, err)
    print(f"wrote synthetic Phoenix14T to {args.out} in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from pgpis.data.phoenix.layout import read_phoenix_index

    t0 = time.perf_counter()
    try:
        index = read_phoenix_index(args.root, keypoints=getattr(args, "keypoints", None),
                                   check_images="header" if args.quick else "decode")
    except DataFormatError as err:
        return print_problems("data", args.root, err)
    print(f"{index.root}: Phoenix14T{' (synthetic)' if index.is_synthetic else ''}, OK ({time.perf_counter() - t0:.1f} s); "
          f"keypoints from {', '.join(p.name for p in index.keypoint_files)}")
    for split, videos in index.videos.items():
        frames = sum(len(v) for v in videos)
        kp = np.concatenate([v.keypoints for v in videos]) if videos else np.zeros((0, 133, 3))
        empty = int((kp == 0).all(axis=(1, 2)).sum())
        hands = kp[:, [100, 121], 2] >= 0.3 if len(kp) else np.zeros((0, 2), bool)
        print(f"  {split}: {len(videos)} videos, {frames} frames, {len(Counter(v.speaker for v in videos))} signers, "
              f"{empty} frames without detection, hands visible (score >= 0.3): "
              f"left {hands[:, 0].mean() if len(kp) else 0:.0%}, right {hands[:, 1].mean() if len(kp) else 0:.0%}")
    return 0


def convert(args: argparse.Namespace) -> int:
    from pgpis.data.phoenix.keypoints import convert_keypoints

    try:
        path, n = convert_keypoints(args.inputs, args.out)
    except DataFormatError as err:
        return print_problems("data", Path(args.out), err)
    print(f"wrote {n} videos' keypoints to {path} (load it with np.load(..., allow_pickle=False))")
    return 0


def run_preview(args: argparse.Namespace) -> int:
    """Grid: first frame | target whole-body pose | target frame, for a few test pairs."""
    from pgpis.data.phoenix.layout import FRAME_SIZE, first_frame_pairs, keypoints_with_missing, read_phoenix_index
    from pgpis.pose import keypoints as kpt

    split = "test" if args.split == "test" else "train"
    index = read_phoenix_index(args.root, splits=(split,))
    videos = index.videos[split]
    rows = first_frame_pairs([len(v) for v in videos])
    chosen = rows[np.linspace(0, len(rows) - 1, num=min(args.rows, len(rows))).astype(int)]
    scale = upscale_factor(FRAME_SIZE[0], args.min_cell_height)
    h, w = FRAME_SIZE[0] * scale, FRAME_SIZE[1] * scale
    grid = Image.new("RGB", (3 * w, 14 + h * len(chosen)), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(("source (frame 1)", "target pose", "target")):
        draw.text((c * w + 4, 1), title, fill="black")
    for r, (v, s, t) in enumerate(chosen):
        video = videos[v]
        kp = keypoints_with_missing(video.keypoints[t], 0.3)
        pose = kpt.render_pose(kp[:, :2], FRAME_SIZE, kpt.COCO_WHOLEBODY_133, scores=kp[:, 2])
        cells = [load_rgb(video.frames[s], video.frame_name(s)), Image.fromarray(pose),
                 load_rgb(video.frames[t], video.frame_name(t))]
        for c, cell in enumerate(cells):
            grid.paste(upscale_nearest(cell, scale), (c * w, 14 + r * h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote Phoenix preview grid ({len(chosen)} pairs, {split} split) to {args.out}")
    return 0
