"""The folder as a pgpis dataset: `--dataset folder_pairs.FolderPairs` in `pgpis data check` and `pgpis evaluate`."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from pgpis.data.contract import DatasetPackage, Log, print_problems
from pgpis.errors import DataFormatError
from pgpis.metrics.evaluate import EvaluationResult, WeightPaths, evaluate_folder
from pgpis.metrics.protocols import Protocol, register_protocol

from folder_pairs.layout import read_folder

PROTOCOL = register_protocol(Protocol(
    "folder-pairs-256x176", (256, 176),
    "A folder of a user's own photos: SSIM (both variants), PSNR and LPIPS of each generated "
    "<source stem>_to_<target stem>.png against its target at 256x176 (h x w); no FID (too few images).",
    fid_real_sets=(),
))


class FolderPairs(DatasetPackage):
    """images/ + keypoints/ (`pgpis pose extract --format pcdms`) + pairs.csv (source,target)."""

    name = "folder_pairs"
    datamodule = "folder_pairs.FolderPairsDataModule"
    default_protocol = PROTOCOL.name

    def read_layout(self, root: Path, *, parsing: bool = False):
        """The checked folder (no parsing maps: models that read them cannot run on it)."""
        return read_folder(root)

    def run_check(self, args: argparse.Namespace) -> int:
        t0 = time.perf_counter()
        try:
            index = read_folder(args.root, decode=not args.quick)
        except DataFormatError as err:
            return print_problems("data check", args.root, err)
        missing = sum(int((kp < 0).any(axis=1).sum()) for kp in index.keypoints.values())
        print(f"{args.root}: folder of pairs, OK ({time.perf_counter() - t0:.1f} s): {len(index.image_paths)} images, "
              f"{len(index.pairs)} pairs, {missing} missing keypoints")
        return 0

    def protocols(self) -> tuple[Protocol, ...]:
        return (PROTOCOL,)

    def run_evaluate(self, args: argparse.Namespace, log: Log) -> tuple[EvaluationResult, dict[str, EvaluationResult]]:
        index = read_folder(args.root, decode=False)
        result = evaluate_folder(args.generated, index.pairs, index.image_path, args.protocol,
                                 allow_missing=args.allow_missing, batch_size=args.batch_size, device=args.device,
                                 weights=WeightPaths(alexnet=args.alexnet_weights), log=log)
        return result, {}


