"""Pose accuracy of an evaluation's pairs, in three rows: generated samples, copy-source and ground truth.

* ``samples``: the generated image of each pair against the pair's target keypoints;
* ``copy_source``: the pair's *source* image as the prediction (the floor: how close
  the source pose already is to the target pose);
* ``ground_truth``: the real target image (the estimator's own ceiling on this data).

Images are read at the protocol's report size (PIL bicubic, as every other metric) and
the dataset's target keypoints are rescaled from their frame to it. The estimator runs
once per distinct real image (targets and sources repeat across pairs); every pair
counts. Under torch.distributed each rank scores its share of fixed batches and the
sum states are reduced, so every rank returns the single-process figures.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import torch

from pgpis.metrics.images import load_resized, stack01
from pgpis.metrics.pairs import EvalPair
from pgpis.metrics.pose_accuracy import DEFAULT_THRESHOLDS, PoseAccuracy, estimator_name
from pgpis.metrics.protocols import Protocol
from pgpis.metrics.states import my_batches
from pgpis.pose.keypoints import rescale_keypoints

if TYPE_CHECKING:
    from pgpis.pose import PoseEstimate, PoseEstimator

AUTO = "auto"  # mediapipe when it can run here, else unavailable with the reason
DEFAULT_POSE_ESTIMATOR = "mediapipe"
ROWS = ("samples", "copy_source", "ground_truth")
BODY_ONLY_OPTIONS = {"mediapipe": {"hands": False}}  # pose accuracy needs no hands: skip the second model
DISABLED = "pose estimator disabled by the caller (--pose-estimator none)"


def resolve_pose_estimator(spec: "PoseEstimator | str | None") -> "tuple[PoseEstimator | None, str | None]":
    """(estimator, None) or (None, why not): ``"auto"`` = mediapipe if usable, a name / class path, or None / "none"."""
    if spec is None or (isinstance(spec, str) and spec.lower() == "none"):
        return None, DISABLED
    if not isinstance(spec, str):
        return spec, None
    from pgpis.pose import EstimatorUnavailable, available_estimators, load_estimator

    name = DEFAULT_POSE_ESTIMATOR if spec == AUTO else spec
    if spec == AUTO:
        why = available_estimators().get(name, f"'{name}' is not a known backend")
        if why is not None:
            return None, f"{name}: {why}"
    try:
        return load_estimator(name, **BODY_ONLY_OPTIONS.get(name, {})), None
    except EstimatorUnavailable as err:
        if spec == AUTO:
            return None, str(err)
        raise


class MemoEstimator:
    """Wraps a PoseEstimator so an image seen before (same pixels) is not estimated again."""

    def __init__(self, estimator: "PoseEstimator"):
        self.estimator, self.name = estimator, estimator_name(estimator)
        self._memo: dict[str, PoseEstimate] = {}

    def estimate_batch(self, images: Sequence[np.ndarray]) -> "list[PoseEstimate]":
        keys = [hashlib.sha1(f"{a.shape}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest() for a in images]
        todo = {k: a for k, a in zip(keys, images) if k not in self._memo}
        if todo:
            self._memo.update(zip(todo, self.estimator.estimate_batch(list(todo.values()))))
        return [self._memo[k] for k in keys]

    def estimate(self, image: np.ndarray) -> "PoseEstimate":
        return self.estimate_batch([image])[0]


def pose_accuracy_rows(
    pairs: Sequence[EvalPair],
    protocol: Protocol,
    target_keypoints: Callable[[EvalPair], np.ndarray],
    keypoint_frame: tuple[int, int],
    source_path: Callable[[EvalPair], Path],
    estimator: "PoseEstimator | str | None" = AUTO,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    unavailable_reason: str | None = None,
) -> dict:
    """``{"estimator", "frame", "thresholds", "samples", "copy_source", "ground_truth"}`` (each a
    :meth:`PoseAccuracy.report`), or the same keys with every figure None and ``"unavailable"`` set.

    ``target_keypoints(pair)``: OpenPose-18 ``[18, 2+]`` in ``keypoint_frame`` (h, w) pixels, -1 missing.
    ``unavailable_reason`` (with ``estimator=None``): why there is none, from an earlier
    :func:`resolve_pose_estimator`.
    """
    est, reason = (None, unavailable_reason) if estimator is None and unavailable_reason else \
        resolve_pose_estimator(estimator)
    h, w = protocol.size
    head = {"estimator": estimator_name(est) if est is not None else None, "frame": f"{h}x{w} (h x w, report size)",
            "thresholds": [float(t) for t in thresholds]}
    if est is None:
        row = {k: v for k, v in PoseAccuracy(None, thresholds, reason=reason).report().items() if k != "estimator"}
        return {**head, "unavailable": reason, **{r: dict(row) for r in ROWS}}
    real = MemoEstimator(est)  # targets and sources repeat across pairs
    metrics = {"samples": PoseAccuracy(est, thresholds), "copy_source": PoseAccuracy(real, thresholds),
               "ground_truth": PoseAccuracy(real, thresholds)}
    dev = torch.device(device)
    for m in metrics.values():
        m.to(dev)
    batches = my_batches(len(pairs), batch_size)
    for batch in batches:
        chunk = [pairs[i] for i in batch]
        kp = torch.from_numpy(np.stack([rescale_keypoints(np.asarray(target_keypoints(p))[:, :2], keypoint_frame,
                                                          protocol.size) for p in chunk]))
        files = {"samples": [p.generated for p in chunk], "copy_source": [source_path(p) for p in chunk],
                 "ground_truth": [p.target_path for p in chunk]}
        for row, paths in files.items():
            metrics[row].update(stack01([load_resized(f, protocol.size) for f in paths], torch.float32), kp)
    if not batches:  # a rank without work still joins the reduction
        for m in metrics.values():
            m.update(torch.zeros(0, 3, h, w), torch.zeros(0, 18, 2))
    rows = {row: m.report() for row, m in metrics.items()}
    for r in rows.values():
        r.pop("estimator", None)  # said once, in the head
    return {**head, **rows}


ROW_LABELS = {"samples": "samples", "copy_source": "copy-source", "ground_truth": "ground truth (estimator ceiling)"}


def pose_accuracy_table(section: dict) -> str:
    """The ``pose_accuracy`` section of metrics.json as a markdown table (one row per image set)."""
    keys = [f"pck@{t:g}" for t in section.get("thresholds", DEFAULT_THRESHOLDS)]
    lines = ["| Pose accuracy | " + " | ".join(k.upper() for k in keys)
             + " | mean error (px) | person found |", "|---|" + "---:|" * (len(keys) + 2)]

    def cell(v: object, digits: int) -> str:
        return f"{v:.{digits}f}" if isinstance(v, (int, float)) else "n/a"

    for row, label in ROW_LABELS.items():
        r = section.get(row, {})
        found = f"{r['n_person_found']}/{r['n_images']}" if "n_images" in r else "n/a"
        lines.append(f"| {label} | " + " | ".join(cell(r.get(k), 3) for k in keys)
                     + f" | {cell(r.get('mean_error_px'), 2)} | {found} |")
    lines.append("")
    if section.get("estimator") is None:
        lines.append(f"- n/a pose accuracy: {section.get('unavailable')}")
    else:
        lines.append(f"Pose accuracy: OpenPose-18 points estimated by `{section['estimator']}` against the target "
                     f"keypoints at {section['frame']}; PCK@t = share of the target's visible points within t x image "
                     "height (a missed point is wrong); mean error over points both have.")
        for row, label in ROW_LABELS.items():
            why = section.get(row, {}).get("unavailable")
            if why:
                lines.append(f"- {label}: {why}")
    return "\n".join(lines)
