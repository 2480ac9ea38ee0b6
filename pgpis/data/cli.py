"""`pgpis data synth|check|preview` — dataset tools.

`check` lists *all* problems (file, line, image, what is wrong, how to fix) and
exits non-zero when there are any, so a broken dataset is fixed in one pass
before training instead of failing hours into an epoch.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pgpis.data import phoenix_cli
from pgpis.errors import DataFormatError
from pgpis.grids import DEFAULT_MIN_CELL_HEIGHT, upscale_factor, upscale_nearest

DATASETS = ("deepfashion", "phoenix")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgpis data", description="Dataset tools: write synthetic data, validate, preview.")
    sub = p.add_subparsers(dest="tool", required=True)

    s = sub.add_parser("synth", help="write the synthetic dataset (the embedded default) in the real on-disk format")
    s.add_argument("--dataset", choices=DATASETS, default="deepfashion")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--identities", type=int, default=300)
    s.add_argument("--poses", type=int, default=4, help="images per identity")
    s.add_argument("--layout", choices=("cfld", "pcdms"), default="cfld")
    s.add_argument("--size", default="256x176", help="image size HxW (keypoints are always in the 256x176 frame)")
    s.add_argument("--workers", type=int, default=2)
    phoenix_cli.add_synth_arguments(s)

    c = sub.add_parser("check", help="validate a dataset copy; exit 1 listing every problem")
    c.add_argument("--dataset", choices=DATASETS, default="deepfashion")
    c.add_argument("--root", required=True, type=Path)
    c.add_argument("--parsing", action="store_true", help="require a parsing map for every image")
    c.add_argument("--quick", action="store_true", help="open image headers only instead of decoding every image")
    phoenix_cli.add_check_arguments(c)

    v = sub.add_parser("preview", help="grid PNG: source | target pose | source parsing | target")
    v.add_argument("--dataset", choices=DATASETS, default="deepfashion")
    v.add_argument("--root", required=True, type=Path)
    v.add_argument("--out", required=True, type=Path)
    v.add_argument("--split", default="test", choices=("train", "test"))
    v.add_argument("--rows", type=int, default=6)
    v.add_argument("--size", default="256x176", help="cell size HxW")
    v.add_argument("--min-cell-height", type=int, default=DEFAULT_MIN_CELL_HEIGHT,
                   help="upscale the cells (nearest neighbour, integer factor) to at least this many pixels tall; "
                        "0 keeps --size (default %(default)s)")
    phoenix_cli.add_convert_parser(sub)
    return p


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
        return h, w
    except ValueError:
        raise SystemExit(f"pgpis data: size '{text}' is not HxW, e.g. 256x176") from None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "dataset", None) == "phoenix" or args.tool == "convert-keypoints":
        return phoenix_cli.main(args)
    return {"synth": synth, "check": check, "preview": preview}[args.tool](args)


def synth(args: argparse.Namespace) -> int:
    from pgpis.data.synthetic import write_synthetic_deepfashion

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


def check(args: argparse.Namespace) -> int:
    from pgpis.data.layouts import read_deepfashion_index

    t0 = time.perf_counter()
    try:
        index = read_deepfashion_index(args.root, parsing=args.parsing, check_images="header" if args.quick else "decode")
    except DataFormatError as err:
        print(f"pgpis data check: {args.root}: {len(err.problems)} problem(s):", file=sys.stderr)
        for p in err.problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
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


def preview(args: argparse.Namespace) -> int:
    from pgpis.data import keypoints as kpt
    from pgpis.data import parsing as prs
    from pgpis.data.deepfashion import load_rgb, resize_image
    from pgpis.data.layouts import PARSING_PALETTE, read_deepfashion_index

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
            parse_im.putpalette(PARSING_PALETTE)
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
