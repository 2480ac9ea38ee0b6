"""`pgpis data prepare --dataset wpose`: OpenPose-18 keypoints for WPose, estimated once and written to disk.

WPose ships no keypoints, but the keypoint-conditioned models (TruePose, FPDM) and the pose-accuracy
metric need the target's. This runs a :class:`pgpis.pose.PoseEstimator` over every image a pair uses and
writes ``keypoints/<stem>.json`` beside ``images/`` (:func:`pgpis.data.wpose.layout.write_keypoint_file`),
each file naming the estimator, so a run with another estimator is never mixed up with it. Images whose
file is already there from the same estimator are kept (``overwrite`` re-estimates).

On a synthetic copy the estimator may not see the drawn people; ``use_synthetic`` then writes the
generator's own keypoints (``synthetic_keypoints.json``), recorded as such (origin
``synthetic-generator``), never passed off as an estimate.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pgpis.images import load_rgb
from pgpis.data.wpose.layout import (SYNTHETIC_KEYPOINTS, SYNTHETIC_MARKER, read_wpose_index,
                                     write_keypoint_file)
from pgpis.errors import DataFormatError, Problem

SYNTHETIC_ESTIMATOR = "synthetic-generator (pgpis.data.wpose.synthetic; not an estimate)"
BATCH = 16


@dataclass
class PrepareReport:
    estimator: str
    written: int = 0
    kept: int = 0
    not_found: int = 0
    use_synthetic: bool = False


def _existing_estimator(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text()).get("estimator"))
    except (OSError, ValueError, AttributeError):
        return None


def _synthetic_keypoints(root: Path) -> dict[str, Any]:
    path = root / SYNTHETIC_KEYPOINTS
    if not (root / SYNTHETIC_MARKER).exists() or not path.exists():
        raise DataFormatError(Problem(str(root), f"--use-synthetic-keypoints needs a synthetic copy ({SYNTHETIC_MARKER} "
                                                 f"and {SYNTHETIC_KEYPOINTS}, written by `pgpis data synth --dataset "
                                                 "wpose`); this folder is not one",
                                      "run an estimator instead (drop --use-synthetic-keypoints)"))
    try:
        return json.loads(path.read_text())["images"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataFormatError(Problem(str(path), f"unreadable generator keypoints ({type(e).__name__}: {e})",
                                      "re-run `pgpis data synth --dataset wpose`")) from None


def prepare_keypoints(root: str | os.PathLike, estimator: Any = "mediapipe", *, estimator_options: dict | None = None,
                      use_synthetic: bool = False, overwrite: bool = False,
                      log: Callable[[str], None] | None = None) -> PrepareReport:
    """Write ``keypoints/<stem>.json`` for every image the pairs use; returns the counts.

    ``estimator``: a name or class path for :func:`pgpis.pose.load_estimator` (with ``estimator_options``),
    or a ready :class:`pgpis.pose.PoseEstimator`. Ignored with ``use_synthetic``.
    """
    index = read_wpose_index(root, check_images="header", parsing=False, keypoints=False)
    names = index.names()
    if use_synthetic:
        table = _synthetic_keypoints(index.root)
        report = PrepareReport(SYNTHETIC_ESTIMATOR, use_synthetic=True)
        problems = []
        for name in names:
            entry = table.get(name)
            if entry is None:
                problems.append(Problem(str(index.root / SYNTHETIC_KEYPOINTS), "no generator keypoints for this image",
                                        "re-run `pgpis data synth --dataset wpose`", item=name))
                continue
            if tuple(entry["image_size"]) != index.image_sizes[name]:
                problems.append(Problem(str(index.root / SYNTHETIC_KEYPOINTS), "the generator's image size differs from "
                                        "the image's", "re-run `pgpis data synth --dataset wpose`", item=name))
                continue
            write_keypoint_file(index.root, name, np.asarray(entry["body"], np.float32), index.image_sizes[name],
                                estimator=SYNTHETIC_ESTIMATOR, origin="synthetic-generator", found=True)
            report.written += 1
        if problems:
            raise DataFormatError(problems)
        return report

    if isinstance(estimator, str):
        from pgpis.pose import load_estimator

        estimator = load_estimator(estimator, **(estimator_options or {}))
    name_of = str(getattr(estimator, "name", None) or type(estimator).__name__)
    report = PrepareReport(name_of)
    todo = []
    for name in names:
        path = index.keypoint_path(name)
        if not overwrite and path.exists() and _existing_estimator(path) == name_of:
            report.kept += 1
        else:
            todo.append(name)
    for start in range(0, len(todo), BATCH):
        chunk = todo[start:start + BATCH]
        images = [np.asarray(load_rgb(index.image_path(n), n)) for n in chunk]
        estimates = estimator.estimate_batch(images)
        if len(estimates) != len(chunk):
            raise DataFormatError(Problem(name_of, f"the estimator returned {len(estimates)} estimates for {len(chunk)} "
                                                   "images", "fix the estimator's estimate_batch"))
        for name, image, est in zip(chunk, images, estimates):
            write_keypoint_file(index.root, name, np.asarray(est.body, np.float32), image.shape[:2],
                                estimator=name_of, origin="estimator", found=bool(est.found))
            report.written += 1
            report.not_found += int(not est.found)
        if log and (start // BATCH + 1) % 10 == 0:
            log(f"{start + len(chunk)}/{len(todo)} images estimated")
    return report
