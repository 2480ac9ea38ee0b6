"""`pgpis generate`: the inference API from the shell (one pair, or a pairs CSV over a dataset)."""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Optional, Sequence

from pgpis.errors import DataFormatError, Problem
from pgpis.inference.hub import REVISION_HELP
from pgpis.inference.inputs import MissingInputError
from pgpis.inference.photo_inputs import describe_estimated, source_input_makers
from pgpis.parsing.options import add_parser_arguments, parser_options
from pgpis.pose.options import add_estimator_arguments, parse_options
from pgpis.safe_load import TRUST_HELP

DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def _dtype(name: Optional[str]):
    import torch

    return None if name is None else getattr(torch, DTYPES[name])


def _read_pairs(path: Path) -> list[tuple[str, str]]:
    """A 'from,to' CSV (the CFLD pairs format) of image names."""
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows or [c.strip() for c in rows[0][:2]] not in (["from", "to"], ["source", "target"]):
        raise DataFormatError(Problem(str(path), f"header is {rows[0] if rows else 'missing'}, expected 'from,to'"
                                      " (or 'source,target')",
                                      "write a header line 'from,to' then one 'source,target' image-name pair per line",
                                      line=1))
    pairs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise DataFormatError(Problem(str(path), f"expected 'source,target', found {row}", "one pair per line",
                                          line=lineno))
        pairs.append((row[0].strip(), row[1].strip()))
    return pairs


