"""`pgpis export`: write a checkpoint as a shareable inference folder (safetensors + JSON + model card)."""
from __future__ import annotations

import argparse
from typing import Sequence

from pgpis.safe_load import TRUST_HELP


def export_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="pgpis export", description="Write an inference folder (safetensors per "
                                     "component + JSON configs) from a `pgpis fit` checkpoint of FPDM or TruePose.")
    parser.add_argument("checkpoint", help="Lightning checkpoint (.ckpt) of a latent-diffusion stage (FPDM stage 2, TruePose, ...)")
    parser.add_argument("out_dir", help="folder to write (created)")
    parser.add_argument("--fusion-model", default=None, help="FPDM: the IPF export folder, if it moved since training")
    parser.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    add_card_arguments(parser)
    parser.add_argument("--push-to-hub", default=None, metavar="ORG/NAME",
                        help="then upload the folder to this Hugging Face model repository (as `pgpis push`)")
    parser.add_argument("--private", action="store_true", help="--push-to-hub: create the repository private")
    args = parser.parse_args(list(argv))
    from pgpis.inference.export import export

    out = export(args.checkpoint, args.out_dir, fusion_model=args.fusion_model, trust_checkpoint=args.trust_checkpoint,
                 **card_options(args))
    print(f"exported {args.checkpoint} -> {out} (model card: {out / 'README.md'})")
    if args.push_to_hub:
        from pgpis.inference.upload import push_export

        print(f"pushed {out} -> {push_export(out, args.push_to_hub, private=args.private or None)}")
    return 0


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """`pgpis export`'s model-card options (what the card reads beyond the export itself)."""
    parser.add_argument("--metrics", default=None, metavar="FILE", help="the run's metrics.json for the model card "
                        "(default: metrics.json beside the checkpoint or up to two folders above it)")
    parser.add_argument("--training-config", default=None, metavar="FILE", help="the run's `pgpis fit` config.yaml "
                        "for the card (default: config.yaml found as --metrics is)")
    parser.add_argument("--license", default=None, metavar="ID", help="Hub licence id of the weights (default: the "
                        "base models' RAIL licence when they carry one, else 'other')")


def card_options(args: argparse.Namespace) -> dict:
    """The parsed model-card options as keyword arguments of :func:`pgpis.inference.export.export`."""
    return dict(metrics=args.metrics, training_config=args.training_config, licence=args.license)

__all__ = ["export_main", "add_card_arguments", "card_options"]
