"""`pgpis evaluate --dataset phoenix`: the Phoenix14T protocol from the shell.

    pgpis evaluate --dataset phoenix --root PHOENIX-2014-T --split test \\
        --generated DIR --protocol phoenix-260x210 [--baseline-out DIR] [--hand-estimator MODULE:FACTORY]

Same options as the DeepFashion evaluation (weights, FID cache, --allow-missing)
plus the keypoint file(s), an optional hand-keypoint estimator for Hand PE and
the copy-the-first-frame baseline as a second table row.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from pgpis.errors import DataFormatError
from pgpis.metrics.phoenix_protocol import PHOENIX_PROTOCOL_NAME


def build_parser() -> argparse.ArgumentParser:
    from pgpis.metrics.cli import build_parser as base_parser

    p = base_parser()
    p.prog = "pgpis evaluate --dataset phoenix"
    p.set_defaults(protocol=PHOENIX_PROTOCOL_NAME, dataset="phoenix")
    p.add_argument("--keypoints", nargs="+", default=None,
                   help="COCO-WholeBody keypoint file(s) (default: <root>/keypoints/, .npz first)")
    p.add_argument("--hand-estimator", default=None, metavar="MODULE:FACTORY",
                   help="Hand PE: a callable returning a pgpis.metrics.hands.HandKeypointEstimator "
                        "(without it Hand PE is reported unavailable)")
    p.add_argument("--baseline-out", default=None, metavar="DIR",
                   help="also write the copy-the-first-frame baseline to DIR and score it as a second row")
    return p


def load_estimator(spec: Optional[str]):
    """``module:factory`` -> ``factory()``; None stays None (Hand PE unavailable)."""
    if spec is None:
        return None
    if ":" not in spec:
        raise SystemExit(f"pgpis evaluate: --hand-estimator '{spec}': expected MODULE:FACTORY, e.g. mypkg.hrnet:build")
    module, name = spec.split(":", 1)
    return getattr(importlib.import_module(module), name)()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from pgpis.metrics.evaluate import WeightPaths
    from pgpis.metrics.pairs import generated_name
    from pgpis.metrics.phoenix_eval import copy_first_frame, evaluate_phoenix, read_phoenix_frames

    def log(msg: str) -> None:
        print(f"[pgpis evaluate] {msg}", file=sys.stderr)

    common = dict(protocol=args.protocol, hand_estimator=load_estimator(args.hand_estimator),
                  batch_size=args.batch_size, device=args.device, log=log,
                  weights=WeightPaths(alexnet=args.alexnet_weights, inception=args.inception_weights),
                  fid_cache_dir=args.fid_real_cache or None)
    try:
        frames = read_phoenix_frames(args.root, args.split, args.keypoints)
        if getattr(args, "make_copy_source", False):  # the shared flag: here the copy-the-first-frame baseline
            copy_first_frame(frames, args.generated)
            log(f"wrote the copy-the-first-frame baseline to {args.generated}")
        result = evaluate_phoenix(args.root, args.split, args.generated, frames=frames,
                                  allow_missing=args.allow_missing, **common)
        rows = {}
        if args.baseline_out:  # on the same pairs as the generated folder
            missing = set(result.missing)
            scored = replace(frames, pairs=[pr for pr in frames.pairs if generated_name(*pr) not in missing])
            out = copy_first_frame(scored, args.baseline_out)
            rows["copy first frame"] = evaluate_phoenix(args.root, args.split, out, frames=scored, **common)
    except DataFormatError as err:
        print(f"pgpis evaluate: {err}", file=sys.stderr)
        return 2
    if result.missing:
        log(f"{len(result.missing)} of {result.n_expected} generated images missing (scored {result.n_pairs}): "
            + ", ".join(result.missing[:10]) + (" ..." if len(result.missing) > 10 else ""))
    out_json = result.write_json(args.out)
    for name, r in rows.items():
        r.write_json(Path(args.out).with_name(Path(args.out).stem + "_" + name.replace(" ", "_") + ".json"))
    print(result.markdown_table(args.name or Path(args.generated).resolve().name, rows))
    log(f"wrote {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