def generate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="pgpis generate",
        description="Generate the source person in a target pose with a trained FPDM or TruePose model. One image: "
                    "--source IMG --pose POSE --out OUT.png. Many: --pairs pairs.csv --root DATA --out DIR "
                    "(writes <source stem>_to_<target stem>.png; a re-run after a kill keeps the valid files, "
                    "regenerates truncated ones and generates the rest, the same images as an uninterrupted run).")
    parser.add_argument("--checkpoint", required=True, help="`pgpis fit` checkpoint (.ckpt), `pgpis export` folder or "
                                                            "its hub id ORG/NAME")
    parser.add_argument("--revision", default=None, help=REVISION_HELP)
    parser.add_argument("--source", help="source person image")
    parser.add_argument("--pose", help="target pose: keypoint file (.txt PCDMs, .csv CFLD annotation[#name], .json "
                                       "[[x, y], ...] in the 256x176 frame) or a rendered pose image")
    parser.add_argument("--pose-image", help="target pose taken from another person's photo by a pose estimator "
                                             "(instead of --pose; see docs/pose.md)")
    add_estimator_arguments(parser, used_by="--pose-image, and the source's keypoints when the model reads them and "
                            "--source-pose is not given", also=", or none to never estimate the source's keypoints")
    parser.add_argument("--retarget", action="store_true", help="--pose-image: rescale the pose's bones to the "
                        "source person's proportions (neck fixed; source keypoints from --source-pose, else "
                        "estimated on --source)")
    parser.add_argument("--parsing", help="the source's LIP parsing map (PNG of class indices), for models that read "
                                          "it (TruePose); not given: made from --source by --parser")
    add_parser_arguments(parser, used_by="models that read a parsing map, when --parsing is not given",
                         also=", or none to require --parsing")
    parser.add_argument("--source-pose", help="the source person's keypoints (same formats as --pose), for models that "
                                              "read the source pose (TruePose with source_pose: true)")
    parser.add_argument("--pairs", help="'from,to' CSV of image names in --root (e.g. fasion-resize-pairs-test.csv)")
    parser.add_argument("--root", help="DeepFashion root (either layout) holding the images, keypoints, parsing (the "
                                       "source's parsing map and keypoints are read from it when the model needs them)")
    parser.add_argument("--dataset", default="deepfashion", metavar="NAME|CLASS_PATH",
                        help="--pairs: the dataset --root is (a built-in name or a DatasetPackage class path, "
                             "docs/extending.md; default %(default)s)")
    parser.add_argument("--out", required=True, help="output PNG (single) or folder (--pairs)")
    parser.add_argument("--guidance", type=float, nargs="+", default=None,
                        help="CFG scale, or FPDM's two cumulative weights 'W_S W_F' (default: the model's)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's sampler)")
    parser.add_argument("--scheduler", default=None, help="diffusers scheduler class, e.g. DDIMScheduler")
    parser.add_argument("--seed", type=int, default=0, help="base seed (pair i of --pairs uses seed + i)")
    parser.add_argument("--overwrite", action="store_true", help="--pairs: regenerate files that already exist "
                                                                 "(default: keep valid ones, resume the rest)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None, help="weights precision (bf16/fp16 on GPU)")
    parser.add_argument("--fusion-model", default=None, help="FPDM checkpoints: the IPF export folder if it moved")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    args = parser.parse_args(list(argv))
    if args.pose and args.pose_image:
        parser.error("give the target pose once: --pose KEYPOINTS_OR_POSE_IMG or --pose-image PHOTO")
    pose_given = args.pose or args.pose_image
    single = args.source is not None or pose_given is not None
    if single == (args.pairs is not None):
        parser.error("give either --source and --pose / --pose-image (one image) or --pairs and --root (many)")
    if single and not (args.source and pose_given):
        parser.error("--source and --pose (or --pose-image) go together")
    if args.retarget and not args.pose_image:
        parser.error("--retarget is for --pose-image (a pose estimated on another person)")
    if args.pairs and not args.root:
        parser.error("--pairs needs --root (the dataset the names refer to)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be 1 or more, got {args.batch_size}")
    if single and Path(args.out).suffix.lower() not in IMAGE_SUFFIXES:
        parser.error(f"--out {args.out}: give an image file name ending in .png (or {', '.join(IMAGE_SUFFIXES[1:])})")
    if args.overwrite and not args.pairs:
        parser.error("--overwrite is for --pairs (one image always overwrites --out)")
    if args.pairs and (args.parsing or args.source_pose):
        parser.error("--parsing / --source-pose are for one image; with --pairs they come from --root")
    from pgpis.inference.pipeline import load_pipeline
    from pgpis.output_files import write_image

    pipe = load_pipeline(args.checkpoint, device=args.device, dtype=_dtype(args.dtype), fusion_model=args.fusion_model,
                         trust_checkpoint=args.trust_checkpoint, revision=args.revision)
    guidance = None if args.guidance is None else (args.guidance[0] if len(args.guidance) == 1 else args.guidance)
    common = dict(guidance=guidance, steps=args.steps, scheduler=args.scheduler)
    try:
        if single:
            pose = args.pose
            if args.pose_image:
                from pgpis.inference.estimated_poses import PoseFromImage
                from pgpis.pose.options import load_named_estimator

                estimator = load_named_estimator(args.estimator, args.estimator_option)
                pose = PoseFromImage(args.pose_image, estimator, retarget=args.retarget)
                print(f"pgpis generate: target pose from {args.pose_image} ({estimator.name}"
                      f"{', retargeted to the source' if args.retarget else ''})")
            made = source_input_makers(pipe, parser=args.parser, parser_options=parser_options(args.parser_option),
                                       estimator=args.estimator, estimator_options=parse_options(args.estimator_option),
                                       parsing_given=bool(args.parsing), pose_given=bool(args.source_pose))
            image = pipe.generate(args.source, pose, source_parsing=args.parsing, source_pose=args.source_pose,
                                  seed=args.seed, progress=True, **made, **common)
            if pipe.estimated:
                print(f"pgpis generate: from the source photo {args.source}: {describe_estimated(pipe.estimated)}",
                      file=sys.stderr)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            write_image(image, out)
            print(f"wrote {out}")
            return 0
        settings = {"tool": "pgpis generate --pairs", "seed": args.seed, "batch_size": args.batch_size,
                    "guidance": args.guidance, "steps": args.steps, "scheduler": args.scheduler, "dtype": args.dtype,
                    "device": pipe.device.type}
        return _generate_pairs(pipe, Path(args.pairs), Path(args.root), Path(args.out), args.seed, args.batch_size,
                               common, settings, overwrite=args.overwrite, dataset=args.dataset)
    except MissingInputError as err:  # what the checkpoint needs and how to give it; no traceback
        print(f"pgpis generate: {err}", file=sys.stderr)
        return 2


def _generate_pairs(pipe, pairs_file: Path, root: Path, out_dir: Path, seed: int, batch_size: int, common: dict,
                    settings: dict, overwrite: bool = False, dataset: str = "deepfashion") -> int:
    """Generate every pair to `out_dir`, resumably: fixed batches of `batch_size`, pair i seeded ``seed + i``.

    A batch with a missing or damaged file is generated whole (same batch as an uninterrupted run, so the same
    pixels) and only those files are written (:func:`pgpis.output_files.plan_split`). A folder recorded with
    other `settings` (or weights, or pair order) is refused unless `overwrite` starts it over.
    """
    from tqdm.auto import tqdm

    from pgpis.data.registry import get_dataset
    from pgpis.metrics.pairs import generated_name
    from pgpis.output_files import (names_digest, output_folder, plan_split, read_settings, settings_change,
                                    settings_file, summary, weights_fingerprint, write_image, write_settings)

    needs = pipe.needs  # the source's parsing map and keypoints come from the dataset when the model reads them
    index = get_dataset(dataset).read_layout(root, parsing="source_parsing" in needs)
    pairs = _read_pairs(pairs_file)
    unknown = [Problem(str(pairs_file), f"image '{n}' is not in the dataset at {root}", "use names from the "
                       "dataset's annotation (or fix --root)", line=i + 2, item=n)
               for i, pair in enumerate(pairs) for n in pair if n not in index.image_paths]
    if unknown:
        raise DataFormatError(unknown)
    out_dir = output_folder(out_dir, "--out")
    paths = [out_dir / generated_name(s, t) for s, t in pairs]
    batches = [range(b, min(b + batch_size, len(pairs))) for b in range(0, len(pairs), batch_size)]
    settings = {**settings, "pairs": names_digest(paths), "weights": weights_fingerprint(pipe.module)}
    old = read_settings(out_dir)
    changed = settings_change(old, settings)
    if changed and not overwrite:
        raise DataFormatError(Problem(str(settings_file(out_dir)), f"the images in {out_dir} were generated with "
                                      f"other settings ({changed}); resuming would mix the two",
                                      "run with the same checkpoint, pairs and options to resume, pass --overwrite "
                                      "to start this folder over, or choose another --out"))
    if old is None and any(p.exists() for p in paths) and not overwrite:
        print(f"pgpis generate: {out_dir} has no record of the settings its images were generated with (an older "
              "pgpis?); keeping the valid ones as if generated with these settings", file=sys.stderr)
    plan = plan_split(paths, batches, restart="overwrite" if overwrite else None, size=pipe.image_size)
    write_settings(out_dir, settings)  # after a restart's deletions: a kill leaves no old image under this record
    bar = tqdm(total=len(plan.write), desc="pairs", unit="img")
    for r in plan.batches:
        chunk = [pairs[i] for i in r]
        sources = [index.image_path(s) for s, _ in chunk]
        poses = [index.keypoints[t] for _, t in chunk]
        parsing = [index.parsing_path(s) for s, _ in chunk] if "source_parsing" in needs else None
        source_poses = [index.keypoints[s] for s, _ in chunk] if "source_pose" in needs else None
        images = pipe.generate(sources, poses, source_parsing=parsing, source_pose=source_poses,
                               seed=[seed + i for i in r], **common)
        for i, image in zip(r, images if isinstance(images, list) else [images]):
            if i in plan.write:
                write_image(image, paths[i])
                bar.update(1)
    bar.close()
    print(f"{len(pairs)} pairs -> {summary(plan, paths, out_dir)}")
    return 0


__all__ = ["generate_main"]
