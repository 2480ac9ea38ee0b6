"""Scoring generated DeepFashion images: the split's pairs and FID real sets fed to the generic engine.

The engine (:func:`pgpis.metrics.evaluate.evaluate_folder`) knows nothing about
datasets; this module says which pairs a DeepFashion split has and which real
images FID compares against.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from pgpis.data.deepfashion.layout import DeepFashionIndex, read_deepfashion_index
from pgpis.errors import DataFormatError, Problem
from pgpis.metrics.evaluate import EvaluationResult, evaluate_folder
from pgpis.metrics.pairs import EvalPair
from pgpis.metrics.protocols import Protocol, get_protocol

if TYPE_CHECKING:
    from pgpis.pose import PoseEstimator


def deepfashion_real_sets(index: DeepFashionIndex, split: str) -> dict[str, list[Path]]:
    """FID real sets of a DeepFashion index: all training images, and the split's targets."""
    targets = sorted({t for _, t in index.pairs[split]})
    return {"fid": [index.image_path(n) for n in index.split_images("train")],
            "fid_test": [index.image_path(n) for n in targets]}


def evaluate_deepfashion(root: str | Path, split: str, generated_dir: str | Path, protocol: str | Protocol,
                         pose_estimator: "PoseEstimator | str | None" = "auto", **kwargs) -> EvaluationResult:
    """:func:`evaluate_folder` on a DeepFashion copy (CFLD or PCDMs layout) and one of its splits.

    `pose_estimator` adds pose accuracy (samples, copy-source, ground truth; :mod:`pgpis.metrics.pose_eval`)
    against the split's target keypoints: ``"auto"`` (mediapipe when it runs here, else unavailable with the
    reason), a backend name or class path, an estimator object, or None (not computed).
    """
    index = read_deepfashion_index(root, check_images="none")
    if not index.pairs.get(split):
        raise DataFormatError(Problem(str(root), f"split '{split}' has no pairs",
                                      f"use one of: {', '.join(s for s, p in index.pairs.items() if p) or '(none)'}"))
    pose = None
    if pose_estimator is not None:
        from pgpis.metrics.pose_eval import pose_accuracy_rows, resolve_pose_estimator
        from pgpis.pose.keypoints import CFLD_FRAME

        estimator, why = resolve_pose_estimator(pose_estimator)  # before scoring: a bad name fails at once

        def pose(found: Sequence[EvalPair]) -> dict:
            return pose_accuracy_rows(found, get_protocol(protocol), lambda p: index.keypoints[p.target], CFLD_FRAME,
                                      lambda p: index.image_path(p.source), estimator, unavailable_reason=why,
                                      batch_size=kwargs.get("batch_size", 16), device=kwargs.get("device", "cpu"))
    return evaluate_folder(generated_dir, index.pairs[split], index.image_path, protocol,
                           deepfashion_real_sets(index, split), pose=pose, **kwargs)
