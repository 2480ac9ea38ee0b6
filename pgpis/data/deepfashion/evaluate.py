"""Scoring generated DeepFashion images: the split's pairs and FID real sets fed to the generic engine.

The engine (:func:`pgpis.metrics.evaluate.evaluate_folder`) knows nothing about
datasets; this module says which pairs a DeepFashion split has and which real
images FID compares against.
"""
from __future__ import annotations

from pathlib import Path

from pgpis.data.deepfashion.layout import DeepFashionIndex, read_deepfashion_index
from pgpis.errors import DataFormatError, Problem
from pgpis.metrics.evaluate import EvaluationResult, evaluate_folder
from pgpis.metrics.protocols import Protocol


def deepfashion_real_sets(index: DeepFashionIndex, split: str) -> dict[str, list[Path]]:
    """FID real sets of a DeepFashion index: all training images, and the split's targets."""
    targets = sorted({t for _, t in index.pairs[split]})
    return {"fid": [index.image_path(n) for n in index.split_images("train")],
            "fid_test": [index.image_path(n) for n in targets]}


def evaluate_deepfashion(root: str | Path, split: str, generated_dir: str | Path, protocol: str | Protocol,
                         **kwargs) -> EvaluationResult:
    """:func:`evaluate_folder` on a DeepFashion copy (CFLD or PCDMs layout) and one of its splits."""
    index = read_deepfashion_index(root, check_images="none")
    if not index.pairs.get(split):
        raise DataFormatError(Problem(str(root), f"split '{split}' has no pairs",
                                      f"use one of: {', '.join(s for s, p in index.pairs.items() if p) or '(none)'}"))
    return evaluate_folder(generated_dir, index.pairs[split], index.image_path, protocol,
                           deepfashion_real_sets(index, split), **kwargs)
