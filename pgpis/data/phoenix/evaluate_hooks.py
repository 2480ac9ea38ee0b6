"""`pgpis evaluate --dataset phoenix`: the Phoenix14T protocol from the shell.

    pgpis evaluate --dataset phoenix --root PHOENIX-2014-T --split test \\
        --generated DIR --protocol phoenix-260x210 [--baseline-out DIR] [--pose-estimator NAME|none]

Same options as the DeepFashion evaluation (weights, FID cache, --allow-missing)
plus the keypoint file(s), an optional hand-keypoint estimator for Hand PE and
the copy-the-first-frame baseline as a second table row. These are the
evaluation hooks `pgpis evaluate` (:mod:`pgpis.commands.evaluate`) calls through
:class:`~pgpis.data.phoenix.package.PhoenixPackage`.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Optional

from pgpis.pose.options import add_scoring_estimator_arguments

if TYPE_CHECKING:
    from pgpis.metrics.evaluate import EvaluationResult


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """The Phoenix options of `pgpis evaluate --dataset phoenix`."""
    p.add_argument("--keypoints", nargs="+", default=None,
                   help="COCO-WholeBody keypoint file(s) (default: <root>/keypoints/, .npz first)")
    p.add_argument("--hand-estimator", default=None, metavar="MODULE:FACTORY",
                   help="Hand PE: a callable returning a pgpis.metrics.hands.HandKeypointEstimator "
                        "(overrides --pose-estimator)")
    add_scoring_estimator_arguments(p, what="Hand PE from a pose estimator's hands, the same on generated and real "
                                            "frames (none: Hand PE unavailable)")
    p.add_argument("--flow", default="dis", choices=("dis", "farneback", "raft", "none"),
                   help="optical flow of the temporal metrics (warping error, hand warping error, tOF, tLP; "
                        "docs/metrics.md): OpenCV DIS (default) or Farneback, torchvision RAFT-large from a local "
                        "weight file (--flow-weights / $PGPIS_RAFT_WEIGHTS), or none to skip them")
    p.add_argument("--flow-weights", default=None, metavar="PATH", help="RAFT-large weights for --flow raft")
    p.add_argument("--baseline-out", default=None, metavar="DIR",
                   help="also write the copy-the-first-frame baseline to DIR and score it as a second row")


def load_estimator(spec: Optional[str]):
    """``module:factory`` -> ``factory()`` (``--hand-estimator``)."""
    if spec is None:
        return None
    if ":" not in spec:
        raise SystemExit(f"pgpis evaluate: --hand-estimator '{spec}': expected MODULE:FACTORY, e.g. mypkg.hrnet:build")
    module, name = spec.split(":", 1)
    return getattr(importlib.import_module(module), name)()


def run_evaluate(args: argparse.Namespace, log: Callable[[str], None]) -> tuple[EvaluationResult, dict[str, EvaluationResult]]:
    """Score `args.generated` under the Phoenix protocol; the copy-the-first-frame row when `--baseline-out`."""
    from pgpis.data.phoenix.evaluate import copy_first_frame, evaluate_phoenix, read_phoenix_frames
    from pgpis.metrics.evaluate import WeightPaths
    from pgpis.metrics.pairs import generated_name

    from pgpis.metrics.hand_estimators import PoseHandEstimator, resolve_hand_estimator

    if args.hand_estimator:
        hands = load_estimator(args.hand_estimator)
    elif args.pose_estimator_option and args.pose_estimator.lower() not in ("auto", "none"):
        from pgpis.pose.options import load_named_estimator

        hands = PoseHandEstimator(load_named_estimator(args.pose_estimator, args.pose_estimator_option))
    else:
        hands = resolve_hand_estimator(args.pose_estimator)
    common = dict(protocol=args.protocol, hand_estimator=hands,
                  batch_size=args.batch_size, device=args.device, log=log,
                  weights=WeightPaths(alexnet=args.alexnet_weights, inception=args.inception_weights),
                  fid_cache_dir=args.fid_real_cache or None,
                  temporal=None if args.flow == "none" else {"flow": args.flow, "flow_weights": args.flow_weights})
    frames = read_phoenix_frames(args.root, args.split, args.keypoints)
    if getattr(args, "make_copy_source", False):  # the shared flag: here the copy-the-first-frame baseline
        copy_first_frame(frames, args.generated)
        log(f"wrote the copy-the-first-frame baseline to {args.generated}")
    result = evaluate_phoenix(args.root, args.split, args.generated, frames=frames,
                              allow_missing=args.allow_missing, **common)
    rows: dict[str, EvaluationResult] = {}
    if args.baseline_out:  # on the same pairs as the generated folder
        missing = set(result.missing)
        scored = replace(frames, pairs=[pr for pr in frames.pairs if generated_name(*pr) not in missing])
        out = copy_first_frame(scored, args.baseline_out)
        rows["copy first frame"] = evaluate_phoenix(args.root, args.split, out, frames=scored, **common)
    return result, rows
